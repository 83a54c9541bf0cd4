"""Minibatch OT and the learned prior: the transport cost of every coupling a flow could be trained on.

A flow's straight-line target u = x1 - x0 is easier to integrate in few steps the shorter and less crossing its
pairs are; the mean squared pair distance E||x1 - x0||^2 (the coupling's transport cost, Tong et al. 2023,
section 3.2) is the standard proxy. For batches of training images x1 of the flow's own batch size, this study
measures it for six couplings:

- gaussian / as drawn: x0 ~ N(0, I) independent of x1 (the flow-matching baseline);
- gaussian / OT: the same draws re-paired by the exact minibatch OT plan (OT-CFM);
- learned prior / as drawn: x0 from the prior's sampling path (z from the latent sampler), independent of x1;
- learned prior / OT: those draws re-paired by OT, the natural "OT between prior draws and data" combination;
- LeDiFlow / paired: x0 ~ P_L(. | z), z ~ q(z | x1) of the same image (LeDiFlow's training coupling);
- LeDiFlow / OT: those pairs re-paired by OT, with the share of pairs the plan keeps.

If OT keeps almost every LeDiFlow pair, training on the combination is training LeDiFlow; if the paired cost is
below what OT reaches from the prior's own draws, the learned coupling is already straighter than OT can make it
(docs/results/methods.md, "Does OT pairing help the learned prior?").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from lediflow.analysis.significance import interval, resolved
from lediflow.core import artifacts
from lediflow.method import seeding
from lediflow.method.device import resolve_device
from lediflow.method.flow_matching import gaussian_coupling, learned_coupling, ot_partner
from lediflow.method.learned_prior import LearnedPrior, sample_generators
from lediflow.pipeline import paths
from lediflow.pipeline.budget import flow_model_config
from lediflow.pipeline.config import Params
from lediflow.pipeline.stages.common import training_data

COUPLINGS = (("gaussian", "as drawn"), ("gaussian", "OT"), ("learned prior", "as drawn"), ("learned prior", "OT"),
             ("LeDiFlow", "paired"), ("LeDiFlow", "OT"))


def pair_cost(x0: torch.Tensor, x1: torch.Tensor) -> float:
    """E||x1 - x0||^2 per dimension over the batch's pairs (row i with row i)."""
    return float(((x1 - x0) ** 2).flatten(1).mean(1).mean())


def batch_costs(x1: torch.Tensor, x0_by_source: dict[str, torch.Tensor]) -> list[dict]:
    """Each source's cost as drawn (or paired) and after the exact OT re-pairing, with the share of rows kept."""
    rows = []
    for source, x0 in x0_by_source.items():
        as_given = "paired" if source == "LeDiFlow" else "as drawn"
        rows.append({"source": source, "pairing": as_given, "cost": pair_cost(x0, x1), "kept": 1.0})
        partner = ot_partner(x0, x1)
        kept = float((partner == torch.arange(len(x1), device=partner.device)).double().mean())
        rows.append({"source": source, "pairing": "OT", "cost": pair_cost(x0[partner], x1), "kept": kept})
    return rows


@torch.no_grad()
def measure(params: Params, space: str, batches: int) -> pd.DataFrame:
    """The couplings' costs on `batches` training batches of one space; one row per (batch, source, pairing)."""
    device = resolve_device(params["run"]["device"])
    data = training_data(params, space, "train", device)
    size = flow_model_config(params, space, "learned")["train"]["batch_size"]
    prior = LearnedPrior.load(paths.model_dir(params, paths.prior_name(space)),
                              paths.model_dir(params, paths.latent_sampler_name(space)), params, device)
    seed, rows = params["run"]["seed"], []
    for index in range(batches):
        gen = seeding.generator(device, seed, seeding.STREAM_STATS, index)
        x1 = data.batch(gen, size)
        draws = prior.draw(sample_generators(seed, seeding.STREAM_STATS, range(index * size, (index + 1) * size),
                                             device, salt=1), device)
        x0_by_source = {
            "gaussian": gaussian_coupling(x1, gen),
            "learned prior": draws.x0,
            "LeDiFlow": learned_coupling(x1, prior.auxiliary, prior.std_scale, gen),  # x0 ~ P_L(. | z), z ~ q(z | x1)
        }
        rows += [{"space": space, "batch": index, **row} for row in batch_costs(x1, x0_by_source)]
    return pd.DataFrame(rows)


def summarise(per_batch: pd.DataFrame) -> pd.DataFrame:
    """Mean cost and kept share per (space, source, pairing), with a 95% t interval over batches."""
    rows = []
    for space, in_space in per_batch.groupby("space", sort=True):
        for source, pairing in COUPLINGS:
            group = in_space[(in_space["source"] == source) & (in_space["pairing"] == pairing)]
            cost, half, _ = interval(group["cost"].to_numpy(), float("nan"))
            rows.append({"space": space, "source": source, "pairing": pairing, "batches": len(group),
                         "cost": cost, "cost_ci95": half, "kept": float(group["kept"].mean())})
    return pd.DataFrame(rows)


# the questions, each a per-batch difference of two couplings' costs (paired over the same batches)
DIFFERENCES = {
    "OT-CFM against the baseline": (("gaussian", "OT"), ("gaussian", "as drawn")),
    "OT on the prior's draws against the prior's draws": (("learned prior", "OT"), ("learned prior", "as drawn")),
    "LeDiFlow's pairs against OT on the prior's draws": (("LeDiFlow", "paired"), ("learned prior", "OT")),
    "OT on LeDiFlow's pairs against LeDiFlow's pairs": (("LeDiFlow", "OT"), ("LeDiFlow", "paired")),
}


def differences(per_batch: pd.DataFrame) -> pd.DataFrame:
    """Each question's mean cost difference (first minus second coupling), 95% t over batches, and whether the
    interval excludes zero."""
    rows = []
    for space, in_space in per_batch.groupby("space", sort=True):
        cost = in_space.set_index(["source", "pairing", "batch"])["cost"].sort_index()
        for question, (first, second) in DIFFERENCES.items():
            diff = (cost.loc[first] - cost.loc[second]).to_numpy()
            centre, half, _ = interval(diff, float("nan"))
            rows.append({"space": space, "question": question, "difference": centre, "ci95": half,
                         "resolved": resolved(centre, half, 0.0)})
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, diffs: pd.DataFrame, batch_size: dict[str, int]) -> str:
    lines = ["| space | source of x0 | pairing with the batch | E‖x1 − x0‖² per dimension | pairs OT keeps |",
             "| --- | --- | --- | --- | --- |"]
    for row in summary.itertuples():
        kept = f"{row.kept:.1%}" if row.pairing == "OT" else ""
        lines.append(f"| {row.space} | {row.source} | {row.pairing} | {row.cost:.4f} ± {row.cost_ci95:.4f} | {kept} |")
    lines += ["", "| space | difference of costs (first minus second) | mean ± 95% t | resolved |",
              "| --- | --- | --- | --- |"]
    for row in diffs.itertuples():
        lines.append(f"| {row.space} | {row.question} | {row.difference:+.4f} ± {row.ci95:.4f} | {row.resolved} |")
    sizes = ", ".join(f"{space} {size}" for space, size in batch_size.items())
    lines += ["", f"Training batches of the flow's batch size ({sizes}); ± is the 95% t interval over "
              f"{int(summary['batches'].iloc[0])} batches (differences paired within a batch); one seed."]
    return "\n".join(lines) + "\n"


def write(params: Params, spaces: list[str], batches: int, out: Path) -> pd.DataFrame:
    per_batch = pd.concat([measure(params, space, batches) for space in spaces], ignore_index=True)
    summary, diffs = summarise(per_batch), differences(per_batch)
    sizes = {space: flow_model_config(params, space, "learned")["train"]["batch_size"] for space in spaces}
    out.mkdir(parents=True, exist_ok=True)
    artifacts.write_text_atomic(out / "ot_pairing.csv", summary.to_csv(index=False, float_format="%.6g"))
    artifacts.write_text_atomic(out / "ot_pairing_differences.csv", diffs.to_csv(index=False, float_format="%.6g"))
    artifacts.write_text_atomic(out / "ot_pairing.md", markdown(summary, diffs, sizes))
    return summary
