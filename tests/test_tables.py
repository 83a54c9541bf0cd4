"""The speedup and ratio definitions (lediflow/analysis/comparisons.py) on hand-made curves, and table formatting."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lediflow.analysis import comparisons, tables
from lediflow.analysis.tables import Z95

REPO = Path(__file__).resolve().parents[1]


def test_first_nfe_reaching_interpolates_on_log_nfe():
    nfe = np.array([1.0, 2.0, 4.0, 8.0])
    fid = np.array([40.0, 30.0, 20.0, 10.0])
    assert comparisons.first_nfe_reaching(nfe, fid, 40.0) == 1.0
    # 25 lies halfway between 30 (NFE 2) and 20 (NFE 4) in FID, so halfway in log NFE: sqrt(8).
    assert comparisons.first_nfe_reaching(nfe, fid, 25.0) == pytest.approx(math.sqrt(8))
    assert comparisons.first_nfe_reaching(nfe, fid, 5.0) is None


def _scores(base_fid, ledi_fid, se=0.0, steps=(1, 2, 4, 8), base_steps=None, ms=None):
    """One space, Euler; ms/image = NFE (+1 ms of prior overhead for LeDiFlow) unless given."""
    rows = []
    for prior, fids, grid in (("gaussian", base_fid, base_steps or steps), ("learned", ledi_fid, steps)):
        for k, (n, fid) in enumerate(zip(grid, fids)):
            cost = ms[prior][k] if ms else float(n) + (1.0 if prior == "learned" else 0.0)
            rows.append({"space": "pixel", "prior": prior, "solver": "euler", "steps": n, "tol": None,
                         "nfe": float(n), "ms_per_image": cost, "fid": fid, "fid_se": se, "kid_mean": fid / 100,
                         "kid_se": se / 100, "cmmd": math.nan, "mmd_inception": fid / 10})
    return pd.DataFrame(rows)


def test_speedup_by_hand_with_wall_clock_and_interpolation():
    scores = _scores([80.0, 50.0, 30.0, 20.0, 20.0], [40.0, 25.0, 15.0, 12.0], base_steps=(1, 2, 4, 8, 16))
    speed = comparisons.speedup(scores).iloc[0]
    assert speed["target_fid"] == 20.0 and speed["baseline_nfe"] == 8.0 and speed["baseline_nfe_bound"] == "="
    # 20 lies 1/2 of the way from 25 (NFE 2) to 15 (NFE 4): NFE 2 * 2^(1/2), an exact (interpolated) speedup.
    assert speed["ledi_nfe"] == pytest.approx(2 * math.sqrt(2)) and speed["speedup_bound"] == "="
    assert speed["speedup_nfe"] == pytest.approx(8 / (2 * math.sqrt(2)))
    # LeDiFlow's ms/image at that NFE, on the same log-NFE line: halfway from 3 ms to 5 ms (1 ms prior overhead)
    assert speed["ledi_ms_per_image"] == pytest.approx(4.0)
    assert speed["speedup_wall_clock"] == pytest.approx(8.0 / 4.0)
    assert speed["ledi_nfe_grid"] == 4.0 and speed["speedup_nfe_grid"] == 2.0  # the steps a solver can run
    # the +10% target (22) is reached by the baseline between NFE 4 (30) and 8 (20), at 4 * 2^(8/10)
    assert speed["speedup_nfe_plus10pct"] == pytest.approx(4 * 2 ** 0.8 / (2 * 2 ** (3 / 10)))


def test_two_baseline_cells_within_tolerance_cannot_move_the_target():
    # Baseline plateau: 4 and 8 steps differ by 0.002 with se 1; swapping them must not change NFE_b.
    one = comparisons.speedup(_scores([90.0, 60.0, 50.000, 50.002], [70.0, 49.0, 45.0, 44.0], se=1.0)).iloc[0]
    two = comparisons.speedup(_scores([90.0, 60.0, 50.002, 50.000], [70.0, 49.0, 45.0, 44.0], se=1.0)).iloc[0]
    assert one["baseline_nfe"] == two["baseline_nfe"] == 4.0
    assert one["speedup_nfe_grid"] == two["speedup_nfe_grid"] == 2.0  # LeDiFlow's 2 steps are within tolerance
    assert one["speedup_nfe"] == pytest.approx(two["speedup_nfe"], rel=1e-3)
    # Without error bars the same curves flip the target to 8 steps: the tolerance is what holds it.
    flipped = comparisons.speedup(_scores([90.0, 60.0, 50.002, 50.000], [70.0, 49.0, 45.0, 44.0])).iloc[0]
    assert flipped["baseline_nfe"] == 8.0


def test_a_cell_outside_tolerance_is_not_a_plateau():
    speed = comparisons.speedup(_scores([90.0, 60.0, 55.0, 50.0], [70.0, 49.0, 45.0, 44.0], se=1.0)).iloc[0]
    assert Z95 * math.sqrt(2) < 5.0  # 55 vs 50 is resolved
    assert speed["baseline_nfe"] == 8.0 and speed["baseline_nfe_bound"] == ">="  # still improving at the end
    assert speed["speedup_bound"] == ">="  # set by the grid's edge
    assert "still improving" in speed["note"]


def test_grid_edge_speedups_are_marked_as_bounds():
    first = comparisons.speedup(_scores([80.0, 50.0, 30.0, 20.0, 20.0], [19.0, 15.0, 14.0, 13.0],
                                        base_steps=(1, 2, 4, 8, 16))).iloc[0]
    assert first["speedup_bound"] == ">=" and first["speedup_nfe"] == 8.0  # LeDiFlow done at its first point
    never = comparisons.speedup(_scores([80.0, 50.0, 30.0, 20.0, 20.0], [60.0, 40.0, 30.0, 25.0],
                                        base_steps=(1, 2, 4, 8, 16))).iloc[0]
    assert never["speedup_bound"] == "<=" and never["speedup_nfe"] == 1.0  # at most NFE_b / LeDiFlow's last NFE
    assert math.isnan(never["ledi_nfe"]) and "never" in never["note"]


@pytest.mark.parametrize("seed, target, speedup, at_plus5pct", [(0, 49.1, 14.3, ">="), (1, 46.2, 13.3, "=")])
def test_a_first_point_within_tolerance_but_above_the_target_is_interpolated_not_a_bound(seed, target, speedup,
                                                                                         at_plus5pct):
    # The committed latent x4 arms: LeDiFlow's Euler 1 (50.3, 48.6) lies within tolerance of the baseline's best
    # but above it, so LeDiFlow reaches the target between 1 and 2 steps: an exact speedup, not ">= 16".
    scores = pd.read_csv(REPO / f"results/scaling-latent-x4-s{seed}/tables/scores_long.csv")
    speed = comparisons.speedup(scores).set_index("solver").loc["euler"]
    assert speed["target_fid"] == pytest.approx(target, abs=0.05) and speed["baseline_nfe"] == 16
    assert speed["speedup_bound"] == "=" and 1 < speed["ledi_nfe"] < 2
    assert speed["speedup_nfe"] == pytest.approx(speedup, abs=0.05)
    assert speed["speedup_nfe_grid"] == 16  # the old rule's figure: the first grid point within tolerance
    # 5% above the best: seed 0's Euler 1 (50.3) is below 51.6, a bound; seed 1's (48.6) still above 48.5
    assert speed["speedup_bound_plus5pct"] == at_plus5pct


def test_inverse_speedup_reads_the_baseline_nfe_for_ledi_fid_and_says_not_reached():
    scores = _scores([80.0, 50.0, 30.0, 20.0], [40.0, 25.0, 15.0, 12.0])
    inverse = comparisons.inverse_speedup(scores).set_index("steps")
    # LeDiFlow's 1 step (40) is reached by the baseline halfway between NFE 2 (50) and 4 (30), in log NFE
    assert inverse.loc[1, "baseline_nfe"] == pytest.approx(2 * 2 ** 0.5) and inverse.loc[1, "bound"] == "="
    assert inverse.loc[1, "inverse_speedup"] == pytest.approx(2 * 2 ** 0.5)
    assert inverse.loc[2, "inverse_speedup"] == pytest.approx(4 * 2 ** 0.5 / 2)  # 25: halfway from 30 to 20
    assert inverse.loc[4, "bound"] == ">" and "not reached" in inverse.loc[4, "note"]  # 15 < baseline best 20
    assert inverse.loc[4, "inverse_speedup"] == pytest.approx(8 / 4)  # at least the baseline's last NFE / 4


def test_quality_ratio_geomean_and_dopri5_on_its_own_line():
    scores = _scores([80.0, 50.0, 30.0, 20.0], [40.0, 25.0, 15.0, 20.0], se=0.5)
    adaptive = [{"space": "pixel", "prior": p, "solver": "dopri5", "steps": None, "tol": 1e-5, "nfe": n,
                 "ms_per_image": n, "fid": f, "fid_se": 0.5, "kid_mean": f / 100, "kid_se": 0.005, "cmmd": math.nan,
                 "mmd_inception": f / 10} for p, n, f in (("gaussian", 180.0, 22.0), ("learned", 100.0, 20.0))]
    ratio = comparisons.quality_ratio(pd.concat([scores, pd.DataFrame(adaptive)], ignore_index=True))
    cells = ratio[ratio["steps"].isin(["1", "2", "4", "8"])]
    assert list(cells["fid"]) == pytest.approx([2.0, 2.0, 2.0, 1.0])
    mean = ratio[ratio["steps"] == "geomean"].iloc[0]
    assert mean["fid"] == pytest.approx(2.0 ** 0.75)  # geometric, not (2 + 2 + 2 + 1) / 4
    # no replicates in these cells: the se of the mean log ratio is bounded by the mean of the cells' log se
    cell_log_se = [math.hypot(0.5 / b, 0.5 / l) for b, l in ((80, 40), (50, 25), (30, 15), (20, 20))]
    assert mean["fid_ci"] == pytest.approx(Z95 * mean["fid"] * sum(cell_log_se) / 4)
    assert "bound over correlations" in mean["fid_resolved"]
    # delta method: r * sqrt((se_a / a)^2 + (se_b / b)^2), times 1.96
    assert cells.iloc[0]["fid_ci"] == pytest.approx(Z95 * 2.0 * math.hypot(0.5 / 80, 0.5 / 40))
    assert list(cells["fid_resolved"]) == ["yes", "yes", "yes", "no"]  # 20 vs 20 is inside its interval
    accurate = ratio[ratio["solver"] == "dopri5"].iloc[0]
    assert accurate["fid"] == pytest.approx(1.1) and accurate["steps"] == "tol 1e-05"
    assert math.isnan(mean["cmmd"])


def test_cost_ratio_locates_ledi_cost_on_the_baseline_curve():
    # Baseline ms 1, 2, 4, 8 with FID 80, 40, 20, 10; LeDiFlow cells cost 2, 4, 16, 0.5 ms.
    scores = _scores([80.0, 40.0, 20.0, 10.0], [30.0, 10.0, 9.0, 50.0],
                     ms={"gaussian": [1.0, 2.0, 4.0, 8.0], "learned": [2.0, 4.0, 16.0, 0.5]})
    cost = comparisons.cost_ratio(scores)
    cells = cost[cost["steps"] != "geomean"].set_index("steps")
    assert cells.loc["1", "fid_ratio"] == pytest.approx(40.0 / 30.0)
    assert cells.loc["2", "fid_ratio"] == pytest.approx(2.0)
    assert math.isnan(cells.loc["4", "fid_ratio"]) and math.isnan(cells.loc["8", "fid_ratio"])  # outside
    mean = cost[cost["steps"] == "geomean"].iloc[0]
    assert mean["fid_ratio"] == pytest.approx(math.sqrt(40.0 / 30.0 * 2.0)) and mean["note"] == "over 2 of 4 cells"


def test_quality_vs_nfe_has_plain_columns_and_error_bars():
    scores = _scores([80.0, 50.0], [40.0, 25.0], se=1.0, steps=(1, 2))
    table = tables.quality_vs_nfe(scores)
    assert list(table.columns[:3]) == ["space", "prior", "solver"]
    assert table.iloc[0]["1 steps"].startswith(f"80.0 ± {Z95:.1f} / 0.8000 ± 0.0196")
    no_bars = tables.quality_vs_nfe(scores.assign(fid_se=math.nan, kid_se=math.nan))
    assert no_bars.iloc[0]["1 steps"].startswith("80.0 / 0.8000 (NFE 1")


def test_zero_step_prior_cells_fill_the_nfe_0_column_and_stay_out_of_the_comparisons(tmp_path):
    scores = _scores([80.0, 50.0, 30.0, 20.0], [40.0, 25.0, 15.0, 12.0], se=0.5)
    prior = [{"space": "pixel", "prior": "learned", "solver": solver, "steps": 0, "tol": None, "nfe": 0.0,
              "ms_per_image": 0.5, "fid": fid, "fid_se": 0.5, "kid_mean": fid / 100, "kid_se": 0.005,
              "cmmd": math.nan, "mmd_inception": fid / 10} for solver, fid in (("prior-x0", 95.0), ("prior-mean", 5.0))]
    with_prior = pd.concat([scores, pd.DataFrame(prior)], ignore_index=True)
    table = tables.quality_vs_nfe(with_prior)
    assert list(table.columns[3:]) == ["0 steps", "1 steps", "2 steps", "4 steps", "8 steps"]
    x0_row = table[table["solver"] == "prior-x0"].iloc[0]
    assert x0_row["0 steps"].startswith("95.0 ± 1.0") and "(NFE 0," in x0_row["0 steps"] and x0_row["1 steps"] == ""
    # A prior-mean FID of 5 would beat every flow cell: were it on the grid it would set the speedup.
    pd.testing.assert_frame_equal(comparisons.speedup(with_prior), comparisons.speedup(scores))
    pd.testing.assert_frame_equal(comparisons.quality_ratio(with_prior), comparisons.quality_ratio(scores))
    pd.testing.assert_frame_equal(comparisons.cost_ratio(with_prior), comparisons.cost_ratio(scores))
    from lediflow.analysis import figures

    assert figures.quality_vs_nfe(with_prior, tmp_path)  # drawn as NFE-0 lines, not points on the log axis


def _with_replicates(fids: list[float], reps: np.ndarray, prior: str) -> pd.DataFrame:
    return pd.DataFrame([{"steps": k, "fid": f, "fid_se": float(r.std(ddof=1)), "fid_replicates": list(r),
                          "prior": prior} for k, (f, r) in enumerate(zip(fids, reps))])


def test_a_joint_bootstrap_of_correlated_cells_is_wider_than_treating_them_as_independent():
    # Four baseline step cells that move together from resample to resample (the same images at every step):
    # replicate j of each is fid * (1 + e_j); LeDiFlow's cells are fixed. The mean of log ratios then varies
    # as one cell does, not as a fourth of it.
    gen = np.random.default_rng(0)
    shared = gen.normal(0.0, 0.02, 200)
    base_fid, ledi_fid = [80.0, 50.0, 30.0, 20.0], [40.0, 25.0, 15.0, 12.0]
    base = _with_replicates(base_fid, np.array([f * (1 + shared) for f in base_fid]), "gaussian")
    ledi = _with_replicates(ledi_fid, np.array([[f] * 200 for f in ledi_fid]), "learned")
    joint, how = comparisons.geomean_log_se(base, ledi)
    independent = math.sqrt(sum((0.02) ** 2 for _ in base_fid)) / len(base_fid)
    assert how == "joint bootstrap"
    assert joint == pytest.approx(0.02, rel=0.15) and joint > 1.7 * independent
    # without replicates, the bound over correlations holds the joint value too
    bound, how = comparisons.geomean_log_se(base.drop(columns="fid_replicates"), ledi.drop(columns="fid_replicates"))
    assert how == "bound over correlations" and bound >= 0.95 * joint


def _training_run(tmp_path: Path, model_rows: list[dict], record_rows: list[dict]) -> Path:
    """A run whose model folder holds `model_rows` as its log (train_seconds 500) and whose committed training
    record holds `record_rows` (train_seconds 100)."""
    import json

    from lediflow.core import artifacts

    run = tmp_path / "run"
    model = run / "models" / "flow-pixel-gaussian"
    model.mkdir(parents=True)
    (model / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in model_rows))
    artifacts.write_json_atomic(model / "manifest.json", {"files": {}, "training": {"step": 100, "train_seconds": 500}})
    (run / "training").mkdir()
    (run / "training" / "flow-pixel-gaussian.jsonl").write_text("".join(json.dumps(r) + "\n" for r in record_rows))
    artifacts.write_json_atomic(run / "training" / "flow-pixel-gaussian.json",
                                {"model": "flow-pixel-gaussian", "step": 100, "train_seconds": 100})
    return run


def test_a_model_re_made_step_for_step_keeps_the_seconds_on_record_and_any_other_training_replaces_them(tmp_path):
    rows = [{"step": 50, "loss": 1.5, "lr": 1e-4, "grad_norm": 2.0, "images_per_s": 200.0},
            {"step": 100, "loss": 1.2, "lr": 2e-4, "grad_norm": 0.5, "images_per_s": 210.0}]
    slower = [{**row, "images_per_s": 50.0} for row in rows]  # the same computation on a busy machine
    run = _training_run(tmp_path / "same", slower, rows)
    tables.sync_training_records(run)
    assert tables.training_record(run, "flow-pixel-gaussian")["train_seconds"] == 100
    assert (run / "training" / "flow-pixel-gaussian.jsonl").read_text().count("210.0") == 1
    other = [rows[0], {**rows[1], "loss": 1.2000001}]  # one logged loss differs: another training
    run = _training_run(tmp_path / "other", other, rows)
    tables.sync_training_records(run)
    assert tables.training_record(run, "flow-pixel-gaussian")["train_seconds"] == 500
    assert "1.2000001" in (run / "training" / "flow-pixel-gaussian.jsonl").read_text()
