"""The stage registry: every `lediflow` command, its help line, group and example."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

from lediflow.cli import run_commands as run, study_commands as study
from lediflow.pipeline.config import Params

StageFn = Callable[[Params, argparse.Namespace], None]


@dataclass(frozen=True)
class Stage:
    run: StageFn
    help: str
    add_args: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)
    writes_run: bool = True  # writes under results/<run>/, so a live run with other params refuses it
    group: str = "pipeline"  # pipeline (a Snakemake rule calls it), model, study (cross-run tables), internal
    example: str = ""  # the arguments after `lediflow <stage>` of one typical call


# Stage registry: the CLI's choices come from it.
STAGES: dict[str, Stage] = {
    "show-params": Stage(run.show_params, "print the validated params with all defaults filled",
                writes_run=False, group="pipeline", example="--config params.yaml --set data.resolution=64"),
    "prepare-data": Stage(run.prepare_data, "write results/<run>/data/{train,test}.npy and manifest.json",
                group="pipeline", example="--config params.yaml"),
    "train-autoencoder": Stage(run.train_autoencoder, "train (or locate) the AutoencoderKL of the latent variant",
                group="pipeline", example="--config results/default/params.yaml"),
    "encode-latents": Stage(run.encode_latents, "store posterior mean/std of every image under the autoencoder",
                group="pipeline", example="--config results/default/params.yaml"),
    "train-prior": Stage(run.train_prior, "train the auxiliary encoder/decoder that defines the learned prior",
                run.space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "train-latent-sampler": Stage(run.train_latent_sampler, "train the flow MLP that samples z for the learned prior",
                run.space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "train-flow": Stage(run.train_flow, "train a flow-matching DiT from the gaussian or learned prior",
                run.flow_args, group="pipeline",
                example="--config results/default/params.yaml --space pixel --prior learned"),
    "sample": Stage(run.sample, "draw sample.num_samples images from one flow model at one solver setting",
                run.sample_args, group="pipeline",
                example="--config results/default/params.yaml --model flow-pixel-learned --setting euler-2"),
    "time-cells": Stage(run.time_cells, "time every cell of one space, both arms back to back, repeated",
                run.space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "reference-features": Stage(run.reference_features, "Inception (and CLIP) features of the real reference images",
                group="pipeline", example="--config results/default/params.yaml"),
    "autoencoder-floor": Stage(run.autoencoder_floor, "FID of the autoencoder's test reconstructions (latent floor)",
                group="pipeline", example="--config results/default/params.yaml"),
    "score": Stage(run.score, "FID, KID, mmd_inception and CMMD of one sample set",
                run.sample_args, group="pipeline",
                example="--config results/default/params.yaml --model flow-pixel-learned --setting euler-2"),
    "generate": Stage(run.generate, "draw images from a finished run's trained model (PNG grid and .npz)",
                run.generate_args, writes_run=False, group="model",
                example="--model flow-pixel-learned --setting euler-2 --seeds 0-63 --out generated/"),
    "equal-nfe-grid": Stage(run.equal_nfe_grid, "both flows at each Euler step count from the same seeds (figure)",
                run.space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "export-weights": Stage(run.export_weights, "copy a run's final weights (no checkpoints) for `generate`",
                run.export_args, writes_run=False, group="model",
                example="--config results/default/params.yaml --out pretrained/fashion-mnist-32"),
    "tables": Stage(run.tables, "paper-style tables (Markdown, CSV, LaTeX) and figures from the score files",
                group="pipeline", example="--config results/default/params.yaml"),
    "compare-runs": Stage(study.compare_runs, "one ablation table across finished runs (results/<run> per arm)",
                study.compare_args, writes_run=False, group="study",
                example="--study std_scale --runs results/ablation-reference results/ablation-std_scale_0.5"),
    "autoencoder-budget-point": Stage(study.budget_point, "record a run's autoencoder floor at its step budget",
                study.point_args, writes_run=False, group="internal"),
    "autoencoder-budget": Stage(study.budget_table, "the autoencoder floor against training steps (table)",
                study.budget_args, writes_run=False, group="study",
                example="--points results/ablations/autoencoder_budget/*.json"),
    "scaling": Stage(study.scaling, "the scaling study's tables and figures from its finished runs",
                study.scaling_args, writes_run=False, group="study",
                example="--runs results/default results/scaling-pixel-x2-s0 --out results/scaling"),
    "methods": Stage(study.methods, "Gaussian baseline, OT-CFM and LeDiFlow side by side from finished runs",
                study.methods_args, writes_run=False, group="study",
                example="--runs results/default results/otcfm-pixel-x1-s0 --out results/methods"),
    "seed-quality": Stage(study.seed_quality, "precision/recall over seeds at each flow's best cell",
                study.seed_quality_args, writes_run=False, group="study", example="--study configs/seeds/study.yaml"),
    "ot-pairing": Stage(study.ot_pairing, "transport cost of each coupling, with and without minibatch OT pairing",
                study.ot_pairing_args, writes_run=False, group="study",
                example="--config results/default/params.yaml --batches 20 --out results/methods"),
    "scaling-cost": Stage(study.scaling_cost, "estimate the scaling study's hours from the default run's job times",
                study.scaling_cost_args, writes_run=False, group="study", example="--whole"),
    "seed-checkpoints": Stage(study.seed_checkpoints, "copy a smaller scaling arm's checkpoints so an arm continues them",
                study.seed_checkpoints_args, writes_run=False, group="internal"),
    "dvc-yaml": Stage(run.dvc_yaml, "regenerate dvc.yaml from the path table",
                run.dvc_args, writes_run=False, group="internal"),
    "interpolate": Stage(run.interpolate, "slerp between two images' z and run the learned flow (PNG strip)",
                group="pipeline", example="--config results/default/params.yaml"),
    "inpaint": Stage(run.inpaint, "fill a masked region with the learned prior and flow (PNG + metrics)",
                group="pipeline", example="--config results/default/params.yaml"),
    "prior-report": Stage(run.prior_report, "measure ||x0 - x1||^2 of the couplings and draw prior samples",
                run.space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
}
