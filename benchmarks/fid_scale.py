"""The FID/KID scale of a dataset: real vs real (train vs test) and real vs uniform noise.

    lediflow prepare-data --config params.yaml && python benchmarks/fid_scale.py [--count 1000]

Gives the floor and ceiling every table of the run should be read against
(FID at n samples is biased upwards; compare only equal counts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lediflow.pipeline.config import load_params  # noqa: E402
from lediflow.pipeline.data import cache_dir, load_split  # noqa: E402
from lediflow.analysis.metrics.inception import InceptionFeatures, resolve_weights  # noqa: E402
from lediflow.analysis.metrics.fid import fid_from_features  # noqa: E402
from lediflow.analysis.metrics.mmd import cmmd_from_embeddings, kid_from_features  # noqa: E402
from lediflow.pipeline.paths import data_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="params.yaml")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    params = load_params([args.config])
    folder = data_dir(params)
    train, test = load_split(folder, "train")[: args.count], load_split(folder, "test")[: args.count]
    noise = np.random.default_rng(0).integers(0, 256, train.shape, dtype=np.uint8)
    net = InceptionFeatures(resolve_weights(params["score"]["inception_weights"], cache_dir(params)),
                            torch.device("cpu"))
    f_train, f_test, f_noise = (net(x, 50) for x in (train, test, noise))
    out = {}
    for name, feats in (("train_vs_test", f_test), ("train_vs_uniform_noise", f_noise)):
        out[name] = {"fid": fid_from_features(feats, f_train), **kid_from_features(feats, f_train, 1000, 100),
                     "mmd_inception": cmmd_from_embeddings(feats, f_train), "count": int(len(feats))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
