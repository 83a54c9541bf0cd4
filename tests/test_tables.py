"""The speedup and ratio definitions (lediflow/comparisons.py) on hand-made curves, and table formatting."""

import math

import numpy as np
import pandas as pd
import pytest

from lediflow import comparisons, tables
from lediflow.tables import Z95


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
    assert speed["ledi_nfe"] == 4.0 and speed["speedup_nfe"] == 2.0 and speed["speedup_bound"] == "="
    assert speed["speedup_wall_clock"] == pytest.approx(8.0 / 5.0)  # 8 ms vs 4 + 1 ms of prior overhead
    # 20 lies 1/2 of the way from 25 (NFE 2) to 15 (NFE 4): NFE 2 * 2^(1/2).
    assert speed["ledi_nfe_interp"] == pytest.approx(2 * math.sqrt(2))
    assert speed["speedup_nfe_interp"] == pytest.approx(8 / (2 * math.sqrt(2)))


def test_two_baseline_cells_within_tolerance_cannot_move_the_target():
    # Baseline plateau: 4 and 8 steps differ by 0.002 with se 1; swapping them must not change NFE_b.
    one = comparisons.speedup(_scores([90.0, 60.0, 50.000, 50.002], [70.0, 49.0, 45.0, 44.0], se=1.0)).iloc[0]
    two = comparisons.speedup(_scores([90.0, 60.0, 50.002, 50.000], [70.0, 49.0, 45.0, 44.0], se=1.0)).iloc[0]
    assert one["baseline_nfe"] == two["baseline_nfe"] == 4.0
    assert one["speedup_nfe"] == two["speedup_nfe"] == 2.0  # LeDiFlow's 2 steps are within tolerance
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
    from lediflow import figures

    assert figures.quality_vs_nfe(with_prior, tmp_path)  # drawn as NFE-0 lines, not points on the log axis
