"""reference-features and score: FID, KID (with bootstrap errors), mmd_inception and CMMD of one sample set.

Every cell is scored against the primary reference (`score.reference_split`,
which the tables use) and, where `score.second_reference` names the other
split, against that one too: the train split is what every model trained on,
so the test split rules out that memorisation is rewarded. reference-features
also scores the second split against the primary one at the cells' sample
count: the data floor no model can beat.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lediflow.core import artifacts

from lediflow.pipeline import paths
from lediflow.pipeline.config import Params
from lediflow.pipeline.data import cache_dir, load_split
from lediflow.core.errors import LediflowError
from lediflow.analysis.metrics.bootstrap import bootstrap
from lediflow.analysis.metrics.clip import UNAVAILABLE, load_clip
from lediflow.analysis.metrics.inception import InceptionFeatures, resolve_weights
from lediflow.analysis.metrics.mmd import cmmd_from_embeddings, kid_from_features
from lediflow.analysis.metrics.prc import precision_recall
from lediflow.core.provenance import code_state
from lediflow.method.device import resolve_device
from lediflow.pipeline.stages.common import data_fingerprint, load_codec

IS_UNAVAILABLE = "unavailable (the offline Inception weights carry no logits layer)"
RESIZE_NOTE = ("Inception: uint8 -> 299x299 by torch-fidelity's TF-1.x bilinear resize; CLIP: bicubic antialiased "
               "resize to the model's input size; grayscale repeated to 3 channels for both")
BOOTSTRAP_NOTE = ("fid_se / kid_se: bootstrap standard errors over the generated samples (reference fixed), "
                  "95% interval = value +- 1.96 se; kid_std is the spread over KID subsets, not an error bar; "
                  "fid_replicates / kid_replicates: the replicates themselves, drawn with the run's one set of "
                  "resample indices, so cells of a run can be bootstrapped jointly")


def _cached_features(key: dict, folder: Path, compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, str]:
    """Features cached under the sha256 of `key` (content hashes only): a changed input is a new key. Each entry
    carries the sha256 of its own bytes (<key>.sha256); an entry that does not match it, or has none, is
    recomputed, never used."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path, seal = folder / f"{digest}.npy", folder / f"{digest}.sha256"
    if path.is_file():
        try:
            if seal.is_file() and seal.read_text().strip() == artifacts.sha256_file(path):
                return torch.from_numpy(np.load(path)), digest
        except (ValueError, OSError, EOFError):
            pass
        path.unlink()  # damaged, unsealed or edited: recomputed below
    features = compute()
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features.numpy())
    artifacts.write_text_atomic(seal, artifacts.sha256_file(path) + "\n")
    return features, digest


def _inception(params: Params, device: torch.device, reference: dict | None = None) -> InceptionFeatures:
    """The scorer's Inception; given the reference's record, refuse weights other than those it was made with."""
    inception = InceptionFeatures(resolve_weights(params["score"]["inception_weights"], cache_dir(params)), device)
    if reference is not None and inception.provenance().get("sha256") != reference["inception"].get("sha256"):
        raise LediflowError("the reference features came from other Inception weights; rerun reference-features")
    return inception


def against(features: torch.Tensor, reference: torch.Tensor, cfg: dict, seed: int) -> dict:
    """FID, KID, their bootstrap errors and replicates, precision/recall and mmd_inception against one reference."""
    errors = bootstrap(features, reference, cfg["bootstrap_resamples"], seed)
    return {
        "fid": errors.fid, "fid_se": errors.fid_se,
        **kid_from_features(features, reference, cfg["kid_subset_size"], cfg["kid_subsets"]),
        "kid_se": errors.kid_se,
        # 1000 * biased RBF-MMD^2 (sigma 10) on L2-normalised Inception features: CMMD's statistic, not CMMD
        "mmd_inception": cmmd_from_embeddings(features, reference),
        **precision_recall(features, reference),
        "num_reference": int(len(reference)),
        "fid_replicates": [round(v, 6) for v in errors.fid_replicates],
        "kid_replicates": [round(v, 9) for v in errors.kid_replicates],
    }


def reference_features(params: Params) -> dict:
    cfg = params["score"]
    device = resolve_device(params["run"]["device"])
    data_folder = paths.data_dir(params)
    cache = cache_dir(params) / "features"
    inception = _inception(params, device)
    weights_id = inception.provenance().get("sha256", "torch-fidelity")
    folder = paths.reference_dir(params)
    splits, features = {}, {}
    for split in paths.reference_splits(params):
        split_sha = data_fingerprint(data_folder, split)
        images = load_split(data_folder, split)
        count = min(cfg["reference_count"], len(images))
        key = {"split_sha256": split_sha, "count": count, "version": 1, "net": "inception", "weights": weights_id}
        feats, digest = _cached_features(key, cache, lambda: inception(images[:count], cfg["batch_size"], True))
        features[split] = feats
        splits[split] = {"count": count, "split_sha256": split_sha, "inception_cache_key": digest}
    primary = cfg["reference_split"]
    clip = load_clip(cfg, device)
    info = {"split": primary, **splits[primary], "splits": splits, "inception": inception.provenance(),
            "clip": clip.provenance if clip else UNAVAILABLE}
    if len(features) > 1:
        # The data floor: real images of the other split scored like a cell (same sample count, same bootstrap).
        second = paths.reference_splits(params)[1]
        n = min(params["sample"]["num_samples"], len(features[second]))
        info["floor"] = {"split": second, "num_samples": n,
                         **against(features[second][:n], features[primary], cfg, params["run"]["seed"])}
    with artifacts.staged_dir(folder) as stage:
        for split, feats in features.items():
            np.save(stage / f"inception-{split}.npy", feats.numpy())
        if clip is not None:
            images = load_split(data_folder, primary)[: splits[primary]["count"]]
            clip_key = {"split_sha256": splits[primary]["split_sha256"], "count": splits[primary]["count"],
                        "version": 1, "net": "clip", "weights": clip.provenance["sha256"]}
            emb, _ = _cached_features(clip_key, cache, lambda: clip(images, cfg["batch_size"], True))
            np.save(stage / "clip.npy", emb.numpy())
        artifacts.write_json_atomic(stage / "reference.json", info)
        if "floor" in info:
            artifacts.write_sealed_json(paths.data_floor_file(params), info["floor"])
        artifacts.write_manifest(stage, "reference-features", {"run": params["run"], "score": cfg},
                                 weights={"inception": inception.provenance(), "clip": info["clip"]})
    return info


def _check_reference(params: Params, reference: dict) -> None:
    """Refuse a reference made from other data or another count: never score against stale statistics."""
    cfg = params["score"]
    data_folder = paths.data_dir(params)
    record = paths.reference_dir(params) / "reference.json"
    stale = "the reference features were made from other data or settings"
    splits = set(paths.reference_splits(params))
    if reference["split"] != cfg["reference_split"] or set(reference.get("splits", {})) != splits:
        raise artifacts.quarantine(record, stale)  # set aside: the next snakemake call rebuilds the reference
    for split, info in reference["splits"].items():
        if info["split_sha256"] != data_fingerprint(data_folder, split) or \
                info["count"] != min(cfg["reference_count"], len(load_split(data_folder, split))):
            raise artifacts.quarantine(record, stale)


def _reference_array(path: Path) -> np.ndarray:
    return artifacts.load_npy(path, "run `lediflow reference-features` (or snakemake) first", mmap=False)


def _load_reference(params: Params) -> dict:
    ref_dir = paths.reference_dir(params)
    rebuild = "run `lediflow reference-features` (or snakemake) first"
    reference = artifacts.read_json(artifacts.verify_file(ref_dir / "reference.json", rebuild), rebuild)
    _check_reference(params, reference)
    return reference


@torch.no_grad()
def autoencoder_floor(params: Params) -> dict:
    """The autoencoder floor: its reconstructions of the data floor's test images, scored like a cell.

    Every latent flow decodes through this autoencoder, so no latent cell can be expected below this FID;
    beside the data floor it says how much of a latent flow's distance is the autoencoder's.
    """
    from lediflow.method.device import to_model_range, to_uint8

    cfg, device = params["score"], resolve_device(params["run"]["device"])
    reference = _load_reference(params)
    split = "test"
    images = load_split(paths.data_dir(params), split)
    count = min(params["sample"]["num_samples"], len(images))
    codec = load_codec(params, device)
    recon = np.empty((count, *images.shape[1:]), dtype=np.uint8)
    for start in range(0, count, params["sample"]["batch_size"]):
        stop = min(count, start + params["sample"]["batch_size"])
        x = to_model_range(torch.from_numpy(np.array(images[start:stop])).to(device))
        mean, _ = codec.encode(x)  # the posterior mean: the autoencoder's own best reconstruction
        recon[start:stop] = to_uint8(codec.decode(mean)).cpu().numpy()
    inception = _inception(params, device, reference)
    primary = cfg["reference_split"]
    feats = inception(recon, cfg["batch_size"])
    real = torch.from_numpy(_reference_array(paths.reference_dir(params) / f"inception-{primary}.npy"))
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((recon.astype(np.float64) - images[:count]) ** 2))
    result = {"split": split, "num_samples": count, "reference_split": primary, "psnr_db": float(psnr),
              **against(feats, real, cfg, params["run"]["seed"])}
    artifacts.write_sealed_json(paths.autoencoder_floor_file(params), result)
    return result


def score(params: Params, model: str, setting: str) -> dict:
    paths.check_cell(params, model, setting)
    cfg = params["score"]
    device = resolve_device(params["run"]["device"])
    ref_dir = paths.reference_dir(params)
    reference = _load_reference(params)
    cell = paths.sample_dir(params, model, setting)
    rebuild = f"run `lediflow sample --model {model} --setting {setting}` (or snakemake) first"
    samples = artifacts.load_npy(cell / "samples.npy", rebuild)
    record = artifacts.read_json(artifacts.verify_file(cell / "record.json", rebuild))
    inception = _inception(params, device, reference)
    key = {"samples_sha256": artifacts.sha256_file(cell / "samples.npy"), "version": 1, "net": "inception",
           "weights": inception.provenance().get("sha256", "torch-fidelity")}
    feats, _ = _cached_features(key, cache_dir(params) / "features", lambda: inception(samples, cfg["batch_size"]))
    splits = paths.reference_splits(params)
    primary = against(feats, torch.from_numpy(_reference_array(ref_dir / f"inception-{splits[0]}.npy")), cfg,
                      params["run"]["seed"])
    result = {
        "model": model, "setting": setting, "num_samples": int(len(samples)), "reference_split": splits[0],
        **primary,
        "bootstrap": {"resamples": cfg["bootstrap_resamples"], "seed": params["run"]["seed"], "note": BOOTSTRAP_NOTE},
        "inception_score": IS_UNAVAILABLE,
        "cmmd": UNAVAILABLE,
        "resize": RESIZE_NOTE,
        "weights": {"inception": inception.provenance(), "clip": reference["clip"],
                    "flow_checkpoint_sha256": record["checkpoint_sha256"]},
        "sampling": {k: record.get(k) for k in ("space", "prior", "solver", "steps", "tol", "nfe",
                                                "latent_sampler_nfe", "seconds_per_image", "device", "t_range")},
        "code": code_state(),
    }
    for split in splits[1:]:
        result["second_reference"] = {"split": split, **against(
            feats, torch.from_numpy(_reference_array(ref_dir / f"inception-{split}.npy")), cfg, params["run"]["seed"])}
    if (ref_dir / "clip.npy").is_file():
        clip = load_clip(cfg, device)
        if clip is not None and clip.provenance["sha256"] == reference["clip"]["sha256"]:
            result["cmmd"] = cmmd_from_embeddings(clip(samples, cfg["batch_size"]),
                                                  torch.from_numpy(_reference_array(ref_dir / "clip.npy")))
    artifacts.write_sealed_json(paths.score_file(params, model, setting), result)
    return result
