"""reference-features and score: FID, KID, mmd_inception and CMMD of one sample set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from lediflow import artifacts, paths
from lediflow.config import Params
from lediflow.data import cache_dir, load_split
from lediflow.errors import LediflowError
from lediflow.metrics.clip import UNAVAILABLE, load_clip
from lediflow.metrics.inception import InceptionFeatures, resolve_weights
from lediflow.metrics.mmd import cmmd_from_embeddings, fid_from_features, kid_from_features
from lediflow.runtime import resolve_device
from lediflow.stages.common import data_fingerprint

IS_UNAVAILABLE = "unavailable (the offline Inception weights carry no logits layer)"
RESIZE_NOTE = ("Inception: uint8 -> 299x299 by torch-fidelity's TF-1.x bilinear resize; CLIP: bicubic antialiased "
               "resize to the model's input size; grayscale repeated to 3 channels for both")


def _cached_features(key: dict, folder: Path, compute) -> tuple[torch.Tensor, str]:
    """Features cached under the sha256 of `key` (content hashes only): a changed input is a new key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path = folder / f"{digest}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path)), digest
    features = compute()
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features.numpy())
    return features, digest


def reference_features(params: Params) -> dict:
    cfg = params["score"]
    device = resolve_device(params["run"]["device"])
    data_folder = paths.data_dir(params)
    split_sha = data_fingerprint(data_folder, cfg["reference_split"])
    images = load_split(data_folder, cfg["reference_split"])
    count = min(cfg["reference_count"], len(images))
    images = images[:count]
    cache = cache_dir(params) / "features"
    inception = InceptionFeatures(resolve_weights(cfg["inception_weights"], cache_dir(params)), device)
    base_key = {"split_sha256": split_sha, "count": count, "version": 1}
    incep_key = {**base_key, "net": "inception", "weights": inception.provenance().get("sha256", "torch-fidelity")}
    incep, incep_digest = _cached_features(incep_key, cache, lambda: inception(images, cfg["batch_size"], True))
    clip = load_clip(cfg, device)
    folder = paths.reference_dir(params)
    info = {"split": cfg["reference_split"], "count": count, "split_sha256": split_sha,
            "inception_cache_key": incep_digest, "inception": inception.provenance(),
            "clip": clip.provenance if clip else UNAVAILABLE}
    with artifacts.staged_dir(folder) as stage:
        np.save(stage / "inception.npy", incep.numpy())
        if clip is not None:
            clip_key = {**base_key, "net": "clip", "weights": clip.provenance["sha256"]}
            emb, _ = _cached_features(clip_key, cache, lambda: clip(images, cfg["batch_size"], True))
            np.save(stage / "clip.npy", emb.numpy())
        artifacts.write_json_atomic(stage / "reference.json", info)
        artifacts.write_manifest(stage, "reference-features", {"run": params["run"], "score": cfg},
                                 weights={"inception": inception.provenance(), "clip": info["clip"]})
    return info


def _check_reference(params: Params, reference: dict) -> None:
    """Refuse a reference made from other data or another count: never score against stale statistics."""
    cfg = params["score"]
    data_folder = paths.data_dir(params)
    split_sha = data_fingerprint(data_folder, cfg["reference_split"])
    if reference["split_sha256"] != split_sha or reference["split"] != cfg["reference_split"] or \
            reference["count"] != min(cfg["reference_count"], len(load_split(data_folder, cfg["reference_split"]))):
        raise LediflowError("the reference features were made from other data or settings; "
                            "rerun `lediflow reference-features` (snakemake does this by itself)")


def score(params: Params, model: str, setting: str) -> dict:
    cfg = params["score"]
    device = resolve_device(params["run"]["device"])
    ref_dir = paths.reference_dir(params)
    if not (ref_dir / "reference.json").is_file():
        raise LediflowError(f"{ref_dir} has no reference features; run `lediflow reference-features` first")
    reference = json.loads((ref_dir / "reference.json").read_text())
    _check_reference(params, reference)
    cell = paths.sample_dir(params, model, setting)
    if not (cell / "samples.npy").is_file():
        raise LediflowError(f"{cell}/samples.npy is missing; run `lediflow sample --model {model} --setting {setting}`")
    samples = np.load(cell / "samples.npy", mmap_mode="r")
    record = json.loads((cell / "record.json").read_text())
    inception = InceptionFeatures(resolve_weights(cfg["inception_weights"], cache_dir(params)), device)
    if inception.provenance().get("sha256") != reference["inception"].get("sha256"):
        raise LediflowError("the reference features came from other Inception weights; rerun reference-features")
    feats = inception(samples, cfg["batch_size"])
    ref = torch.from_numpy(np.load(ref_dir / "inception.npy"))
    result = {
        "model": model, "setting": setting, "num_samples": int(len(samples)), "num_reference": int(len(ref)),
        "reference_split": reference["split"],
        "fid": fid_from_features(feats, ref),
        **kid_from_features(feats, ref, cfg["kid_subset_size"], cfg["kid_subsets"]),
        # 1000 * biased RBF-MMD^2 (sigma 10) on L2-normalised Inception features: CMMD's statistic, not CMMD
        "mmd_inception": cmmd_from_embeddings(feats, ref),
        "inception_score": IS_UNAVAILABLE,
        "cmmd": UNAVAILABLE,
        "resize": RESIZE_NOTE,
        "weights": {"inception": inception.provenance(), "clip": reference["clip"],
                    "flow_checkpoint_sha256": record["checkpoint_sha256"]},
        "sampling": {k: record[k] for k in ("space", "prior", "solver", "steps", "tol", "nfe", "latent_sampler_nfe",
                                            "seconds_per_image", "device")},
    }
    if (ref_dir / "clip.npy").is_file():
        clip = load_clip(cfg, device)
        if clip is not None and clip.provenance["sha256"] == reference["clip"]["sha256"]:
            result["cmmd"] = cmmd_from_embeddings(clip(samples, cfg["batch_size"]),
                                                  torch.from_numpy(np.load(ref_dir / "clip.npy")))
    artifacts.write_json_atomic(paths.score_file(params, model, setting), result)
    return result
