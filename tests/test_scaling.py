"""The scaling study: its arms, the summary over seeds, and a toy study end to end."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import WARM
from lediflow.core.errors import LediflowError
from lediflow.studies.scaling import arms, load_spec
from lediflow.studies.scaling_summary import summarise
from lediflow.studies.scaling_steps import budget_pairs, steps
from lediflow.analysis.tables import Z95

REPO = Path(__file__).resolve().parents[1]


def _row(seed: int, scale: float, base: float, ledi: float, speed: float = 4.0, ratio: float = 1.5,
         dopri5: float = 1.2) -> dict:
    return {"run": f"r{scale}-{seed}", "space": "pixel", "scale": scale, "seed": seed, "hardware": "cpu",
            "ledi_train_seconds": 100.0 * scale, "baseline_train_seconds": 100.0 * scale,
            "ledi_flow_images": 1000.0 * scale, "baseline_flow_images": 2000.0 * scale,
            "baseline_best_fid": base, "baseline_best_fid_se": 1.0, "baseline_best_at": "euler-32",
            "ledi_best_fid": ledi, "ledi_best_fid_se": 1.0, "ledi_best_at": "euler-4",
            "speedup_nfe": speed, "speedup_wall_clock": speed / 2, "speedup_bound": "=",
            "best_ratio": base / ledi, "best_ratio_log_se": math.hypot(1 / base, 1 / ledi),
            "fid_ratio": ratio, "fid_ratio_log_se": 0.02, "dopri5_ratio": dopri5, "dopri5_ratio_log_se": 0.03,
            "data_floor_fid": 18.0, "data_floor_fid_se": 0.5}


def test_a_budget_trained_on_several_machines_names_each_once():
    rows = pd.DataFrame([{**_row(0, 4.0, 50.0, 40.0), "hardware": "cpu AMD EPYC / cpu Intel Xeon"},
                         {**_row(1, 4.0, 48.0, 39.0), "hardware": "NVIDIA H200 / cpu AMD EPYC"}])
    assert summarise(rows).iloc[0]["hardware"] == "NVIDIA H200 / cpu AMD EPYC / cpu Intel Xeon"


def test_the_committed_study_seeds_x1_and_its_named_scales_and_reuses_the_default_run():
    spec = load_spec(REPO / "configs/scaling/study.yaml")
    planned = arms(spec, "default")
    names = [a.name for a in planned]
    assert len(names) == len(set(names))
    default = [a for a in planned if a.default]
    assert len(default) == 1 and default[0].name == "default" and set(default[0].spaces) == {"pixel", "latent"}
    seeds = {(space, a.scale): set() for a in planned for space in a.spaces}
    for a in planned:
        for space in a.spaces:
            seeds[(space, a.scale)].add(a.seed)
    assert seeds[("latent", 4.0)] == seeds[("pixel", 2.0)] == seeds[("latent", 1.0)] == {0, 1, 2}
    assert seeds[("latent", 0.25)] == seeds[("pixel", 0.5)] == seeds[("latent", 8.0)] == {0}
    assert ("pixel", 4.0) not in seeds and ("latent", 4.0) in seeds  # each space its own scales
    # split_spaces: every arm but the default run trains one space, so each fits one session here
    assert all(len(a.spaces) == 1 for a in planned if not a.default)
    x2 = next(a for a in planned if a.scale == 2 and a.seed == 1)
    assert x2.spaces == ("pixel",) and x2.overlay() == {
        "run": {"name": "scaling-pixel-x2-s1", "train_scale": 2.0, "seed": 1}, "flow": {"spaces": ["pixel"]}}
    merged = arms({**spec, "split_spaces": False}, "default")  # one run per (scale, seed) without it
    assert next(a for a in merged if a.name == "scaling-x2-s0").spaces == ("pixel", "latent")
    # above x8 every latent arm, each seed, loads the x8 seed-0 arm's autoencoder; x8 and below train their own
    assert seeds[("latent", 16.0)] == seeds[("latent", 32.0)] == {0, 1, 2}
    fixed = "results/scaling-latent-x8-s0/models/autoencoder/vae"
    assert {a.autoencoder for a in planned if a.scale > 8} == {fixed}
    assert all(a.autoencoder is None for a in planned if a.scale <= 8)
    x32 = next(a for a in planned if a.name == "scaling-latent-x32-s1")
    assert x32.overlay()["autoencoder"] == {"source": "pretrained", "pretrained": fixed}
    # OT-CFM trains beside the two flows at x16 and x32, every seed, and at x1 in the seed arms, nowhere else:
    # the default run (x1 seed 0) keeps its two flows (its OT-CFM is a run of its own)
    assert {a.name for a in planned if "ot" in a.priors} == {
        f"scaling-latent-x{scale}-s{seed}" for scale in (16, 32) for seed in (0, 1, 2)} | {
        f"scaling-{space}-x1-s{seed}" for space in ("pixel", "latent") for seed in (1, 2)}
    assert default[0].priors == ("gaussian", "learned")
    assert x32.overlay()["flow"] == {"spaces": ["latent"], "priors": ["gaussian", "learned", "ot"]}
    assert "priors" not in x2.overlay()["flow"]  # the other arms' overlays are what they were


def test_the_fixed_autoencoder_lets_latent_networks_continue_only_across_arms_that_share_it():
    from lediflow.studies.scaling import continues, predecessors

    spec = {"scales": {"latent": [1, 2, 4, 8]}, "seeds": [0, 1], "seeded_scales": {"latent": [1, 2, 4, 8]},
            "fixed_autoencoder": {"latent": 2}, "split_spaces": True}
    planned = {a.name: a for a in arms(spec, "default")}
    previous = predecessors(list(planned.values()))
    x4, x8 = planned["scaling-latent-x4-s1"], planned["scaling-latent-x8-s1"]
    assert x4.autoencoder == x8.autoencoder == "results/scaling-latent-x2-s0/models/autoencoder/vae"
    # x8 continues x4's latent prior and baseline (the same latents), not the sampler and LeDiFlow's flow (they
    # learn from the longer-trained prior); x4 seed 1 cannot continue x2 seed 1 (its own autoencoder)
    assert previous[x8.name] == {"latent": x4.name}
    assert continues("prior-latent", x8, x4) and continues("flow-latent-gaussian", x8, x4)
    assert not continues("latent_sampler-latent", x8, x4) and not continues("flow-latent-learned", x8, x4)
    assert not continues("prior-latent", x4, planned["scaling-latent-x2-s1"])
    # ...but x4 seed 0 does continue x2 seed 0: that arm trained the very autoencoder the larger arms load
    assert continues("prior-latent", planned["scaling-latent-x4-s0"], planned["scaling-latent-x2-s0"])
    assert continues("prior-pixel", x8, x4) and not continues("latent_sampler-pixel", x8, x4)  # pixel as before


def test_a_fixed_autoencoder_outside_the_studys_latent_scales_is_refused_in_one_line(tmp_path: Path):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"configs": ["params.yaml"], "budget": "b.yaml", "out": "o",
                                     "scales": {"latent": [1, 2]}, "seeds": [0], "fixed_autoencoder": {"latent": 4}}))
    with pytest.raises(LediflowError, match="fixed_autoencoder.latent must be latent, at one of scales.latent"):
        load_spec(study)
    # below x1 the default run (x1 seed 0, no overlay) would be told to load an autoencoder it trains itself
    study.write_text(yaml.safe_dump({"configs": ["params.yaml"], "budget": "b.yaml", "out": "o",
                                     "scales": {"latent": [0.5, 1]}, "seeds": [0],
                                     "fixed_autoencoder": {"latent": 0.5}}))
    with pytest.raises(LediflowError, match="at least 1"):
        load_spec(study)


def test_ot_cfm_outside_the_studys_scales_is_refused_in_one_line(tmp_path: Path):
    study = tmp_path / "study.yaml"
    for ot_cfm in ({"latent": [4]}, {"pixel": [2]}, {"rgb": [1]}):
        study.write_text(yaml.safe_dump({"configs": ["params.yaml"], "budget": "b.yaml", "out": "o",
                                         "scales": {"latent": [1, 2]}, "seeds": [0], "ot_cfm": ot_cfm}))
        with pytest.raises(LediflowError, match="must name scales of scales"):
            load_spec(study)


def test_ot_cfm_continues_across_arms_that_share_the_fixed_autoencoder_and_an_arm_trains_what_it_names():
    from lediflow.studies.scaling import continues, trains

    spec = {"scales": {"latent": [1, 2, 4, 8]}, "seeds": [0], "fixed_autoencoder": {"latent": 2},
            "ot_cfm": {"latent": [4, 8]}, "split_spaces": True}
    planned = {a.name: a for a in arms(spec, "default")}
    x2, x4, x8 = planned["scaling-latent-x2-s0"], planned["scaling-latent-x4-s0"], planned["scaling-latent-x8-s0"]
    assert trains(x8, "latent") == ["prior-latent", "latent_sampler-latent", "flow-latent-gaussian",
                                    "flow-latent-learned", "flow-latent-ot"]  # its autoencoder is loaded
    assert trains(x2, "latent") == ["autoencoder", "prior-latent", "latent_sampler-latent", "flow-latent-gaussian",
                                    "flow-latent-learned"]  # no OT-CFM at x2
    assert continues("flow-latent-ot", x8, x4)  # the same latents and a Gaussian source: as the baseline


def test_the_cost_estimate_prices_ot_cfm_as_the_baseline_flow_it_shares_a_network_and_steps_with(tmp_path: Path):
    from lediflow.studies.scaling_cost import estimate

    spec = {**_cost_study(tmp_path), "ot_cfm": {"pixel": [2]}}
    cost = estimate(spec, tmp_path / "results" / "base").set_index("arm")
    # x2 trains the OT-CFM flow beside the four networks, priced at the Gaussian flow's seconds, and from scratch
    # while it continues the default run's prior and baseline (the default run trains no OT-CFM); its two cells
    # are priced as the baseline's
    assert cost.loc["scaling-x2-s0", "train_s"] == pytest.approx(100 + 300 + 2 * (50 + 200) + 2 * 300)
    assert cost.loc["scaling-x0.5-s0", "train_s"] == pytest.approx(0.5 * (100 + 50 + 300 + 200))
    assert cost.loc["scaling-x2-s0", "sample_s"] == pytest.approx(6 * 10)
    assert cost.loc["scaling-x2-s0", "cells"] == 6


def test_three_methods_at_the_default_budget_compare_wall_clock_only_within_one_run():
    """The committed default run and its OT-CFM run: LeDiFlow against OT-CFM is read across the two runs."""
    from lediflow.studies.scaling_summary import common_cells, method_rows, summarise_methods

    runs = [REPO / "results/default", REPO / "results/scaling-latent-x4-s0"]
    rows = pd.DataFrame(method_rows([*runs, REPO / "results/otcfm-latent-x1-s0"], common_cells(runs)))
    assert list(zip(rows["space"], rows["method"], rows["against"])) == [
        ("latent", "learned", "gaussian"), ("latent", "learned", "ot"), ("latent", "ot", "gaussian")]
    assert (rows["scale"] == 1.0).all()  # x4 trained no OT-CFM: no row
    same_run, across = rows.iloc[0], rows.iloc[1]
    assert math.isfinite(same_run["speedup_wall_clock"]) and math.isfinite(same_run["cost_ratio"])
    assert math.isnan(across["speedup_wall_clock"]) and math.isnan(across["cost_ratio"])
    assert across["run"] == "default otcfm-latent-x1-s0"
    # OT-CFM's side of each row is its own flow: the best FIDs agree across the rows that share a method
    assert across["baseline_best_fid"] == rows.iloc[2]["ledi_best_fid"]
    assert across["ledi_best_fid"] == same_run["ledi_best_fid"]
    summary = summarise_methods(rows)
    assert list(summary["against"]) == ["FM baseline (Gaussian)", "OT-CFM (Gaussian, minibatch OT)",
                                        "FM baseline (Gaussian)"]


def test_the_scaling_figure_draws_ot_cfm_beside_the_two_flows_where_it_was_trained(tmp_path: Path, monkeypatch):
    from lediflow.analysis import figures
    from lediflow.studies.scaling_summary import summarise_methods

    two = summarise(pd.DataFrame([_row(s, scale, 100.0 / scale, 60.0 / scale) for scale in (1.0, 2.0, 4.0)
                                  for s in (0, 1)]))
    # OT-CFM trained at x2 only: its side of the OT-CFM-against-Gaussian rows is its best FID there
    pairs = [{**_row(s, 2.0, 50.0, fid), "method": method, "against": against}
             for s, fid in ((0, 44.0), (1, 46.0)) for method, against in (("learned", "ot"), ("ot", "gaussian"))]
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, folder, name: drawn.setdefault(name, fig) and [])
    figures.scaling(two, tmp_path, summarise_methods(pd.DataFrame(pairs)))
    fid_panel = drawn["scaling_pixel"].axes[0]
    ot = [line for line in fid_panel.get_lines() if line.get_label() == "OT-CFM (Gaussian, minibatch OT)"]
    assert len(ot) == 1 and list(ot[0].get_xdata()) == [2000.0]  # at x2's images seen, LeDiFlow's x
    ot_vs_gaussian = pairs[1], pairs[3]
    assert list(ot[0].get_ydata()) == [pytest.approx(sum(r["ledi_best_fid"] for r in ot_vs_gaussian) / 2)]
    drawn.clear()
    figures.scaling(two, tmp_path)  # no third method: the panel has the two flows only
    labels = [line.get_label() for line in drawn["scaling_pixel"].axes[0].get_lines()]
    assert not any(label.startswith("OT-CFM") for label in labels)


def test_a_study_without_the_default_scale_is_refused_in_one_line(tmp_path: Path):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"configs": ["params.yaml"], "budget": "b.yaml", "out": "o",
                                     "scales": {"pixel": [0.5, 2]}, "seeds": [0, 1]}))
    with pytest.raises(LediflowError, match="include 1"):
        load_spec(study)
    with pytest.raises(LediflowError, match="--study <file>"):  # a mistyped path names the flag, not --config
        load_spec(tmp_path / "missing.yaml")


def test_seeds_are_summarised_after_each_seeds_own_values_and_small_gaps_stay_unresolved():
    rows = pd.DataFrame([_row(0, 1.0, 100.0, 60.0, dopri5=1.25), _row(1, 1.0, 104.0, 61.0, dopri5=1.2),
                         _row(2, 1.0, 96.0, 62.0, dopri5=1.15), _row(0, 2.0, 80.0, 79.0, speed=1.1, ratio=1.01,
                                                                   dopri5=1.04)])
    summary = summarise(rows).set_index("scale")
    x1, x2 = summary.loc[1.0], summary.loc[2.0]
    assert x1["seeds"] == 3 and x1["baseline_best_fid"] == pytest.approx(100.0)
    assert x1["baseline_best_fid_std"] == pytest.approx(4.0)
    assert x1["baseline_best_fid_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 4.0 / math.sqrt(3))
    # the gap is taken per seed (40, 43, 34), then summarised
    assert x1["best_fid_gap"] == pytest.approx(39.0) and x1["best_fid_resolved"] == "yes"
    # one seed: the bootstrap interval of its cells; a 1-point gap inside 1.96 sqrt(1 + 1) is not resolved
    assert x2["seeds"] == 1 and x2["ledi_best_fid_ci"] == pytest.approx(Z95)
    assert x2["best_fid_resolved"] == "not resolved"
    assert x2["fid_ratio_resolved"] == "not resolved" and x1["fid_ratio_resolved"] == "yes"
    assert x2["speedup_nfe_resolved"] == "n/a"  # a single seed's speedup has no interval
    # the dopri5 ratio likewise: over seeds (1.25, 1.2, 1.15), or one seed's delta-method interval (1.04 * 0.03)
    assert x1["dopri5_ratio"] == pytest.approx(1.2) and x1["dopri5_ratio_resolved"] == "yes"
    assert x1["dopri5_ratio_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.05 / math.sqrt(3))
    assert x2["dopri5_ratio_ci"] == pytest.approx(Z95 * 1.04 * 0.03) and x2["dopri5_ratio_resolved"] == "not resolved"


def test_seeds_whose_speedup_the_grid_bounds_report_a_bound_on_their_mean_not_an_interval():
    # LeDiFlow's first grid point already at the target in two seeds (">= 8", ">= 16"), interpolated in the third
    # (12): the mean of those is a lower bound on the seeds' mean speedup, and wall-clock follows the same bound;
    # a t-interval over bounds would mean nothing
    rows = [_row(seed, 1.0, 70.0, 60.0, speed=speed) for seed, speed in ((0, 8.0), (1, 16.0), (2, 12.0))]
    rows[0]["speedup_bound"] = rows[1]["speedup_bound"] = ">="
    bounded = summarise(pd.DataFrame(rows)).iloc[0]
    assert bounded["speedup_nfe"] == pytest.approx(12.0) and math.isnan(bounded["speedup_nfe_ci"])
    assert bounded["speedup_nfe_resolved"] == "yes, every seed" and bounded["bound"] == ">="
    assert bounded["speedup_wall_clock_bound"] == ">=" and math.isnan(bounded["speedup_wall_clock_ci"])
    # exact speedups keep the mean and t-interval over seeds
    exact = summarise(pd.DataFrame([_row(s, 1.0, 70.0, 60.0, speed=v) for s, v in ((0, 4.0), (1, 5.0), (2, 6.0))]))
    assert exact.iloc[0]["speedup_nfe"] == pytest.approx(5.0)
    assert exact.iloc[0]["speedup_nfe_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))


def test_holm_keeps_the_family_wise_error_and_the_table_says_which_marks_survive():
    from lediflow.analysis.significance import holm
    from lediflow.studies.scaling_tables import display

    assert holm([0.01, 0.02, 0.03, 0.5]) == [True, False, False, False]  # 0.02 > 0.05 / 3 stops the steps
    assert holm([0.001, 0.01, 0.02]) == [True, True, True]
    # one seed each, two ratios whose own intervals just exclude 1 (p ~ 0.03) among many clear ones: Holm's last
    # two steps test them at 0.05 / 2, so neither survives the family, though each excludes 1 on its own
    rows = [_row(0, scale, 100.0, 50.0, ratio=2.0) for scale in (1.0, 2.0)] + [
        {**_row(0, scale, 100.0, 50.0), "fid_ratio": 1.05, "fid_ratio_log_se": 0.022} for scale in (4.0, 8.0)]
    shown, family = display(summarise(pd.DataFrame(rows)))
    assert family == 16  # best FID gap, best / best, equal-NFE and dopri5 ratio in each of four rows
    assert shown.iloc[0]["FID ratio, equal NFE"].endswith("(yes)")
    assert shown.iloc[3]["FID ratio, equal NFE"] == "1.05 ± 0.05 (per comparison only)"
    assert list(shown.columns[:2]) == ["space", "scale"]  # plain row labels, not tuples


def test_budgets_are_compared_within_each_seed_and_an_agreement_by_luck_keeps_the_sample_noise():
    assert budget_pairs([4.0, 0.5, 1.0, 2.0]) == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (1.0, 4.0)]
    # seeds 0-2 at x1 and x2, and seed 3 only at x2 (left out: nothing to pair it with); each seed's dopri5
    # ratio falls by 0.2 exactly, though the seeds' levels differ by far more than that
    rows = [_row(s, 1.0, 100.0, 60.0, dopri5=d) for s, d in ((0, 2.4), (1, 2.0), (2, 1.6))]
    rows += [_row(s, 2.0, 80.0 - 3 * s, 40.0, dopri5=d) for s, d in ((0, 2.2), (1, 1.8), (2, 1.4), (3, 9.0))]
    change = steps(pd.DataFrame(rows)).set_index(["from_scale", "to_scale"]).loc[(1.0, 2.0)]
    assert change["seeds"] == 3 and change["paired_seeds"] == "0 1 2"
    assert change["dopri5_ratio_change"] == pytest.approx(-0.2)
    # identical differences: the t-interval is 0, the interval is the mean difference's bootstrap noise
    noise = [(a * 0.03) ** 2 + (b * 0.03) ** 2 for a, b in ((2.4, 2.2), (2.0, 1.8), (1.6, 1.4))]
    assert change["dopri5_ratio_change_ci"] == pytest.approx(Z95 * math.sqrt(sum(noise)) / 3)
    assert change["dopri5_ratio_change_resolved"] == "yes"
    # baseline falls by 20, 23, 26 per seed: a t-interval over the seeds, wider than their sample noise
    assert change["baseline_best_fid_change"] == pytest.approx(-23.0)
    assert change["baseline_best_fid_change_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 3.0 / math.sqrt(3))
    # the gap per seed (40 -> 40, 37, 34) and the summary's unpaired view would have called the ratio unresolved
    assert change["best_fid_gap_change"] == pytest.approx(-3.0)
    assert summarise(pd.DataFrame(rows[:3])).iloc[0]["dopri5_ratio_ci"] > 0.2
    # one seed at both budgets: its two cells' bootstrap noise alone
    single = steps(pd.DataFrame([_row(0, 0.5, 90.0, 50.0), _row(0, 1.0, 89.0, 49.5)])).iloc[0]
    assert single["baseline_best_fid_change_ci"] == pytest.approx(Z95 * math.sqrt(2.0))
    assert single["baseline_best_fid_change_resolved"] == "not resolved"


def test_the_dopri5_ratio_is_the_tightest_tolerance_both_flows_solved():
    from lediflow.studies.scaling_summary import _dopri5_ratio

    cells = [{"space": "pixel", "prior": p, "solver": "euler", "steps": 1, "tol": None, "nfe": 1.0,
              "ms_per_image": 1.0, "fid": f, "fid_se": 1.0, "kid_mean": 0.1, "kid_se": 0.01, "cmmd": math.nan,
              "mmd_inception": 1.0} for p, f in (("gaussian", 90.0), ("learned", 60.0))]
    cells += [{"space": "pixel", "prior": p, "solver": "dopri5", "steps": None, "tol": tol, "nfe": 100.0,
               "ms_per_image": 100.0, "fid": f, "fid_se": 2.0, "kid_mean": 0.1, "kid_se": 0.01, "cmmd": math.nan,
               "mmd_inception": 1.0}
              for p, tol, f in (("gaussian", 1e-3, 90.0), ("learned", 1e-3, 45.0),
                                ("gaussian", 1e-5, 80.0), ("learned", 1e-5, 50.0))]
    ratio, log_se = _dopri5_ratio(pd.DataFrame(cells))
    assert ratio == pytest.approx(80.0 / 50.0)  # 1e-5, not the looser 1e-3 (2.0)
    assert log_se == pytest.approx(math.hypot(2.0 / 80.0, 2.0 / 50.0), rel=1e-6)  # delta method on the two FIDs
    assert all(math.isnan(v) for v in _dopri5_ratio(pd.DataFrame(cells[:2])))  # no dopri5 cells, no ratio


def _cost_study(tmp_path: Path) -> dict:
    """A finished toy default run (training records, job benchmarks) and a pixel study of x0.5, x1, x2."""
    run = tmp_path / "results" / "base"
    for model, seconds in {"prior-pixel": 100, "latent_sampler-pixel": 50, "flow-pixel-gaussian": 300,
                           "flow-pixel-learned": 200}.items():
        (run / "training").mkdir(parents=True, exist_ok=True)
        (run / "training" / f"{model}.json").write_text(json.dumps({"model": model, "train_seconds": seconds}))
    jobs = {f"sample-flow-pixel-{p}-euler-{n}": 10 for p in ("gaussian", "learned") for n in (1, 2)}
    jobs |= {f"score-flow-pixel-{p}-euler-{n}": 20 for p in ("gaussian", "learned") for n in (1, 2)}
    jobs |= {"prior_report-pixel": 5, "time_cells-pixel": 5, "reference_features": 5, "tables": 5}
    (run / "benchmarks").mkdir()
    for job, seconds in jobs.items():
        (run / "benchmarks" / f"{job}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:{seconds}\n")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"run": {"name": "base",
                                                                "results_dir": str(tmp_path / "results")}}))
    (tmp_path / "budget.yaml").write_text(yaml.safe_dump({"sample": {
        "solvers": ["euler"], "steps": [1, 2], "baseline_extra_steps": {"euler": []}, "dopri5_tolerances": [],
        "zero_step_cells": False}}))
    return {"configs": [str(REPO / "params.yaml"), str(tmp_path / "base.yaml")],
            "budget": str(tmp_path / "budget.yaml"), "out": str(tmp_path / "scaling"),
            "scales": {"pixel": [0.5, 1, 2]}, "seeds": [0]}


def test_the_cost_estimate_continues_a_network_only_from_a_checkpoint_and_leaves_finished_arms_out(tmp_path: Path):
    from lediflow.studies.scaling_cost import estimate

    spec, base = _cost_study(tmp_path), tmp_path / "results" / "base"
    (base / "tables").mkdir()
    (base / "tables" / "scores_long.csv").write_text("")  # the default run is finished...
    cost = estimate(spec, base).set_index("arm")
    assert list(cost.index) == ["scaling-x0.5-s0", "scaling-x2-s0"]  # the default run costs nothing more
    # x0.5 trains all four networks at half the steps; nothing smaller to continue from
    assert cost.loc["scaling-x0.5-s0", "train_s"] == pytest.approx(0.5 * (100 + 50 + 300 + 200))
    # ...but, as in a fresh clone, holds no checkpoints: x2 trains all four afresh at x2
    assert cost.loc["scaling-x2-s0", "train_s"] == pytest.approx(2 * (100 + 50 + 300 + 200))
    # with the default run's checkpoints on disk, x2 continues its prior and baseline (one more x1 each) and
    # retrains sampler and flow at x2
    for model in ("prior-pixel", "flow-pixel-gaussian"):
        (base / "models" / model / "checkpoints" / "step_00000100").mkdir(parents=True)
    cost = estimate(spec, base).set_index("arm")
    assert cost.loc["scaling-x2-s0", "train_s"] == pytest.approx(100 + 300 + 2 * (50 + 200))
    # the committed estimate ignores them, as a fresh clone of the commit has none
    fresh = estimate(spec, base, fresh_clone=True).set_index("arm")
    assert fresh.loc["scaling-x2-s0", "train_s"] == pytest.approx(2 * (100 + 50 + 300 + 200))
    alone = estimate(spec, base, alone=True).set_index("arm")  # a fresh clone per arm continues nothing
    assert alone.loc["scaling-x2-s0", "train_s"] == pytest.approx(2 * (100 + 50 + 300 + 200))
    # a finished arm is left out
    (tmp_path / "results" / "scaling-x0.5-s0" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "scaling-x0.5-s0" / "tables" / "scores_long.csv").write_text("")
    assert list(estimate(spec, base)["arm"]) == ["scaling-x2-s0"]
    assert cost.loc["scaling-x2-s0", "sample_s"] == pytest.approx(4 * 10)
    assert cost.loc["scaling-x2-s0", "score_s"] == pytest.approx(4 * 20 / 2)  # two score jobs at once
    assert cost.loc["scaling-x2-s0", "other_s"] == pytest.approx(20)


def test_an_arm_that_loads_the_fixed_autoencoder_trains_none_and_the_first_pays_to_make_it_again(tmp_path: Path):
    from lediflow.studies.scaling_cost import estimate

    run = tmp_path / "results" / "base"
    seconds = {"autoencoder": 400, "prior-latent": 10, "latent_sampler-latent": 20, "flow-latent-gaussian": 60,
               "flow-latent-learned": 40}
    (run / "training").mkdir(parents=True)
    for model, value in seconds.items():
        (run / "training" / f"{model}.json").write_text(json.dumps({"model": model, "train_seconds": value}))
    jobs = {f"{kind}-flow-latent-{p}-euler-{n}": 10 for kind in ("sample", "score") for p in ("gaussian", "learned")
            for n in (1, 2)}
    jobs |= {job: 5 for job in ("encode_latents", "autoencoder_floor", "prior_report-latent", "time_cells-latent",
                                "reference_features", "tables")}
    (run / "benchmarks").mkdir()
    for job, value in jobs.items():
        (run / "benchmarks" / f"{job}.tsv").write_text(f"s\th:m:s\n{value}\t0:00:{value}\n")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"run": {"name": "base", "results_dir": str(run.parent)},
                                                        "flow": {"spaces": ["latent"]}}))
    (tmp_path / "budget.yaml").write_text(yaml.safe_dump({"sample": {
        "solvers": ["euler"], "steps": [1, 2], "baseline_extra_steps": {"euler": []}, "dopri5_tolerances": [],
        "zero_step_cells": False}}))
    spec = {"configs": [str(REPO / "params.yaml"), str(tmp_path / "base.yaml")],
            "budget": str(tmp_path / "budget.yaml"),
            "out": str(tmp_path / "scaling"), "scales": {"latent": [1, 2, 4]}, "seeds": [0], "split_spaces": True,
            "fixed_autoencoder": {"latent": 2}}
    for finished in ("base", "scaling-latent-x2-s0"):
        (run.parent / finished / "tables").mkdir(parents=True, exist_ok=True)
        (run.parent / finished / "tables" / "scores_long.csv").write_text("")
    learners = sum(seconds.values()) - seconds["autoencoder"]
    # a fresh clone: x2 is finished but its autoencoder is a DVC output, so x4 makes it again and trains afresh
    fresh = estimate(spec, run, fresh_clone=True).set_index("arm")
    assert fresh.loc["scaling-latent-x4-s0", "train_s"] == pytest.approx(2 * 400 + 4 * learners)
    # here, with x2's autoencoder and checkpoints on disk: x4 trains no autoencoder and continues from x2
    x2 = run.parent / "scaling-latent-x2-s0" / "models"
    (x2 / "autoencoder").mkdir(parents=True)
    (x2 / "autoencoder" / "manifest.json").write_text("{}")
    for model in seconds:
        (x2 / model / "checkpoints" / "step_00000100").mkdir(parents=True, exist_ok=True)
    here = estimate(spec, run).set_index("arm")
    continued = seconds["prior-latent"] + seconds["flow-latent-gaussian"]
    assert here.loc["scaling-latent-x4-s0", "train_s"] == pytest.approx(
        (4 - 2) * continued + 4 * (learners - continued))
    # the whole study in one checkout: x2 trains the autoencoder once (continuing the default run's), x4 continues
    # x2's latent prior and baseline
    whole = estimate(spec, run, whole=True).set_index("arm")
    assert whole.loc["scaling-latent-x2-s0", "train_s"] == pytest.approx((2 - 1) * 400 + 2 * learners)
    assert whole.loc["scaling-latent-x4-s0", "train_s"] == pytest.approx(2 * continued + 4 * (learners - continued))
    alone = estimate(spec, run, whole=True, alone=True).set_index("arm")  # a clone per arm makes it again
    assert alone.loc["scaling-latent-x4-s0", "train_s"] == pytest.approx(2 * 400 + 4 * learners)


def test_an_arm_that_loads_a_fixed_autoencoder_counts_its_source_runs_training_of_it(tmp_path: Path):
    from lediflow.studies.scaling_summary import training_compute

    source, arm = tmp_path / "results" / "x8", tmp_path / "results" / "x16"
    (source / "training").mkdir(parents=True)
    (source / "training" / "autoencoder.json").write_text(json.dumps({"train_seconds": 900.0, "device": "cpu A"}))
    (arm / "training").mkdir(parents=True)
    for model, value in {"prior-latent": 10, "latent_sampler-latent": 20, "flow-latent-gaussian": 60,
                         "flow-latent-learned": 40}.items():
        (arm / "training" / f"{model}.json").write_text(json.dumps({"train_seconds": value, "device": "cpu B"}))
    (arm / "params.yaml").write_text(yaml.safe_dump({"autoencoder": {
        "source": "pretrained", "pretrained": str(source / "models" / "autoencoder" / "vae")}}))
    compute = training_compute(arm, "latent")
    assert compute["ledi_train_seconds"] == 900 + 10 + 20 + 40 and compute["baseline_train_seconds"] == 900 + 60
    assert compute["hardware"] == "cpu A / cpu B"
    (arm / "params.yaml").write_text(yaml.safe_dump({"autoencoder": {"source": "train"}}))
    assert math.isnan(training_compute(arm, "latent")["ledi_train_seconds"])  # its own, unrecorded: not borrowed


def test_a_finished_study_writes_a_zero_cost_table(tmp_path: Path):
    from lediflow.studies.scaling_cost import write

    spec, results = _cost_study(tmp_path), tmp_path / "results"
    for run in ("base", "scaling-x0.5-s0", "scaling-x2-s0"):
        (results / run / "tables").mkdir(parents=True, exist_ok=True)
        (results / run / "tables" / "scores_long.csv").write_text("")
    frame = write(spec, results / "base", tmp_path / "out")
    assert frame.empty
    table = (tmp_path / "out" / "cost.csv").read_text().splitlines()
    assert table[-1].startswith("total,") and table[-1].endswith(",0.00")  # nothing left: zero hours
    # --whole still prices the finished study: x0.5 from scratch, x2 continuing the default run's prior and
    # baseline, which run first in the same checkout
    whole = write(spec, results / "base", tmp_path / "out", whole=True).set_index("arm")
    assert whole.loc["scaling-x2-s0", "train_s"] == pytest.approx(100 + 300 + 2 * (50 + 200))
    assert whole.loc["scaling-x0.5-s0", "train_s"] == pytest.approx(0.5 * (100 + 50 + 300 + 200))
    assert (tmp_path / "out" / "cost_whole.md").is_file()


def test_the_cost_estimate_without_the_default_runs_benchmarks_says_what_to_run(tmp_path: Path):
    from lediflow.studies.scaling_cost import estimate

    spec = _cost_study(tmp_path)
    (tmp_path / "results" / "base" / "benchmarks" / "tables.tsv").unlink()
    with pytest.raises(LediflowError, match="finish the default run"):
        estimate(spec, tmp_path / "results" / "base")


def _snakemake(*args: str, cwd: Path = REPO, warm: bool = False, **env: str) -> subprocess.CompletedProcess:
    """snakemake with `args`; warm: under `lediflow warm`, every stage forked from one server (docs/gpu.md)."""
    command = [*(WARM if warm else []), sys.executable, "-m", "snakemake", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=1800)


def test_the_study_dry_run_lists_every_arm(tmp_path: Path):
    overlays = REPO / "results/scaling/arms"
    existed = overlays.exists()
    result = _snakemake("-s", "workflow/scaling.smk", "-n", "--forceall", "--cores", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout + result.stderr
    planned = arms(load_spec(REPO / "configs/scaling/study.yaml"), "default")
    for arm in planned:
        assert f"results/{arm.name}/tables/scores_long.csv" in text
    assert overlays.exists() == existed  # a dry run writes no overlay
    fixed = REPO / "results/scaling-latent-x8-s0/models/autoencoder/manifest.json"
    if not fixed.exists():  # as in a fresh clone: the fixed autoencoder is made first, by its own rule
        assert "rule fixed_autoencoder:" in text
        assert "output: results/scaling-latent-x8-s0/models/autoencoder/manifest.json" in text


def test_a_finished_arm_is_not_redone_when_its_configs_look_newer_than_its_tables(tmp_path: Path):
    """A fresh clone's checkout order can stamp an arm's overlay after its tables: only the marker counts."""
    for folder in ("workflow", "configs"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    planned = arms(load_spec(REPO / "configs/scaling/study.yaml"), "default")
    finished, unfinished = planned[0], planned[1]
    marker = tmp_path / "results" / finished.name / "tables" / "scores_long.csv"
    marker.parent.mkdir(parents=True)
    marker.write_text("run\n")
    overlay = tmp_path / "results/scaling/arms" / f"{finished.name}.yaml"
    overlay.parent.mkdir(parents=True)
    overlay.write_text(yaml.safe_dump(finished.overlay()))
    os.utime(marker, (1_000_000_000, 1_000_000_000))  # tables older than every config they were made from

    result = _snakemake("-s", "workflow/scaling.smk", "-n", "--cores", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout + result.stderr
    assert f"output: results/{finished.name}/tables/scores_long.csv" not in text
    assert f"output: results/{unfinished.name}/tables/scores_long.csv" in text  # unfinished arms still run
    assert "rule summary:" in text


@pytest.mark.slow
def test_a_toy_study_of_two_budgets_and_two_seeds_runs_end_to_end(tmp_path: Path):
    """Two scales x two seeds at smoke sizes, pixel space: four real runs, one table with intervals."""
    from lediflow.pipeline.config import deep_merge

    smoke = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    # Euler 1 for both flows and 2 for the baseline: the fewest cells that give a speedup and an equal-NFE
    # ratio (every cell is a sample and a score job in each of the four runs, and this test is CI's longest).
    base = deep_merge(smoke, {"run": {"name": "toy", "results_dir": str(tmp_path / "results")},
                              "data": {"max_train": 256, "max_test": 128},
                              "flow": {"spaces": ["pixel"]},
                              "prior": {"report_images": 32, "fidelity_images": 32},
                              "sample": {"steps": [1], "baseline_extra_steps": {"euler": [2]},
                                         "dopri5_tolerances": [], "timing_images": 4, "timing_repeats": 1,
                                         "zero_step_cells": False},
                              "score": {"reference_count": 64, "bootstrap_resamples": 10, "kid_subsets": 4,
                                        "kid_subset_size": 16, "second_reference": None}})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "budget.yaml").write_text("{}\n")
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "configs": [str(REPO / "params.yaml"), str(tmp_path / "base.yaml")], "budget": str(tmp_path / "budget.yaml"),
        "out": str(tmp_path / "scaling"), "scales": {"pixel": [0.5, 1]}, "seeds": [0, 1],
        "seeded_scales": {"pixel": [0.5, 1]}, "ot_cfm": {"pixel": [0.5, 1]}}))
    # warm, as the study's four runs of ~20 smoke-sized jobs each are mostly process start-up; every stage of
    # the nested runs (the arm rule starts one Snakemake per arm) is forked from the one server
    trace = tmp_path / "warm.trace"
    result = _snakemake("-s", "workflow/scaling.smk", "--cores", "2", "--config", f"study={study}", warm=True,
                        LEDIFLOW_WARM_TRACE=str(trace))
    assert result.returncode == 0, result.stderr[-3000:]
    served = trace.read_text().split("\n")
    assert "warm train-flow" in served and "warm score" in served and "cold score" not in served
    runs = pd.read_csv(tmp_path / "scaling" / "scaling_runs.csv")
    assert sorted(zip(runs["scale"], runs["seed"])) == [(0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1)]
    assert (runs["ledi_train_seconds"] > 0).all()  # measured compute came through the committed records
    half = runs[runs["scale"] == 0.5]
    one = runs[runs["scale"] == 1.0]
    assert set(runs.loc[runs["scale"] == 1.0, "run"]) == {"toy", "scaling-x1-s1"}  # x1 seed 0 is the base run
    assert (half["ledi_flow_images"].to_numpy() * 2 == one["ledi_flow_images"].to_numpy()).all()
    table = pd.read_csv(tmp_path / "scaling" / "scaling.csv")
    assert table["baseline best FID"].str.contains("±").all() and table["LeDiFlow best FID"].str.contains("±").all()
    # the equal-compute claim is checkable in the table (smoke seconds round to 0 there; the runs file is exact)
    assert "baseline train s" in table.columns and (runs["baseline_train_seconds"] > 0).all()
    assert table["FID ratio, both dopri5"].isna().all()  # the toy scores no dopri5 cell: no ratio, not a made-up one
    cells = pd.read_csv(tmp_path / "scaling" / "scaling_cells.csv")  # per step count, and the inverse speedup
    assert list(cells["scale"]) == ["x0.5", "x1"] and "inverse speedup, 1 step" in cells.columns
    # which hardware trained each arm, from the training records (seconds compare only on the same one)
    assert table["trained on"].str.startswith("cpu ").all()
    assert (tmp_path / "scaling" / "scaling_pixel.png").is_file()
    # the change between the budgets, within each seed: both seeds paired
    steps_table = pd.read_csv(tmp_path / "scaling" / "scaling_steps.csv")
    assert list(steps_table["budgets"]) == ["x0.5 → x1"] and list(steps_table["paired seeds"]) == ["0 1"]
    assert steps_table["Δ baseline best FID"].str.contains("±").all()
    def record(run: str, model: str) -> dict:
        return json.loads((tmp_path / "results" / run / "training" / f"{model}.json").read_text())

    # x1 continued x0.5's trainings whose inputs do not depend on the scale, and retrained the rest
    for model in ("prior-pixel", "flow-pixel-gaussian"):
        assert record("scaling-x1-s1", model)["resumed_from"] == record("scaling-x0.5-s1", model)["step"] > 0
    assert record("scaling-x1-s1", "flow-pixel-learned")["resumed_from"] == 0  # its prior is another one

    # OT-CFM trained beside the two flows at x0.5, both seeds, and at x1 in the seed arm (the base run, x1 seed 0,
    # keeps its two flows): three methods per budget, timed in one run
    methods = pd.read_csv(tmp_path / "scaling" / "scaling_methods.csv")
    assert list(methods["scale"]) == ["x0.5"] * 3 + ["x1"] * 3
    assert list(methods["seeds"].astype(str)) == ["2"] * 3 + ["1 (samples only)"] * 3
    assert list(methods["against"]) == ["FM baseline (Gaussian)", "OT-CFM (Gaussian, minibatch OT)",
                                        "FM baseline (Gaussian)"] * 2
    assert not methods["wall-clock speedup"].str.startswith("n/a").any()
    ot, baseline = record("scaling-x0.5-s1", "flow-pixel-ot"), record("scaling-x0.5-s1", "flow-pixel-gaussian")
    assert ot["step"] == baseline["step"]  # the baseline's steps: equal training compute
    assert record("scaling-x1-s1", "flow-pixel-ot")["resumed_from"] == ot["step"]  # continued, as the baseline
