"""Matplotlib figures (PNG and PDF): quality vs NFE, sample grids across steps, training losses."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lediflow import artifacts  # noqa: E402

STYLE = {"gaussian": {"color": "tab:blue", "label": "FM baseline (Gaussian)"},
         "learned": {"color": "tab:red", "label": "LeDiFlow (learned prior)"}}


def _save(fig: plt.Figure, folder: Path, name: str) -> list[Path]:
    out = []
    for suffix in (".png", ".pdf"):
        path = folder / f"{name}{suffix}"
        with artifacts.atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight")
        out.append(path)
    plt.close(fig)
    return out


def quality_vs_nfe(scores: pd.DataFrame, folder: Path, metric: str = "fid") -> list[Path]:
    """One figure per space: metric vs NFE (log x), a panel per fixed-grid solver, dopri5 as markers."""
    out = []
    for space, by_space in scores.groupby("space"):
        solvers = sorted(by_space.loc[by_space["steps"].notna(), "solver"].unique())
        fig, axes = plt.subplots(1, max(1, len(solvers)), figsize=(4.2 * max(1, len(solvers)), 3.4), squeeze=False)
        for ax, solver in zip(axes[0], solvers):
            for prior, style in STYLE.items():
                curve = by_space[(by_space["solver"] == solver) & (by_space["prior"] == prior)].sort_values("nfe")
                if not curve.empty:
                    ax.plot(curve["nfe"], curve[metric], "o-", color=style["color"], label=style["label"])
                adaptive = by_space[(by_space["solver"] == "dopri5") & (by_space["prior"] == prior)]
                if not adaptive.empty:
                    ax.scatter(adaptive["nfe"], adaptive[metric], marker="*", s=120, color=style["color"],
                               label=f"{style['label']}, dopri5")
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
        images = np.load(samples_dir / model / setting / "samples.npy", mmap_mode="r")[:count]
        strip = np.concatenate([img.transpose(1, 2, 0) for img in images], axis=1)
        ax.imshow(strip.squeeze(-1) if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(setting, rotation=0, ha="right", va="center", fontsize=8)
    axes[0, 0].set_title(model, fontsize=9)
    return _save(fig, folder, f"samples_{model}")


def training_losses(models_dir: Path, folder: Path) -> list[Path]:
    """Loss curves of every trained model (metrics.jsonl), one panel each."""
    runs = sorted(p for p in models_dir.iterdir() if (p / "metrics.jsonl").is_file())
    if not runs:
        return []
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.8), squeeze=False)
    for ax, run in zip(axes[0], runs):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        ax.plot([r["step"] for r in records], [r["loss"] for r in records])
        ax.set_title(run.name, fontsize=8)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss")
    return _save(fig, folder, "training_losses")
