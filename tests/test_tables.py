"""The speedup and quality-ratio definitions of the tables, on hand-made curves."""

import math

import pandas as pd
import pytest

from lediflow import tables


def test_first_nfe_reaching_interpolates_on_log_nfe():
    nfe = pd.Series([1, 2, 4, 8]).to_numpy(float)
    fid = pd.Series([40.0, 30.0, 20.0, 10.0]).to_numpy(float)
    assert tables.first_nfe_reaching(nfe, fid, 40.0) == 1.0
    # 25 lies halfway between 30 (NFE 2) and 20 (NFE 4) in FID, so halfway in log NFE: sqrt(8).
    assert tables.first_nfe_reaching(nfe, fid, 25.0) == pytest.approx(math.sqrt(8))
    assert tables.first_nfe_reaching(nfe, fid, 5.0) is None


def _scores(base_fid, ledi_fid):
    rows = []
    for prior, fids in (("gaussian", base_fid), ("learned", ledi_fid)):
        for steps, fid in zip((1, 2, 4, 8), fids):
            rows.append({"space": "pixel", "prior": prior, "solver": "euler", "steps": steps, "tol": None,
                         "nfe": float(steps), "ms_per_image": float(steps) + (1.0 if prior == "learned" else 0.0),
                         "fid": fid, "kid_mean": fid / 100, "cmmd": math.nan, "mmd_inception": fid / 10})
    return pd.DataFrame(rows)


def test_speedup_and_quality_ratio_by_hand():
    scores = _scores([80.0, 50.0, 30.0, 20.0], [40.0, 20.0, 15.0, 12.0])
    speed = tables.speedup(scores).iloc[0]
    assert speed["baseline_best_fid"] == 20.0 and speed["baseline_nfe"] == 8.0
    assert speed["ledi_nfe_to_match"] == 2.0 and speed["speedup_nfe"] == 4.0
    assert speed["speedup_wall_clock"] == pytest.approx(8.0 / 3.0)  # 8 ms vs 2 + 1 ms of prior overhead
    ratio = tables.quality_ratio(scores)
    mean = ratio[ratio["steps"] == "mean"].iloc[0]
    assert mean["fid"] == pytest.approx((2.0 + 2.5 + 2.0 + 20 / 12) / 4)
    assert math.isnan(mean["cmmd"])
