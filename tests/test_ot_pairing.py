"""Minibatch OT and the learned prior: the couplings' transport costs (lediflow/studies/ot_pairing.py)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from lediflow.studies import ot_pairing

from conftest import REPO, copy_run


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ot_keeps_pairs_that_are_already_close_and_re_pairs_independent_draws_at_lower_cost():
    x1 = torch.randn((48, 1, 6, 6), generator=_gen(0))
    close = x1 + 0.05 * torch.randn(x1.shape, generator=_gen(1))  # each x0 near its own image: nothing to swap
    independent = torch.randn(x1.shape, generator=_gen(2))
    rows = {(r["source"], r["pairing"]): r for r in ot_pairing.batch_costs(x1, {"LeDiFlow": close,
                                                                                "gaussian": independent})}
    assert rows["LeDiFlow", "OT"]["kept"] == 1.0
    assert rows["LeDiFlow", "OT"]["cost"] == pytest.approx(rows["LeDiFlow", "paired"]["cost"])
    assert rows["gaussian", "OT"]["cost"] < 0.9 * rows["gaussian", "as drawn"]["cost"]
    assert rows["gaussian", "OT"]["kept"] < 0.2
    # per dimension: the mean squared distance, not its sum over the 36 dimensions
    assert rows["gaussian", "as drawn"]["cost"] == pytest.approx(float(((independent - x1) ** 2).mean()))


def test_differences_are_paired_within_a_batch():
    """A shift common to both couplings of a batch cancels: batches that vary a lot still resolve a small,
    constant difference."""
    rows = []
    for batch, level in enumerate([1.0, 5.0, 2.0, 9.0]):
        for source, pairing in ot_pairing.COUPLINGS:
            cost = level - (0.1 if (source, pairing) == ("gaussian", "OT") else 0.0)
            rows.append({"space": "pixel", "batch": batch, "source": source, "pairing": pairing, "cost": cost,
                         "kept": 1.0})
    diffs = ot_pairing.differences(pd.DataFrame(rows)).set_index("question")
    assert diffs.loc["OT-CFM against the baseline", "difference"] == pytest.approx(-0.1)
    assert diffs.loc["OT-CFM against the baseline", "ci95"] == pytest.approx(0.0, abs=1e-12)
    summary = ot_pairing.summarise(pd.DataFrame(rows))
    assert list(zip(summary["source"], summary["pairing"])) == list(ot_pairing.COUPLINGS)
    assert summary["cost_ci95"].iloc[0] > 1.0  # the batches' spread is in each coupling's own interval


@pytest.mark.slow
def test_the_study_runs_on_a_finished_run(tmp_path: Path, smoke_results: Path):
    run = copy_run(smoke_results, tmp_path / "results") / "smoke"
    out = tmp_path / "ot"
    done = subprocess.run([sys.executable, "-m", "lediflow", "ot-pairing", "--config", str(run / "params.yaml"),
                           "--batches", "2", "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    table = pd.read_csv(out / "ot_pairing.csv")
    assert len(table) == len(ot_pairing.COUPLINGS) * table["space"].nunique() and table["batches"].eq(2).all()
    by = table.set_index(["space", "source", "pairing"])
    for space in table["space"].unique():
        assert by.loc[(space, "gaussian", "OT"), "cost"] < by.loc[(space, "gaussian", "as drawn"), "cost"]
    assert "pairs OT keeps" in (out / "ot_pairing.md").read_text()
