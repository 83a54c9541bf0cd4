"""Committed tables regenerate from what git holds alone (no DVC output), byte for byte, with one-line errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _git_files(prefix: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", prefix], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


def _committed_runs() -> list[str]:
    """Runs whose tables are committed (prior-only study arms commit scores and reports, no tables)."""
    files = _git_files("results")
    with_params = {Path(f).parts[1] for f in files if f.endswith("/params.yaml") and len(Path(f).parts) == 3}
    with_tables = {Path(f).parts[1] for f in files if len(Path(f).parts) > 3 and Path(f).parts[2] == "tables"}
    return sorted(with_params & with_tables)


def _clone_results(tmp_path: Path, run: str) -> Path:
    """Copy exactly the committed files of results/<run> (what a fresh clone has: no models, samples, ...)."""
    for name in _git_files(f"results/{run}"):
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, target)
    return tmp_path / "results" / run


def _lediflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lediflow.cli", *args], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("run", _committed_runs())
def test_committed_tables_regenerate_byte_identically_without_dvc_outputs(tmp_path: Path, run: str):
    folder = _clone_results(tmp_path, run)
    assert not (folder / "models").exists() and not (folder / "samples").exists()
    made = _lediflow("tables", "--config", str(folder / "params.yaml"),
                     "--set", f"run.results_dir={tmp_path / 'results'}")
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stderr
    tables = [f for f in _git_files(f"results/{run}/tables")]
    assert tables
    for name in tables:
        assert (tmp_path / name).read_bytes() == (REPO / name).read_bytes(), name


def test_figures_drawn_from_committed_inputs_carry_no_date(tmp_path: Path):
    """A second regeneration gives the same figure bytes (one run: every run draws through the same code,
    and a second `lediflow tables` per committed run would grow the suite with every arm of a study)."""
    folder = _clone_results(tmp_path, "default")
    regenerate = ["tables", "--config", str(folder / "params.yaml"), "--set", f"run.results_dir={tmp_path / 'results'}"]
    assert _lediflow(*regenerate).returncode == 0
    pdfs = sorted((folder / "figures").glob("quality_vs_nfe_*.pdf"))
    first = [p.read_bytes() for p in pdfs]
    assert _lediflow(*regenerate).returncode == 0
    assert first and [p.read_bytes() for p in pdfs] == first


def test_a_missing_score_file_is_one_line_naming_what_to_run(tmp_path: Path):
    folder = _clone_results(tmp_path, "smoke")
    victim = next((folder / "scores").glob("flow-*/euler-1.json"))
    victim.unlink()
    made = _lediflow("tables", "--config", str(folder / "params.yaml"),
                     "--set", f"run.results_dir={tmp_path / 'results'}")
    assert made.returncode != 0 and "Traceback" not in made.stderr
    lines = made.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{victim.name} is missing" in lines[0] and "snakemake" in lines[0], lines


@pytest.mark.parametrize("victim", ["scores/flow-pixel-learned/euler-1.json", "timing/pixel.json",
                                    "scores/data_floor.json"])
def test_an_edited_result_file_is_refused_in_one_line_and_kept_aside(tmp_path: Path, victim: str):
    import json

    folder = _clone_results(tmp_path, "smoke")
    path = folder / victim
    record = json.loads(path.read_text())
    key = "fid" if "fid" in record else "device"
    record[key] = record[key] + 0.5 if key == "fid" else "another machine"  # still valid JSON
    path.write_text(json.dumps(record))
    made = _lediflow("tables", "--config", str(folder / "params.yaml"),
                     "--set", f"run.results_dir={tmp_path / 'results'}")
    assert made.returncode != 0 and "Traceback" not in made.stderr
    lines = made.stderr.strip().splitlines()
    assert len(lines) == 1 and "no longer matches the checksum" in lines[0], lines
    assert not path.exists() and path.with_name(path.name + ".damaged").is_file()  # nothing lost


@pytest.mark.parametrize("studies", ["configs/ablations/studies.yaml", "configs/coupling/studies.yaml",
                                     "configs/backbone/studies.yaml"])
def test_committed_ablation_tables_regenerate_byte_identically(tmp_path: Path, studies: str):
    import yaml

    spec = yaml.safe_load((REPO / studies).read_text())
    out = tmp_path / "ablations"
    for study, arms in spec["studies"].items():
        runs = [str(_clone_results(tmp_path, f"ablation-{arm}")) for arm in arms]
        made = _lediflow("compare-runs", "--study", study, "--cells", spec.get("target", "tables"), "--out", str(out),
                         "--runs", *runs)
        assert made.returncode == 0, made.stderr
        for suffix in (".md", ".csv", ".tex", "_long.csv"):
            committed = REPO / spec["out"] / f"{study}{suffix}"
            assert (out / committed.name).read_bytes() == committed.read_bytes(), committed.name


def test_committed_scaling_tables_regenerate_byte_identically(tmp_path: Path):
    import pandas as pd

    committed = _git_files("results/scaling")
    if "results/scaling/scaling_runs.csv" not in committed:
        pytest.skip("no arm of the scaling study is committed yet")
    import yaml

    runs = list(dict.fromkeys(pd.read_csv(REPO / "results/scaling/scaling_runs.csv")["run"]))  # the study's order
    folders = [str(_clone_results(tmp_path, run)) for run in runs]
    # the runs that add OT-CFM beside an arm, as workflow/scaling.smk passes them: those of the study, finished
    study = yaml.safe_load((REPO / "configs/scaling/study.yaml").read_text())
    extra = [str(_clone_results(tmp_path, run)) for run in study.get("method_runs", [])
             if (REPO / "results" / run / "tables" / "scores_long.csv").is_file()]
    out = tmp_path / "scaling"
    made = _lediflow("scaling", "--runs", *folders, "--method-runs", *extra, "--out", str(out))
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stderr
    methods = ("scaling_methods.md", "scaling_methods.csv", "scaling_methods.tex", "scaling_methods_runs.csv")
    for name in ("scaling.md", "scaling.csv", "scaling.tex", "scaling_cells.md", "scaling_cells.csv",
                 "scaling_cells.tex", "scaling_runs.csv", "scaling_summary.csv",
                 "scaling_steps.md", "scaling_steps.csv", "scaling_steps.tex", *(methods if extra else ())):
        assert (out / name).read_bytes() == (REPO / "results/scaling" / name).read_bytes(), name


def test_committed_methods_tables_regenerate_byte_identically(tmp_path: Path):
    # the runs `lediflow methods` read, in workflow/methods.smk's order: the default run, then each finished arm
    runs = ["default"] + [run for run in ("otcfm-pixel-x1-s0", "otcfm-latent-x1-s0")
                          if (REPO / "results" / run / "tables" / "scores_long.csv").is_file()]
    if "results/methods/methods.md" not in _git_files("results/methods"):
        pytest.skip("no methods table committed yet")
    folders = [str(_clone_results(tmp_path, run)) for run in runs]
    out = tmp_path / "methods"
    made = _lediflow("methods", "--runs", *folders, "--out", str(out))
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stderr
    for name in ("methods.md", "methods.csv", "methods.tex", "methods_best.md", "methods_best.csv"):
        assert (out / name).read_bytes() == (REPO / "results/methods" / name).read_bytes(), name
