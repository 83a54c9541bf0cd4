"""Cross-run ablation tables: arms line up, 'differs' comes from the resolved params, bad input is refused."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lediflow.core import artifacts
from lediflow.studies.ablations import compare_runs, differing_keys, load_studies
from lediflow.cli import main
from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError

REPO = Path(__file__).resolve().parents[1]


def fake_run(root: Path, name: str, std_scale: float, fids: dict[str, float], paired: float = 0.3) -> Path:
    """A finished run as the pipeline leaves it: resolved params, score files, prior report."""
    steps = sorted(int(setting.split("-")[1]) for setting in fids)
    # The params name exactly the cells written below (tables read those cells and nothing else).
    params = load_params([], [f"run.name={name}", f"prior.std_scale={std_scale}", "flow.spaces=[pixel]",
                              "flow.priors=[learned]", "sample.solvers=[euler]", f"sample.steps={steps}",
                              "sample.dopri5_tolerances=[]", "sample.zero_step_cells=false"])
    run = root / name
    run.mkdir(parents=True)
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    for setting, fid in fids.items():
        steps = int(setting.split("-")[1])
        score = {"setting": setting, "fid": fid, "kid_mean": fid / 1000, "kid_std": 0.001, "cmmd": "unavailable",
                 "mmd_inception": fid / 100, "num_samples": 500,
                 "sampling": {"space": "pixel", "prior": "learned", "solver": "euler", "steps": steps, "tol": None,
                              "nfe": steps, "latent_sampler_nfe": 64,
                              "seconds_per_image": {"total": 0.01, "prior": 0.001, "flow": 0.009, "decode": 0.0}}}
        path = run / "scores" / "flow-pixel-learned" / f"{setting}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.write_sealed_json(path, score)
    report = run / "prior_report" / "pixel" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"mse_paired_x0": paired, "gaussian_over_paired": 1.75 / paired}))
    return run


def test_arms_line_up_and_differs_names_the_switch(tmp_path: Path):
    runs = [fake_run(tmp_path, "ablation-a", 0.5, {"euler-1": 80.0, "euler-4": 30.0}, paired=0.12),
            fake_run(tmp_path, "ablation-b", 1.5, {"euler-1": 90.0, "euler-4": 35.0}, paired=0.55)]
    long, wide = compare_runs(runs)
    assert list(wide.index) == ["ablation-a", "ablation-b"]
    assert wide.loc["ablation-a", "differs"] == "prior.std_scale=0.5"
    assert wide.loc["ablation-b", "pixel euler-4"] == "35.00 / 0.0350"
    assert wide.loc["ablation-a", "mse_paired_x0"] == pytest.approx(0.12)
    assert len(long) == 4 and long.set_index(["arm", "setting"]).loc[("ablation-b", "euler-1"), "fid"] == 90.0


def test_differing_keys_ignores_the_run_name_and_sees_nested_and_list_values():
    a = {"run": {"name": "x"}, "prior": {"loss": "vgl", "train": {"steps": 5}}, "sample": {"steps": [1, 2]}}
    b = {"run": {"name": "y"}, "prior": {"loss": "nll", "train": {"steps": 5}}, "sample": {"steps": [1, 4]}}
    assert differing_keys([a, b]) == ["prior.loss", "sample.steps"]


def test_arms_scored_at_different_settings_are_refused(tmp_path: Path):
    runs = [fake_run(tmp_path, "a", 0.5, {"euler-1": 80.0}), fake_run(tmp_path, "b", 1.0, {"euler-2": 60.0})]
    with pytest.raises(LediflowError, match="different solver settings"):
        compare_runs(runs)


def test_an_unfinished_arm_is_named_in_the_error(tmp_path: Path):
    done = fake_run(tmp_path, "a", 0.5, {"euler-1": 80.0})
    with pytest.raises(LediflowError, match="missing is not a finished run"):
        compare_runs([done, tmp_path / "missing"])


def test_cli_writes_the_study_table_with_its_caption(tmp_path: Path, capsys):
    runs = [fake_run(tmp_path, f"ablation-{s}", s, {"euler-1": 50.0 + s}) for s in (0.5, 1.0, 1.5)]
    out = tmp_path / "ablations"
    assert main(["compare-runs", "--study", "std_scale", "--out", str(out), "--runs", *map(str, runs)]) == 0
    md = (out / "std_scale.md").read_text()
    assert "Ablation std_scale" in md and "prior.std_scale=1.5" in md
    assert pd.read_csv(out / "std_scale_long.csv")["fid"].tolist() == [50.5, 51.0, 51.5]
    assert (out / "std_scale.tex").is_file()


def test_the_repository_studies_file_is_complete(monkeypatch):
    monkeypatch.chdir(REPO)  # paths in a studies file are relative to the repository root, as for snakemake
    spec = load_studies("configs/ablations/studies.yaml")
    assert set(spec["studies"]) == {"prior_loss", "latent_sampler", "std_scale"}
    assert all(len(arms) >= 2 for arms in spec["studies"].values())


def test_an_arm_whose_run_name_does_not_match_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "budget.yaml").write_text("{}\n")
    (tmp_path / "x.yaml").write_text("run: {name: something-else}\n")
    (tmp_path / "y.yaml").write_text("run: {name: ablation-y}\n")
    (tmp_path / "studies.yaml").write_text(yaml.safe_dump(
        {"budget": "budget.yaml", "arms_dir": ".", "out": "out", "studies": {"s": ["x", "y"]}}))
    with pytest.raises(LediflowError, match="run.name must be 'ablation-x'"):
        load_studies("studies.yaml")


def test_a_prior_only_study_compares_the_zero_step_cells_and_the_sampler(tmp_path: Path):
    runs = []
    for name, loss, x0_fid, sampler_fid in (("ablation-p", "vgl", 170.0, 9.0), ("ablation-q", "nll", 120.0, 4.0)):
        params = load_params([], [f"run.name={name}", f"prior.loss={loss}", "flow.spaces=[pixel]",
                                  "flow.priors=[learned]"])
        run = tmp_path / name
        run.mkdir()
        (run / "params.yaml").write_text(yaml.safe_dump(params))
        for setting, fid in (("prior-x0", x0_fid), ("prior-mean", x0_fid / 2)):
            score = {"setting": setting, "fid": fid, "kid_mean": fid / 1000, "cmmd": "unavailable",
                     "mmd_inception": fid / 100, "num_samples": 1000,
                     "sampling": {"space": "pixel", "prior": "learned", "solver": setting, "steps": 0, "tol": None,
                                  "nfe": 0, "latent_sampler_nfe": 64, "seconds_per_image": {"total": 0.001}}}
            path = run / "scores" / "flow-pixel-learned" / f"{setting}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            artifacts.write_sealed_json(path, score)
        report = run / "prior_report" / "pixel" / "report.json"
        report.parent.mkdir(parents=True)
        report.write_text(json.dumps({"mse_paired_x0": 0.2, "gaussian_over_paired": 8.0, "sampler_fid": sampler_fid}))
        runs.append(run)
    with pytest.raises(LediflowError, match="euler-1.json is missing"):  # no flow cells: a full comparison fails
        compare_runs(runs)
    long, wide = compare_runs(runs, cells="prior")
    assert wide.loc["ablation-q", "differs"] == "prior.loss=nll"
    assert wide.loc["ablation-q", "pixel prior-x0"].startswith("120.00 / ")
    assert wide.loc["ablation-p", "sampler_fid"] == 9.0 and set(long["nfe"]) == {0}
    spec = load_studies(REPO / "configs/prior_design/studies.yaml")
    assert spec["target"] == "prior" and len(spec["studies"]["prior_design"]) == 9


def test_a_study_target_must_be_known(tmp_path: Path):
    spec = yaml.safe_load((REPO / "configs/prior_design/studies.yaml").read_text())
    spec.update(target="flows", budget=str(REPO / spec["budget"]), arms_dir=str(REPO / spec["arms_dir"]))
    bad = tmp_path / "studies.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(LediflowError, match="target 'flows' is not one of tables, prior"):
        load_studies(bad)


def _gaussian_run(root: Path, name: str, patch: int, fids: dict[str, float], seconds: float) -> Path:
    """A finished Gaussian-only run (a backbone arm): params, score files with error bars, the flow's manifest."""
    params = load_params([], [f"run.name={name}", f"flow.patch_size={patch}", "flow.spaces=[pixel]",
                              "flow.priors=[gaussian]", "sample.solvers=[euler]", "sample.steps=[8, 16]",
                              "sample.dopri5_tolerances=[]", "sample.baseline_extra_steps={}"])
    run = root / name
    (run / "models" / "flow-pixel-gaussian").mkdir(parents=True)
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    (run / "models" / "flow-pixel-gaussian" / "manifest.json").write_text(
        json.dumps({"training": {"step": 4400 // patch, "train_seconds": seconds}}))
    for setting, fid in fids.items():
        steps = int(setting.split("-")[1])
        score = {"setting": setting, "fid": fid, "fid_se": 1.0, "kid_mean": fid / 1000, "kid_se": 0.0001,
                 "cmmd": "unavailable", "mmd_inception": fid / 100, "num_samples": 1000,
                 "sampling": {"space": "pixel", "prior": "gaussian", "solver": "euler", "steps": steps, "tol": None,
                              "nfe": steps, "latent_sampler_nfe": 0, "seconds_per_image": {"total": 0.01}}}
        path = run / "scores" / "flow-pixel-gaussian" / f"{setting}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.write_sealed_json(path, score)
    return run


def test_a_flow_only_study_reports_each_arms_training_compute_and_best_cell(tmp_path: Path, capsys):
    runs = [_gaussian_run(tmp_path, "ablation-p4", 4, {"euler-8": 110.0, "euler-16": 107.0}, 1000.0),
            _gaussian_run(tmp_path, "ablation-p2", 2, {"euler-8": 90.0, "euler-16": 95.0}, 990.0)]
    long, wide = compare_runs(runs, cells="scores")
    assert wide.loc["ablation-p2", "best_fid"] == "90.0 ± 2.0 (pixel euler-8)"
    assert wide.loc["ablation-p4", "best_fid"] == "107.0 ± 2.0 (pixel euler-16)"
    assert wide.loc["ablation-p4", "flow_train_seconds"] == 1000.0 and wide.loc["ablation-p2", "flow_steps"] == 2200
    assert wide.loc["ablation-p2", "differs"] == "flow.patch_size=2"
    assert set(long["prior"]) == {"gaussian"} and len(long) == 4
    assert "mse_paired_x0" not in wide.columns  # no prior report in a Gaussian-only arm: no empty column
    out = tmp_path / "out"
    assert main(["compare-runs", "--study", "bb", "--cells", "scores", "--out", str(out),
                 "--runs", *map(str, runs)]) == 0
    assert "FID +- 95%" in (out / "bb.md").read_text()
    assert wide.loc["ablation-p2", "pixel euler-16"] == "95.0 ± 2.0"  # scores studies carry intervals per cell


def test_training_compute_commits_the_record_so_a_fresh_clone_reports_the_same_seconds(tmp_path: Path):
    import shutil

    from lediflow.studies.ablations import training_compute

    run = _gaussian_run(tmp_path, "ablation-p4", 4, {"euler-8": 110.0}, 1000.0)
    assert training_compute(run) == {"flow_steps": 1100, "flow_train_seconds": 1000.0}  # from the manifest
    assert json.loads((run / "training" / "flow-pixel-gaussian.json").read_text())["train_seconds"] == 1000.0
    shutil.rmtree(run / "models")  # a fresh clone: arms' models are not committed, their training/ is
    assert training_compute(run) == {"flow_steps": 1100, "flow_train_seconds": 1000.0}
    shutil.rmtree(run / "training")
    assert training_compute(run)["flow_steps"] != training_compute(run)["flow_steps"]  # NaN: nothing recorded


def test_backbone_arms_train_for_the_reference_wall_time_by_the_committed_step_times(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import backbone

    spec = load_studies("configs/backbone/studies.yaml")
    assert spec["target"] == "scores" and set(spec["arm_files"]) == set(backbone.ARMS)
    seconds, defaults = backbone.read_tsv(), load_params(["params.yaml"])
    references = {}
    for arm, (space, model, patch) in backbone.ARMS.items():
        references.setdefault(space, arm)
        flow = load_params(["params.yaml", spec["budget"], spec["arm_files"][arm]])["flow"]
        assert flow["priors"] == ["gaussian"] and flow["spaces"] == [space] and flow["model"] == model
        assert flow["patch_size" if space == "pixel" else "latent_patch_size"] == patch
        expected = backbone.equal_time_steps(backbone.reference_steps(defaults), seconds[references[space]],
                                             seconds[arm])
        assert flow["train"]["steps"] + flow["baseline_extra_steps"] == expected, arm
    # the reference arms are today's defaults at today's baseline budget
    assert backbone.ARMS[references["pixel"]][1:] == (defaults["flow"]["model"], defaults["flow"]["patch_size"])
    assert backbone.ARMS[references["latent"]][2] == defaults["flow"]["latent_patch_size"]


def test_equal_time_steps_scale_inversely_with_step_time_and_round_to_hundreds(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import backbone
    assert backbone.equal_time_steps(4400, 1.0, 1.0) == 4400
    assert backbone.equal_time_steps(4400, 1.0, 4.0) == 1100
    assert backbone.equal_time_steps(4400, 1.0, 3.0) == 1500  # 1466.7 -> nearest hundred
    assert backbone.equal_time_steps(4400, 1.0, 1000.0) == 100  # never below one hundred steps


def test_an_arm_written_before_a_key_existed_does_not_differ_in_it(tmp_path: Path):
    runs = [fake_run(tmp_path, "ablation-a", 0.5, {"euler-1": 80.0}), fake_run(tmp_path, "ablation-b", 1.5, {"euler-1": 90.0})]
    old = yaml.safe_load((runs[0] / "params.yaml").read_text())
    del old["run"]["precision"], old["data"]["hflip"]  # as a params.yaml from before the GPU settings existed reads
    (runs[0] / "params.yaml").write_text(yaml.safe_dump(old))
    _, wide = compare_runs(runs)
    assert wide.loc["ablation-a", "differs"] == "prior.std_scale=0.5"


def test_a_cell_against_the_first_arm_is_bootstrapped_jointly_where_the_arms_share_their_resamples():
    import numpy as np

    from lediflow.studies.ablations import difference_to_first

    rng = np.random.default_rng(0)
    shared = rng.normal(0, 2.0, 100)  # the resample both arms drew: most of each replicate's spread
    first, second = 50 + shared + rng.normal(0, 0.3, 100), 60 + shared + rng.normal(0, 0.3, 100)
    long = pd.DataFrame({"arm": ["a", "b"], "space": "pixel", "setting": "euler-1", "fid": [50.0, 60.0],
                         "fid_se": [first.std(ddof=1), second.std(ddof=1)], "num_samples": 500})
    replicates = {("a", "pixel", "euler-1"): list(first), ("b", "pixel", "euler-1"): list(second)}
    joint = difference_to_first(long, replicates, {"a": 0, "b": 0}).iloc[1]
    apart = difference_to_first(long, replicates, {"a": 0, "b": 1}).iloc[1]  # other seeds: other resamples
    assert joint.fid_minus_first == apart.fid_minus_first == 10.0
    assert joint.fid_minus_first_how == "joint bootstrap" and apart.fid_minus_first_how == "independent"
    assert joint.fid_minus_first_ci < 0.3 * apart.fid_minus_first_ci  # the shared noise cancels in the difference
    assert joint.fid_minus_first_ci == pytest.approx(1.959964 * np.std(second - first, ddof=1))
