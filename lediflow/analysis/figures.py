"""Matplotlib figures (PNG and PDF): quality vs NFE, sample grids across steps, training losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lediflow.core import artifacts  # noqa: E402
from lediflow.method.names import ZERO_STEP_SETTINGS  # noqa: E402
from lediflow.method.names import FIXED_GRID_SOLVERS  # noqa: E402
from lediflow.analysis.tables import Z95  # noqa: E402

STYLE = {"gaussian": {"color": "tab:blue", "label": "FM baseline (Gaussian)"},
         "learned": {"color": "tab:red", "label": "LeDiFlow (learned prior)"}}


# No creation date in the files: a figure regenerated from the same inputs has the same bytes.
METADATA = {".png": {}, ".pdf": {"CreationDate": None}}


def _save(fig: plt.Figure, folder: Path, name: str) -> list[Path]:
    out = []
    for suffix in (".png", ".pdf"):
        path = folder / f"{name}{suffix}"
        with artifacts.atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight", metadata=METADATA[suffix])
        out.append(path)
    plt.close(fig)
    return out


def _errors(frame: pd.DataFrame, metric: str) -> np.ndarray | None:
    column = {"fid": "fid_se", "kid_mean": "kid_se"}.get(metric)
    if column is None or column not in frame or frame[column].isna().all():
        return None
    return Z95 * frame[column].fillna(0).to_numpy(float)


def quality_vs_nfe(scores: pd.DataFrame, folder: Path, metric: str = "fid", floor: dict | None = None,
                   autoencoder_floor: dict | None = None) -> list[Path]:
    """One figure per space: metric vs NFE (log x) with 95% bars, a panel per fixed-grid solver, dopri5 as
    markers, and the data floor (real images of the other split) as a dashed line."""
    out = []
    for space, by_space in scores.groupby("space"):
        solvers = sorted(by_space.loc[by_space["solver"].isin(FIXED_GRID_SOLVERS), "solver"].unique())
        zero_step = by_space[by_space["solver"].isin(ZERO_STEP_SETTINGS)]
        fig, axes = plt.subplots(1, max(1, len(solvers)), figsize=(4.2 * max(1, len(solvers)), 3.4), squeeze=False)
        for ax, solver in zip(axes[0], solvers):
            for prior, style in STYLE.items():
                curve = by_space[(by_space["solver"] == solver) & (by_space["prior"] == prior)].sort_values("nfe")
                if not curve.empty:
                    ax.errorbar(curve["nfe"], curve[metric], yerr=_errors(curve, metric), fmt="o-", capsize=2,
                                color=style["color"], label=style["label"])
                adaptive = by_space[(by_space["solver"] == "dopri5") & (by_space["prior"] == prior)]
                if not adaptive.empty:
                    ax.errorbar(adaptive["nfe"], adaptive[metric], yerr=_errors(adaptive, metric), fmt="*",
                                markersize=11, capsize=2, color=style["color"], label=f"{style['label']}, dopri5")
            for (_, cell), dash in zip(zero_step.iterrows(), (":", "-.")):  # NFE 0 has no place on a log axis
                ax.axhline(cell[metric], color=STYLE["learned"]["color"], linestyle=dash, linewidth=1,
                           label=f"{cell['solver']} (learned prior alone, NFE 0)")
            if floor is not None and metric in floor:
                ax.axhline(floor[metric], color="gray", linestyle="--", linewidth=1,
                           label=f"data floor ({floor['split']} vs reference)")
            if space == "latent" and autoencoder_floor is not None and metric in autoencoder_floor:
                ax.axhline(autoencoder_floor[metric], color="black", linestyle="--", linewidth=1,
                           label="autoencoder floor (test reconstructions)")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("NFE (velocity-network calls)")
            ax.set_ylabel(metric.upper().replace("_MEAN", ""))
            ax.set_title(f"{space} space, {solver}")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        out += _save(fig, folder, f"quality_vs_nfe_{space}")
    return out


def sample_strip(samples_dir: Path, model: str, settings: list[str], folder: Path, count: int = 8) -> list[Path]:
    """The first `count` samples of one model at each setting, one row per setting."""
    rows = [s for s in settings if (samples_dir / model / s / "samples.npy").is_file()]
    if not rows:
        return []
    fig, axes = plt.subplots(len(rows), 1, figsize=(count * 0.8, 0.9 * len(rows)), squeeze=False)
    for ax, setting in zip(axes[:, 0], rows):
        images = artifacts.load_npy(samples_dir / model / setting / "samples.npy")[:count]
        strip = np.concatenate([img.transpose(1, 2, 0) for img in images], axis=1)
        ax.imshow(strip.squeeze(-1) if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(setting, rotation=0, ha="right", va="center", fontsize=8)
    axes[0, 0].set_title(model, fontsize=9)
    return _save(fig, folder, f"samples_{model}")


def equal_nfe_grid(strips: dict[str, dict[int, np.ndarray]], space: str, folder: Path) -> list[Path]:
    """Both flows side by side at each Euler step count, the same per-image seeds in every row: for each step
    count the baseline's row, then LeDiFlow's (strips: prior -> steps -> uint8 images N x C x H x W)."""
    steps = sorted({s for rows in strips.values() for s in rows})
    order = [(prior, s) for s in steps for prior in ("gaussian", "learned") if s in strips.get(prior, {})]
    count = len(next(iter(strips.values()))[steps[0]])
    fig, axes = plt.subplots(len(order), 1, figsize=(count * 0.8, 0.9 * len(order)), squeeze=False)
    for ax, (prior, s) in zip(axes[:, 0], order):
        strip = np.concatenate([img.transpose(1, 2, 0) for img in strips[prior][s]], axis=1)
        ax.imshow(strip.squeeze(-1) if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        name = "LeDiFlow" if prior == "learned" else "baseline"
        ax.set_ylabel(f"{name}, NFE {s}", rotation=0, ha="right", va="center", fontsize=8,
                      color=STYLE[prior]["color"])
    axes[0, 0].set_title(f"{space} space: Euler at equal NFE, the same seeds in every row", fontsize=9)
    return _save(fig, folder, f"equal_nfe_{space}")


def training_losses(training_dir: Path, folder: Path, columns: int = 3) -> list[Path]:
    """Loss curves of every trained model (results/<run>/training/<model>.jsonl), a grid of panels."""
    logs = sorted(training_dir.glob("*.jsonl")) if training_dir.is_dir() else []
    if not logs:
        return []
    rows = -(-len(logs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.6 * rows), squeeze=False)
    for ax, log in zip(axes.flat, logs):
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        ax.plot([r["step"] for r in records], [r["loss"] for r in records])
        ax.set_title(log.stem, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(logs):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, folder, "training_losses")


SCALING_PANELS = (("best FID", (("baseline_best_fid", "gaussian"), ("ledi_best_fid", "learned"))),
                  ("NFE speedup at matched FID (Euler)", (("speedup_nfe", "speedup"),)),
                  ("wall-clock speedup at matched FID", (("speedup_wall_clock", "speedup"),)),
                  ("FID ratio baseline / LeDiFlow", (("fid_ratio", "euler"), ("cost_ratio", "cost"),
                                                     ("best_ratio", "best"), ("dopri5_ratio", "dopri5"))))
# the ratios share a panel: few-step solves, equal measured cost, each flow at its best, both solved exactly
RATIO_STYLE = {"euler": {"color": "black", "label": "equal Euler NFE (geomean 1-8)", "fmt": "o-"},
               "cost": {"color": "tab:purple", "label": "equal measured cost", "fmt": "D-"},
               "best": {"color": "tab:orange", "label": "best cell vs best cell", "fmt": "v-"},
               "dopri5": {"color": "tab:green", "label": "both dopri5", "fmt": "s--"},
               "speedup": {"color": "black", "label": "LeDiFlow vs baseline", "fmt": "o-"}}


def _count(value: float) -> str:
    """128000 -> '128k', 1024000 -> '1.02M'."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _scaling_series(ax: plt.Axes, x: pd.Series, rows: pd.DataFrame, metric: str, style: dict) -> None:
    """One metric against compute: filled markers with 95% bars for t-intervals over seeds, open markers for
    one seed's bootstrap bars, and an upward arrow (no bar) where the step grid only bounds the value."""
    fmt = style.get("fmt", "o-")
    ax.plot(x, rows[metric], fmt[1:], color=style["color"], lw=1, label=style["label"])
    marker = fmt[0]
    bounds = rows.get(f"{metric}_bound", pd.Series([""] * len(rows), index=rows.index)).fillna("")
    for xi, (_, row), bound in zip(x, rows.iterrows(), bounds):
        value, half = row[metric], row.get(f"{metric}_ci", math.nan)
        if math.isnan(value):
            continue
        if bound in (">=", ">"):
            # matplotlib's lower-limit bar: an upward arrow from the value, inside the axes' autoscale
            ax.errorbar([xi], [value], yerr=[[0.0], [0.15 * value]], lolims=True, fmt=marker, mfc="white",
                        color=style["color"], capsize=0)
            continue
        seeds = row["seeds"] >= 2
        ax.errorbar([xi], [value], yerr=[[0 if math.isnan(half) else half]] * 2, fmt=marker, capsize=2,
                    color=style["color"], mfc=style["color"] if seeds else "white")


def _scaling_legend(ax: plt.Axes) -> None:
    """Every panel's own legend, with the marker code: filled = seeds, open = one seed, arrow = bound."""
    handles, labels = ax.get_legend_handles_labels()
    handles += [matplotlib.lines.Line2D([], [], marker="o", color="grey", ls="", label="3 seeds, 95% t"),
                matplotlib.lines.Line2D([], [], marker="o", mfc="white", color="grey", ls="",
                                        label="1 seed, 95% bootstrap"),
                matplotlib.lines.Line2D([], [], marker=r"$\uparrow$", color="grey", ls="", label="lower bound")]
    ax.legend(handles=handles, fontsize=6)


def _third_method(summary: pd.DataFrame, methods: pd.DataFrame | None, space: str) -> tuple[pd.Series, pd.DataFrame]:
    """OT-CFM's best FID per budget of the space (its side of the OT-CFM-against-Gaussian rows of the study's
    three-method summary), at the x of the same budget in the two-flow summary; empty where it was not trained."""
    if methods is None or methods.empty:
        return pd.Series(dtype=float), pd.DataFrame()
    ot = methods[(methods["space"] == space) & methods["method"].str.startswith("OT-CFM")].sort_values("scale")
    ot = ot.rename(columns={"ledi_best_fid": "ot_best_fid", "ledi_best_fid_ci": "ot_best_fid_ci"})
    two = summary[summary["space"] == space].set_index("scale")
    counted = two["ledi_flow_images"].notna().all()
    x = ot["scale"].map(two["ledi_flow_images"] if counted else pd.Series(two.index, index=two.index))
    return x, ot


def scaling(summary: pd.DataFrame, folder: Path, methods: pd.DataFrame | None = None) -> list[Path]:
    """One figure per space: each scaling metric against training compute (log x: images LeDiFlow's flow saw,
    which no machine changes), 95% bars, the data floor on the FID panel and the no-effect line (1) on the
    others; bounds drawn as bounds; OT-CFM's best FID beside the two flows' where `methods` (the study's
    three-method summary) has it."""
    out = []
    for space, rows in summary.groupby("space"):
        rows = rows.sort_values("scale")
        counted = rows["ledi_flow_images"].notna().all()
        x = rows["ledi_flow_images"] if counted else rows["scale"]
        ot_x, ot = _third_method(summary, methods, space)
        fig, axes = plt.subplots(1, len(SCALING_PANELS), figsize=(4.2 * len(SCALING_PANELS), 3.6), squeeze=False)
        for ax, (title, series) in zip(axes[0], SCALING_PANELS):
            for metric, key in series:
                if metric not in rows or rows[metric].isna().all():
                    continue  # a study without dopri5 cells has no dopri5 ratio
                _scaling_series(ax, x, rows, metric, STYLE.get(key) or RATIO_STYLE[key])
            if series[0][1] in STYLE and not ot.empty:
                _scaling_series(ax, ot_x, ot, "ot_best_fid", {"color": METHOD_COLORS["ot"], "fmt": "^-",
                                                              "label": "OT-CFM (Gaussian, minibatch OT)"})
            if key in STYLE and rows["data_floor_fid"].notna().any():
                ax.axhline(rows["data_floor_fid"].mean(), color="grey", ls="--", lw=1, label="data floor")
            else:
                ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="no effect")
            _scaling_legend(ax)
            ax.set_xscale("log")
            ax.set_xticks(list(x), [_count(v) if counted else f"x{v:g}" for v in x])  # one label per arm
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlabel("flow images seen" if counted else "training scale", fontsize=8)
            ax.set_title(title, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{space} space", fontsize=10)
        fig.tight_layout()
        out += _save(fig, folder, f"scaling_{space}")
    return out


METHOD_COLORS = {"gaussian": "tab:blue", "ot": "tab:green", "learned": "tab:red"}


def methods(scores: pd.DataFrame, folder: Path, labels: dict[str, str]) -> list[Path]:
    """One panel per space: each method's FID against Euler NFE (log x), 95% bootstrap bars, one legend."""
    euler = scores[scores["solver"] == "euler"]
    spaces = sorted(euler["space"].unique())
    if not spaces:
        return []
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.5 * len(spaces), 3.4), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        for prior, curve in euler[euler["space"] == space].groupby("prior", sort=False):
            curve = curve.sort_values("nfe")
            ax.errorbar(curve["nfe"], curve["fid"], yerr=Z95 * curve["fid_se"].fillna(0), fmt="o-", capsize=2,
                        color=METHOD_COLORS.get(prior, "black"), label=labels.get(prior, prior))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("NFE (Euler steps)", fontsize=8)
        ax.set_ylabel("FID (1000 samples)", fontsize=8)
        ax.set_title(f"{space} space", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, folder, "methods_fid_vs_nfe")
