"""Paper-style tables from the score files (pandas): quality vs NFE, speedup, quality ratio, headline.

Definitions (PAPER.md 3, 6), stated again in every table's caption:
- Speedup at matched quality, per space and fixed-grid solver: the baseline's
  reference quality is its best FID over the step grid, reached at NFE_b (the
  smallest NFE attaining it). NFE_l is the NFE at which LeDiFlow first reaches
  that FID, interpolated linearly in log NFE between grid points. NFE-only
  speedup = NFE_b / NFE_l. Cost-adjusted speedup = ms/image of the baseline at
  NFE_b over ms/image of LeDiFlow at NFE_l (interpolated the same way), where
  LeDiFlow's time includes its latent sampler and prior decoder (and, in
  latent space, both include the autoencoder decode).
- Quality ratio at equal NFE: metric_baseline / metric_LeDiFlow per step
  count (lower metrics are better, so > 1 favours LeDiFlow), and its mean.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

PAPER_HEADLINES = {
    "pixel": "inference up to 3.75x faster than the pixel-space FM baseline",
    "latent": "CMMD 1.32x better on average than the latent FM baseline",
}
METRICS = ("fid", "kid_mean", "cmmd", "mmd_inception")


def load_scores(scores_dir: Path) -> pd.DataFrame:
    """One row per scored cell; cmmd is NaN where it was unavailable."""
    rows = []
    for path in sorted(Path(scores_dir).glob("*/*.json")):
        score = json.loads(path.read_text())
        sampling = score["sampling"]
        rows.append({
            "space": sampling["space"], "prior": sampling["prior"], "solver": sampling["solver"],
            "steps": sampling["steps"], "tol": sampling["tol"], "setting": score["setting"],
            "nfe": sampling["nfe"], "latent_sampler_nfe": sampling["latent_sampler_nfe"],
            "ms_per_image": 1000 * sampling["seconds_per_image"]["total"],
            "ms_prior": 1000 * sampling["seconds_per_image"]["prior"],
            "ms_flow": 1000 * sampling["seconds_per_image"]["flow"],
            "ms_decode": 1000 * sampling["seconds_per_image"]["decode"],
            "fid": score["fid"], "kid_mean": score["kid_mean"], "kid_std": score["kid_std"],
            "cmmd": score["cmmd"] if isinstance(score["cmmd"], (int, float)) else math.nan,
            "mmd_inception": score["mmd_inception"], "num_samples": score["num_samples"],
        })
    if not rows:
        raise FileNotFoundError(f"no score files under {scores_dir}")
    return pd.DataFrame(rows).sort_values(["space", "prior", "solver", "nfe"]).reset_index(drop=True)


def quality_vs_nfe(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows space x prior x solver, columns the step counts (dopri5: its tolerance); cells 'FID / KID (NFE, ms)'."""
    frame = scores.copy()
    frame["budget"] = [f"{s:g} steps" if not pd.isna(s) else f"tol {t:g}" for s, t in zip(frame["steps"], frame["tol"])]

    def cell(row: pd.Series) -> str:
        cmmd = "" if pd.isna(row["cmmd"]) else f" / CMMD {row['cmmd']:.3f}"
        return (f"{row['fid']:.2f} / {row['kid_mean']:.4f}{cmmd} / {row['mmd_inception']:.3f} "
                f"(NFE {row['nfe']:g}, {row['ms_per_image']:.2f} ms)")

    frame["cell"] = frame.apply(cell, axis=1)
    table = frame.pivot_table(index=["space", "prior", "solver"], columns="budget", values="cell", aggfunc="first")
    order = sorted(table.columns, key=lambda c: (c.startswith("tol"), float(c.split()[0 if not c.startswith("tol") else 1])))
    return table[order].fillna("")


def _log_interp(x_target: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Linear interpolation of y at x_target on log x."""
    return float(np.interp(math.log(x_target), np.log(xs), ys))


def first_nfe_reaching(nfe: np.ndarray, fid: np.ndarray, target: float) -> float | None:
    """Smallest NFE where the curve reaches FID <= target, interpolated on log NFE; None if never."""
    order = np.argsort(nfe)
    nfe, fid = nfe[order], fid[order]
    if fid[0] <= target:
        return float(nfe[0])
    for i in range(1, len(nfe)):
        if fid[i] <= target:
            # fid falls from fid[i-1] > target to fid[i] <= target between these grid points
            frac = (fid[i - 1] - target) / (fid[i - 1] - fid[i])
            return float(math.exp(math.log(nfe[i - 1]) + frac * (math.log(nfe[i]) - math.log(nfe[i - 1]))))
    return None


def speedup(scores: pd.DataFrame) -> pd.DataFrame:
    rows = []
    fixed = scores[scores["steps"].notna()]
    for (space, solver), group in fixed.groupby(["space", "solver"]):
        base = group[group["prior"] == "gaussian"].sort_values("nfe")
        learned = group[group["prior"] == "learned"].sort_values("nfe")
        if base.empty or learned.empty:
            continue
        best = base.loc[base["fid"].idxmin()]
        target, nfe_b, ms_b = float(best["fid"]), float(best["nfe"]), float(best["ms_per_image"])
        nfe_l = first_nfe_reaching(learned["nfe"].to_numpy(float), learned["fid"].to_numpy(float), target)
        row = {"space": space, "solver": solver, "baseline_best_fid": target, "baseline_nfe": nfe_b,
               "baseline_ms_per_image": ms_b, "ledi_nfe_to_match": nfe_l}
        if nfe_l is None:
            row.update({"ledi_ms_per_image": math.nan, "speedup_nfe": math.nan, "speedup_wall_clock": math.nan,
                        "note": f"LeDiFlow never reached FID {target:.2f} on this grid"})
        else:
            ms_l = _log_interp(nfe_l, learned["nfe"].to_numpy(float), learned["ms_per_image"].to_numpy(float))
            row.update({"ledi_ms_per_image": ms_l, "speedup_nfe": nfe_b / nfe_l, "speedup_wall_clock": ms_b / ms_l,
                        "note": ""})
        rows.append(row)
    return pd.DataFrame(rows)


def quality_ratio(scores: pd.DataFrame) -> pd.DataFrame:
    """baseline / LeDiFlow per metric at equal (solver, steps); the 'mean' row averages over the step grid."""
    fixed = scores[scores["steps"].notna()]
    keys = ["space", "solver", "steps"]
    base = fixed[fixed["prior"] == "gaussian"].set_index(keys)
    learned = fixed[fixed["prior"] == "learned"].set_index(keys)
    common = base.index.intersection(learned.index)
    ratios = pd.DataFrame({m: base.loc[common, m] / learned.loc[common, m] for m in METRICS}, index=common)
    ratios["nfe"] = base.loc[common, "nfe"]
    ratios = ratios.reset_index()
    means = ratios.groupby(["space", "solver"])[list(METRICS)].mean().reset_index()
    means["steps"] = "mean"
    return pd.concat([ratios, means], ignore_index=True)


def headline(speed: pd.DataFrame, ratio: pd.DataFrame) -> pd.DataFrame:
    rows = []
    pixel = speed[speed["space"] == "pixel"] if not speed.empty else speed
    if not pixel.empty and pixel["speedup_nfe"].notna().any():
        best = pixel.loc[pixel["speedup_nfe"].idxmax()]
        ours = (f"up to {best['speedup_nfe']:.2f}x fewer NFE ({best['solver']}), "
                f"{best['speedup_wall_clock']:.2f}x wall-clock at matched FID")
    else:
        ours = "not measured (no pixel-space pair of curves, or LeDiFlow never matched the baseline)"
    rows.append({"space": "pixel", "paper": PAPER_HEADLINES["pixel"], "this run": ours})
    means = ratio[(ratio["space"] == "latent") & (ratio["steps"] == "mean")]
    if means.empty:
        ours = "not measured (no latent-space run)"
    else:
        parts = []
        for metric in METRICS:
            values = means[metric].dropna()
            if metric == "cmmd" and values.empty:
                parts.append("CMMD unavailable (no CLIP weights)")
            elif not values.empty:
                parts.append(f"{metric} {values.mean():.2f}x")
        ours = "mean baseline/LeDiFlow ratio at equal NFE: " + ", ".join(parts)
    rows.append({"space": "latent", "paper": PAPER_HEADLINES["latent"], "this run": ours})
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, folder: Path, name: str, caption: str) -> list[Path]:
    """Markdown (with the caption), CSV and LaTeX of one table."""
    from lediflow import artifacts

    out = []
    index = not isinstance(frame.index, pd.RangeIndex)
    md = f"**{name}.** {caption}\n\n" + frame.to_markdown(index=index, floatfmt=".4g") + "\n"
    for suffix, text in ((".md", md), (".csv", frame.to_csv(index=index, float_format="%.6g")),
                         (".tex", frame.to_latex(index=index, float_format="%.4g", caption=caption, label=f"tab:{name}"))):
        path = folder / f"{name}{suffix}"
        artifacts.write_text_atomic(path, text)
        out.append(path)
    return out
