"""lediflow generate: images from a run's trained model, outside the run layout's sample cells."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lediflow.core import artifacts
from lediflow.pipeline import config
from lediflow.method.checkpoint import save_model
from lediflow.core.errors import LediflowError
from lediflow.method.networks.dit import build_dit
from lediflow.pipeline import paths
from lediflow.pipeline.stages.generate import generate, locate_run, parse_seeds, run_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy_run(tmp_path: Path) -> Path:
    """A run folder with one Gaussian pixel flow (random dit-xs weights at 16x16, one channel)."""
    params = config.load_params([REPO / "configs/smoke.yaml"], [
        "run.name=toy", f"run.results_dir={tmp_path}", "data.resolution=16", "data.channels=1",
        "flow.spaces=[pixel]", "flow.priors=[gaussian]", "flow.patch_size=4"])
    run = tmp_path / "toy"
    (run / "models" / "flow-pixel-gaussian").mkdir(parents=True)
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    torch.manual_seed(0)
    model = build_dit(params["flow"]["model"], 16, 1, 4)
    save_model(run / "models" / "flow-pixel-gaussian", "dit", model, model.state_dict())
    artifacts.write_manifest(run / "models" / "flow-pixel-gaussian", "train-flow", {})  # as the training stage does
    return run


def test_images_do_not_depend_on_the_batch_and_land_as_png_and_npz(toy_run: Path, tmp_path: Path):
    one = generate(toy_run, "flow-pixel-gaussian", "euler-2", list(range(6)), 6, "cpu", tmp_path / "a", False)
    two = generate(toy_run, "flow-pixel-gaussian", "euler-2", list(range(6)), 4, "cpu", tmp_path / "b", False)
    a, b = np.load(one["npz"]), np.load(two["npz"])
    assert a["images"].shape == (6, 1, 16, 16) and a["images"].dtype == np.uint8 and one["nfe"] == 2
    assert np.array_equal(a["images"], b["images"]) and list(a["seeds"]) == list(range(6))
    assert Path(one["png"]).is_file()
    # image 3 alone is image 3 of the batch: per-image seeds
    three = generate(toy_run, "flow-pixel-gaussian", "euler-2", [3], 1, "cpu", tmp_path / "c", False)
    assert np.array_equal(np.load(three["npz"])["images"][0], a["images"][3])


def test_seeds_and_bad_requests_are_one_line(tmp_path: Path):
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    with pytest.raises(LediflowError, match="e.g. 0-63"):
        parse_seeds("a-b")
    fresh = tmp_path / "smoke"  # what a fresh clone holds of a run: its params, no weights (those are DVC's)
    fresh.mkdir()
    (fresh / "params.yaml").write_text((REPO / "results/smoke/params.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", "lediflow.cli", "generate", "--run", str(fresh),
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and "holds no trained weights" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_equal_nfe_figure_puts_both_flows_at_each_step_count_side_by_side(tmp_path: Path):
    from PIL import Image

    from lediflow.analysis.figures import equal_nfe_grid

    rng = np.random.default_rng(0)
    strips = {prior: {s: rng.integers(0, 256, (5, 1, 8, 8), dtype=np.uint8) for s in (1, 2, 4)}
              for prior in ("gaussian", "learned")}
    made = equal_nfe_grid(strips, "pixel", tmp_path)
    assert [p.name for p in made] == ["equal_nfe_pixel.png", "equal_nfe_pixel.pdf"]
    six_rows = Image.open(made[0]).size[1]
    two_rows = Image.open(equal_nfe_grid({p: {1: s[1]} for p, s in strips.items()}, "pixel", tmp_path)[0]).size[1]
    assert six_rows > 2.5 * two_rows  # a row per flow and step count: both flows at 1, 2 and 4 steps


def test_exported_weights_draw_the_same_images_and_carry_no_checkpoints(toy_run: Path, tmp_path: Path):
    from lediflow.pipeline.stages.export import export_weights

    (toy_run / "models" / "flow-pixel-gaussian" / "checkpoints" / "step_00000001").mkdir(parents=True)
    shipped = tmp_path / "shipped" / "toy-weights"
    sizes = export_weights(run_params(toy_run), ["flow-pixel-gaussian"], shipped)
    assert list(sizes) == ["flow-pixel-gaussian"] and sizes["flow-pixel-gaussian"] > 0
    assert not (shipped / "models" / "flow-pixel-gaussian" / "checkpoints").exists()
    here = generate(toy_run, "flow-pixel-gaussian", "euler-2", [0, 1, 2], 3, "cpu", tmp_path / "a", False)
    there = generate(shipped, "flow-pixel-gaussian", "euler-2", [0, 1, 2], 3, "cpu", tmp_path / "b", False)
    assert np.array_equal(np.load(here["npz"])["images"], np.load(there["npz"])["images"])
    weights = shipped / "models" / "flow-pixel-gaussian" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))  # a damaged copy is refused, never drawn from
    with pytest.raises(LediflowError, match="is damaged"):
        generate(shipped, "flow-pixel-gaussian", "euler-2", [0], 1, "cpu", tmp_path / "c", False)


def test_the_committed_weights_verify_and_draw(tmp_path: Path):
    """What a fresh clone can do at once: the shipped default-run weights load (every file checked against its
    manifest) and give images; LeDiFlow's one Euler step and the prior's own sample differ (the flow acts)."""
    shipped = REPO / "pretrained" / "fashion-mnist-32"
    one = generate(shipped, "flow-pixel-learned", "euler-1", [0, 1, 2, 3], 4, "cpu", tmp_path / "a", False)
    zero = generate(shipped, "flow-pixel-learned", "prior-x0", [0, 1, 2, 3], 4, "cpu", tmp_path / "b", False)
    images = np.load(one["npz"])["images"]
    assert images.shape == (4, 1, 32, 32) and one["nfe"] == 1 and images.std() > 10
    assert not np.array_equal(images, np.load(zero["npz"])["images"])


def test_the_committed_weights_are_found_from_outside_the_clone_and_a_wrong_folder_says_where_they_are(
        tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert locate_run(paths.SHIPPED_WEIGHTS) == REPO / paths.SHIPPED_WEIGHTS
    assert run_params(locate_run(paths.SHIPPED_WEIGHTS))["run"]["name"] == "fashion-mnist-32"
    assert locate_run("results/default") == Path("results/default")  # only the default is looked up elsewhere
    with pytest.raises(LediflowError, match="run it from the repository's root"):
        run_params(Path(paths.SHIPPED_WEIGHTS))
    with pytest.raises(LediflowError, match="pass a finished run's folder"):
        run_params(tmp_path)
