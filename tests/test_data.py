import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lediflow.core import artifacts

from lediflow.pipeline import config
import hashlib

from lediflow.pipeline.data import fashion_mnist, image_folder, prepare
from lediflow.pipeline.data.download import DownloadError, download
from lediflow.core.errors import LediflowError

needs_debian = pytest.mark.skipif(
    not fashion_mnist.DEBIAN_DIR.is_dir(),
    reason="Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)",
)


def _params(tmp_path: Path, *sets: str) -> dict:
    return config.load_params([], [f"run.results_dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}", *sets])


def _idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


# --- Fashion-MNIST ---------------------------------------------------------

def test_parse_idx_roundtrip():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(fashion_mnist.parse_idx(gzip.decompress(_idx_gz(array))), array)


@needs_debian
def test_fashion_mnist_full_splits_from_debian(tmp_path: Path):
    manifest = prepare(_params(tmp_path))
    folder = tmp_path / "results" / "default" / "data"
    train = np.load(folder / "train.npy", mmap_mode="r")
    test = np.load(folder / "test.npy", mmap_mode="r")
    assert train.shape == (60000, 1, 32, 32) and test.shape == (10000, 1, 32, 32)
    assert train.dtype == np.uint8
    assert manifest["counts"] == {"train": 60000, "test": 10000}
    assert manifest["source_location"]["how"] == "debian-package"
    # The 2-pixel zero border of the padding, and real content inside it.
    assert train[:, :, :2].max() == 0 and train[:, :, :, -2:].max() == 0 and train.max() == 255
    assert np.bincount(np.load(folder / "train_labels.npy")).tolist() == [6000] * 10
    assert artifacts.verify_manifest(folder) == []


@needs_debian
def test_fashion_mnist_downloads_from_mirror_with_checksum(tmp_path: Path, http_server, monkeypatch):
    # No Debian copy, no cache: the mirror (a loopback server holding the real files) is used.
    for name in fashion_mnist.FILES:
        http_server.files[name] = (fashion_mnist.DEBIAN_DIR / name).read_bytes()
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    manifest = prepare(_params(tmp_path, f"data.url={http_server.url}", "data.max_train=100", "data.max_test=10"))
    assert manifest["source_location"]["how"] == "download"
    assert manifest["counts"] == {"train": 100, "test": 10}
    assert sorted(name for name, _ in http_server.requests) == sorted(fashion_mnist.FILES)


def test_fashion_mnist_rejects_foreign_files(tmp_path: Path):
    folder = tmp_path / "fm"
    folder.mkdir()
    for name in fashion_mnist.FILES:
        shape = (5, 28, 28) if "images" in name else (5,)
        (folder / name).write_bytes(_idx_gz(np.zeros(shape)))
    with pytest.raises(LediflowError, match="does not hold the official Fashion-MNIST"):
        prepare(_params(tmp_path, f"data.path={folder}"))
    assert not (tmp_path / "results" / "default" / "data").exists()


def test_missing_dataset_offline_is_one_clear_error(tmp_path: Path):
    code = subprocess.run(
        [sys.executable, "-m", "lediflow.cli", "prepare-data",
         "--set", f"run.results_dir={tmp_path / 'results'}", "--set", f"data.path={tmp_path / 'nowhere'}"],
        capture_output=True, text=True,
    )
    assert code.returncode != 0
    assert code.stderr.strip().count("\n") == 0 and "lacks train-images-idx3-ubyte.gz" in code.stderr
    assert not (tmp_path / "results" / "default" / "data").exists()


def test_unreachable_mirror_names_the_fix(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(LediflowError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.locate(None, tmp_path / "cache", "http://127.0.0.1:9/")


# --- image folder ------------------------------------------------------------

def test_image_folder_rgb_split_and_shapes(tmp_path: Path, image_tree: Path):
    manifest = prepare(_params(tmp_path, "data.source=image-folder", f"data.path={image_tree}",
                               "data.channels=3", "data.resolution=16", "data.test_fraction=0.25"))
    assert manifest["counts"] == {"train": 9, "test": 3}
    train = np.load(tmp_path / "results/default/data/train.npy")
    assert train.shape == (9, 3, 16, 16)


def test_resize_center_crop_keeps_the_centre():
    wide = np.zeros((10, 30), dtype=np.uint8)
    wide[:, 10:20] = 255  # white centre third
    out = np.asarray(image_folder.resize_center_crop(Image.fromarray(wide), 10))
    assert out.shape == (10, 10) and out[:, 2:8].min() > 200


def test_corrupt_image_errors_with_its_path(tmp_path: Path, image_tree: Path):
    bad = image_tree / "class0" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(LediflowError, match="broken.png is not a readable image"):
        prepare(_params(tmp_path, "data.source=image-folder", f"data.path={image_tree}"))
    assert not (tmp_path / "results" / "default" / "data").exists()


def test_corrupt_image_skipped_and_counted(tmp_path: Path, image_tree: Path):
    (image_tree / "class1" / "broken.jpg").write_bytes(b"garbage")
    manifest = prepare(_params(tmp_path, "data.source=image-folder", f"data.path={image_tree}",
                               "data.on_bad_image=skip", "data.resolution=8"))
    assert manifest["skipped_images"] == 1
    assert manifest["skipped_paths"][0].endswith("broken.jpg")
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == 12
    for split in ("train", "test"):
        array = np.load(tmp_path / f"results/default/data/{split}.npy")
        assert array.shape[0] == manifest["counts"][split] and array.shape[1:] == (1, 8, 8)
    assert artifacts.verify_manifest(tmp_path / "results/default/data") == []


# --- downloads and the paper datasets ---------------------------------------

def test_download_resumes_after_dropped_connection(tmp_path: Path, http_server):
    payload = np.random.default_rng(1).bytes(300_000)
    http_server.files["blob.bin"] = payload
    http_server.cut_first = 100_000
    digest = download(http_server.url + "blob.bin", tmp_path / "blob.bin",
                      sha256=hashlib.sha256(payload).hexdigest(),
                      progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == payload
    ranges = [r for _, r in http_server.requests]
    assert ranges[0] is None and ranges[1] == "bytes=100000-"
    assert digest == artifacts.sha256_file(tmp_path / "blob.bin")


def test_download_checksum_mismatch_removes_file(tmp_path: Path, http_server):
    http_server.files["blob.bin"] = b"some bytes"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(http_server.url + "blob.bin", tmp_path / "blob.bin", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def _zip_of(tree: Path, archive: Path) -> bytes:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(tree.parent))
    return archive.read_bytes()


@pytest.mark.parametrize("source", ["afhq", "ffhq", "lhq"])
def test_paper_dataset_downloads_extracts_and_prepares(tmp_path: Path, image_tree: Path, http_server, source):
    blob = _zip_of(image_tree, tmp_path / "served.zip")
    http_server.files["dataset.zip"] = blob
    http_server.cut_first = len(blob) // 2
    sha = artifacts.sha256_file(tmp_path / "served.zip")
    manifest = prepare(_params(tmp_path, f"data.source={source}", f"data.url={http_server.url}dataset.zip",
                               f"data.sha256={sha}", "data.channels=3", "data.resolution=16"))
    assert manifest["source_location"] == {"how": "download", "url": http_server.url + "dataset.zip", "sha256": sha}
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == 12
    assert any(r is not None for _, r in http_server.requests)  # it resumed


def test_paper_dataset_without_address_says_where_to_get_it(tmp_path: Path):
    with pytest.raises(LediflowError, match="github.com/NVlabs/ffhq-dataset"):
        prepare(_params(tmp_path, "data.source=ffhq"))
