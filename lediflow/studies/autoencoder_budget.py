"""The autoencoder floor against training steps: one autoencoder trained on and on, scored at each budget.

The trainer's learning rate is constant after warm-up and its resume ignores the step budget (train.py), so
raising autoencoder.train.steps continues the same optimisation path: the floor recorded at a budget is the
floor of an autoencoder trained for exactly that many steps, and each budget costs only its increment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lediflow.core import artifacts

from lediflow.pipeline import paths

from lediflow.analysis import tables
from lediflow.pipeline.config import Params
from lediflow.core.errors import LediflowError
from lediflow.pipeline.budget import train_section

CAPTION = ("Autoencoder budget: one AutoencoderKL trained on (constant learning rate after warm-up, so each row "
           "is the autoencoder trained for exactly that many steps). floor_fid: its posterior-mean reconstructions "
           "of {n} test images against the {ref} reference, +- 95% bootstrap half-width; data_floor_fid: the test "
           "images themselves, same count and reference; ratio = floor_fid / data_floor_fid (the study's target: "
           "<= 1.5). train_seconds: cumulative measured training time on the machine that ran it.")


def point(params: Params) -> dict:
    """One budget's row: the run's autoencoder floor, data floor and the autoencoder's training record."""
    files = {"autoencoder floor": paths.autoencoder_floor_file(params), "data floor": paths.data_floor_file(params),
             "autoencoder manifest": paths.autoencoder_dir(params) / "manifest.json"}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise LediflowError(f"{paths.run_dir(params)} has no {', '.join(missing)}; run "
                            f"`snakemake {files['autoencoder floor']}` with the same configs first")
    floor, data = (tables.read_json(files[k], "run `lediflow autoencoder-floor`")
                   for k in ("autoencoder floor", "data floor"))
    training = json.loads(files["autoencoder manifest"].read_text())["training"]
    steps, scale = train_section(params, "autoencoder")["steps"], params["run"]["train_scale"]
    if training["step"] != steps:
        budget = f"autoencoder.train.steps={params['autoencoder']['train']['steps']}"
        budget += f" x run.train_scale={scale:g} = {steps}" if scale != 1 else ""
        raise LediflowError(f"the autoencoder in {paths.run_dir(params)} was trained {training['step']} steps, not "
                            f"{budget}; rerun its floor")
    return {"steps": training["step"], "samples_seen": training["samples_seen"],
            "train_seconds": training["train_seconds"], "psnr_db": floor["psnr_db"],
            "floor_fid": floor["fid"], "floor_fid_se": floor["fid_se"], "floor_kid": floor["kid_mean"],
            "data_floor_fid": data["fid"], "data_floor_fid_se": data["fid_se"],
            "ratio": floor["fid"] / data["fid"], "num_samples": floor["num_samples"],
            "reference_split": floor["reference_split"]}


def write_point(params: Params, out: Path) -> dict:
    row = point(params)
    artifacts.write_json_atomic(Path(out), row)
    return row


def table(points: list[Path]) -> pd.DataFrame:
    rows = []
    for path in points:
        try:
            rows.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise LediflowError(f"cannot read budget point {path} ({exc}); delete it and rerun its budget") from exc
    if not rows:
        raise LediflowError("no budget points given; pass --points FILE [FILE ...]")
    frame = pd.DataFrame(rows).sort_values("steps").reset_index(drop=True)
    frame["floor_fid_ci"] = tables.Z95 * frame["floor_fid_se"]
    frame["data_floor_fid_ci"] = tables.Z95 * frame["data_floor_fid_se"]
    return frame[["steps", "samples_seen", "train_seconds", "psnr_db", "floor_fid", "floor_fid_ci", "floor_kid",
                  "data_floor_fid", "data_floor_fid_ci", "ratio", "num_samples", "reference_split"]]


def write_table(points: list[Path], out_dir: Path, name: str = "autoencoder_budget") -> pd.DataFrame:
    frame = table(points)
    first = frame.iloc[0]
    caption = CAPTION.format(n=int(first["num_samples"]), ref=first["reference_split"])
    tables.write_table(frame, Path(out_dir), name, caption)
    return frame
