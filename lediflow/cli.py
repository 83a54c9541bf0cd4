"""`lediflow <stage> --config FILE [--config FILE ...] [--set key.path=value ...]`.

Every Snakemake rule calls one of these stages. Config files are merged in
order over the schema defaults (as Snakemake merges --configfile), then the
--set overrides; the result is validated before any compute.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lediflow.config import Params, load_params
from lediflow.errors import LediflowError
from lediflow.paths import check_cell

StageFn = Callable[[Params, argparse.Namespace], None]
DEBUG_ENV = "LEDIFLOW_TRACEBACK"
# errors of the machine a user can act on, and what to do about each
ENVIRONMENT_ERRNOS = {errno.EACCES: "give this user write access there or choose another run.results_dir",
                      errno.EPERM: "give this user write access there or choose another run.results_dir",
                      errno.EROFS: "the file system is read-only; choose another run.results_dir",
                      errno.ENOSPC: "the disk is full; free space (old runs' samples, ~/.cache) and run again",
                      errno.EDQUOT: "the disk quota is used up; free space and run again"}


@dataclass(frozen=True)
class Stage:
    run: StageFn
    help: str
    add_args: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)
    writes_run: bool = True  # writes under results/<run>/, so a live run with other params refuses it
    group: str = "pipeline"  # pipeline (a Snakemake rule calls it), model, study (cross-run tables), internal
    example: str = ""  # the arguments after `lediflow <stage>` of one typical call


def _prepare_data(params: Params, args: argparse.Namespace) -> None:
    from lediflow.data import prepare

    manifest = prepare(params)
    counts = ", ".join(f"{k}={v}" for k, v in manifest["counts"].items())
    print(f"prepared {params['data']['source']}: {counts}, shape {manifest['shape']}")


def _show_params(params: Params, args: argparse.Namespace) -> None:
    print(json.dumps(params, indent=2))


def _print_training(name: str, manifest: dict) -> None:
    if manifest:  # DDP ranks other than 0 return nothing
        info = manifest["training"]
        print(f"trained {name}: {info['step']} steps, {info['parameters']} parameters, "
              f"{info['train_seconds']:.1f} s, final loss {info['final_loss']:.4f}")


def _space_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=["pixel", "latent"], default="pixel",
                        help="pixel (images) or latent (the autoencoder's latents)")


def _train_prior(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.prior import train_prior

    _print_training(f"prior ({args.space})", train_prior(params, args.space))


def _train_latent_sampler(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.prior import train_latent_sampler

    _print_training(f"latent sampler ({args.space})", train_latent_sampler(params, args.space))


def _train_autoencoder(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.latents import train_autoencoder

    manifest = train_autoencoder(params)
    if "training" in manifest:
        _print_training("autoencoder", manifest)
    elif manifest:
        print(f"using pretrained autoencoder {manifest['vae_dir']}")


def _encode_latents(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.latents import encode_latents

    m = encode_latents(params)
    print(f"encoded latents {m['latent_shape']}: test MSE {m['test_mse']:.5f}, PSNR {m['test_psnr_db']:.2f} dB")


def _flow_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=["pixel", "latent"], required=True, help="where the flow runs")
    parser.add_argument("--prior", choices=["gaussian", "learned", "ot"], required=True,
                        help="source distribution: gaussian (baseline), learned (LeDiFlow) or ot (OT-CFM: "
                             "Gaussian paired by minibatch optimal transport)")


def _train_flow(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.flow import train_flow

    _print_training(f"flow {args.space}/{args.prior}", train_flow(params, args.space, args.prior))


def _prior_report(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.prior_report import prior_report

    report = prior_report(params, args.space)
    print(f"||x0 - x1||^2 per pixel: paired learned {report['mse_paired_x0']:.4f}, "
          f"gaussian {report['mse_gaussian_x0']:.4f} ({report['gaussian_over_paired']:.1f}x closer); latent sampler "
          f"FID {report['sampler_fid']:.2f} +- {1.96 * report['sampler_fid_se']:.2f} ({report['sampler_fid_images']} images)")


def _sample_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="flow model folder name, e.g. flow-pixel-learned")
    parser.add_argument("--setting", required=True, help="solver cell: euler-8, midpoint-4, rk4-2, dopri5-1e-05 ...")


def _sample(params: Params, args: argparse.Namespace) -> None:
    check_cell(params, args.model, args.setting)  # before torch is imported: a typo costs no seconds
    from lediflow.stages.sample import sample_cell

    record = sample_cell(params, args.model, args.setting)
    print(f"sampled {record['num_samples']} images from {args.model} with {args.setting}: NFE {record['nfe']:g} "
          f"(+{record['latent_sampler_nfe']:g} latent sampler), {1000 * record['seconds_per_image']['total']:.2f} ms/image")


def _time_cells(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.timing import time_cells

    result = time_cells(params, args.space)
    count = sum(len(cells) for cells in result["cells"].values())
    print(f"timed {count} cells of {args.space} space, {result['timing_repeats']} repeats of "
          f"{result['timing_images']} images each -> {args.space}.json")


def _interpolate(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.extras import interpolate

    info = interpolate(params)
    print(f"interpolated {info['pairs']} pairs at {info['points']} points")


def _inpaint(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.extras import inpaint

    m = inpaint(params)
    print(f"inpainted {m['images']} images ({m['mask']} mask): MSE on unknown pixels {m['mse_unknown_flow']:.4f} "
          f"(prior mean alone {m['mse_unknown_prior_mean']:.4f})")


def _reference_features(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.score import reference_features

    info = reference_features(params)
    clip = "with CLIP" if isinstance(info["clip"], dict) else "CMMD " + info["clip"]
    print(f"reference features of {info['count']} {info['split']} images ({clip})")


def _autoencoder_floor(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.score import autoencoder_floor

    r = autoencoder_floor(params)
    print(f"autoencoder floor: {r['num_samples']} reconstructed {r['split']} images, FID {r['fid']:.2f} +- "
          f"{1.96 * r['fid_se']:.2f}, PSNR {r['psnr_db']:.2f} dB")


def _score(params: Params, args: argparse.Namespace) -> None:
    check_cell(params, args.model, args.setting)
    from lediflow.stages.score import score

    r = score(params, args.model, args.setting)
    cmmd = f"{r['cmmd']:.4f}" if isinstance(r["cmmd"], float) else r["cmmd"]
    print(f"{args.model} {args.setting}: FID {r['fid']:.2f}, KID {r['kid_mean']:.4f} +- {r['kid_std']:.4f}, "
          f"mmd_inception {r['mmd_inception']:.3f}, CMMD {cmmd}")


def _tables(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.report import make_tables

    counts = make_tables(params)
    print("tables: " + ", ".join(f"{name} ({rows} rows)" for name, rows in counts.items()))


def _compare_runs(params: Params, args: argparse.Namespace) -> None:
    from lediflow.ablation import write_study

    wide = write_study(args.study, args.runs, args.out, args.cells)
    print(f"{args.study}: {len(wide)} arms -> {args.out}/{args.study}.md")


def _compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="table name, e.g. std_scale")
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="run folders (results/<run>), one per arm")
    parser.add_argument("--out", default="results/ablations", help="folder for <study>.md/.csv/.tex")
    parser.add_argument("--cells", choices=["tables", "prior", "scores"], default="tables",
                        help="compare every cell of the arms (tables), only the learned prior's zero-step cells "
                             "(prior), or every cell with each arm's flow training compute and best FID (scores)")


def _budget_point(params: Params, args: argparse.Namespace) -> None:
    from lediflow.autoencoder_budget import write_point

    row = write_point(params, args.out)
    print(f"autoencoder at {row['steps']} steps: floor FID {row['floor_fid']:.2f} = {row['ratio']:.2f}x the data "
          f"floor -> {args.out}")


def _point_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="where to write this budget's point (JSON)")


def _budget_table(params: Params, args: argparse.Namespace) -> None:
    from lediflow.autoencoder_budget import write_table

    frame = write_table(args.points, args.out)
    print(f"autoencoder_budget: {len(frame)} budgets -> {args.out}/autoencoder_budget.md")


def _budget_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", nargs="+", required=True, metavar="FILE", help="budget points, one per budget")
    parser.add_argument("--out", default="results/ablations", help="folder for autoencoder_budget.md/.csv/.tex")


def _scaling(params: Params, args: argparse.Namespace) -> None:
    from lediflow.scaling import write

    summary = write([Path(r) for r in args.runs], Path(args.out))
    print(f"scaling: {len(summary)} (space, scale) points from {len(args.runs)} runs -> {args.out}/scaling.md")


def _scaling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="the study's run folders")
    parser.add_argument("--out", default="results/scaling", help="folder for scaling.md/.csv/.tex and figures")


def _generate(params: Params, args: argparse.Namespace) -> None:
    from lediflow.stages.generate import generate, parse_seeds

    done = generate(Path(args.run), args.model, args.setting, parse_seeds(args.seeds), args.batch, args.device,
                    Path(args.out))
    print(f"generate: {done['images']} images at NFE {done['nfe']:g} -> {done['png']} and {done['npz']}")


def _generate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", default="results/default", metavar="DIR", help="a finished run's folder")
    parser.add_argument("--model", default="flow-pixel-learned", help="flow-<space>-<prior> of that run")
    parser.add_argument("--setting", default="euler-2", help="solver cell: euler-4, midpoint-2, dopri5-1e-05, "
                                                             "prior-mean ...")
    parser.add_argument("--seeds", default="0-63", help="image indices: ranges and lists, e.g. 0-63 or 0,5,9")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (the images do not depend on it)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--out", default="generated", metavar="DIR", help="folder for the PNG grid and the .npz")


def _methods(params: Params, args: argparse.Namespace) -> None:
    from lediflow.methods import write

    compared = write([Path(r) for r in args.runs], Path(args.out))
    print(f"methods: {len(compared)} comparisons from {len(args.runs)} runs -> {args.out}/methods.md")


def _methods_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                        help="finished runs holding the methods, e.g. results/default results/otcfm-pixel-x1-s0")
    parser.add_argument("--out", default="results/methods", help="folder for methods.md/.csv/.tex and the figure")


def _scaling_cost(params: Params, args: argparse.Namespace) -> None:
    from lediflow import scaling, scaling_cost
    from lediflow.config import run_dir

    spec = scaling.load_spec(args.study)
    default_run = Path(args.default_run) if args.default_run else run_dir(load_params(spec["configs"]))
    frame = scaling_cost.write(spec, default_run, Path(args.out), args.alone, args.fresh_clone, args.whole)
    name = scaling_cost.table_name(args.alone, args.whole)
    arms = "in the study" if args.whole else "to run"
    print(f"scaling-cost: {len(frame)} arms {arms}, about {frame['hours'].sum():.1f} hours on this machine "
          f"(training {frame['train_s'].sum() / 3600:.1f}), estimated from {default_run} -> {args.out}/{name}.md")


def _scaling_cost_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default="configs/scaling/study.yaml", help="the scaling study file")
    parser.add_argument("--default-run", default=None, metavar="DIR",
                        help="the finished run to take job times from (default: the study's x1 seed-0 run)")
    parser.add_argument("--out", default="results/scaling", help="folder for cost.md/.csv/.tex")
    parser.add_argument("--alone", action="store_true",
                        help="each arm in a fresh clone of its own, continuing nothing (-> cost_alone.md)")
    parser.add_argument("--fresh-clone", action="store_true",
                        help="ignore checkpoints finished arms left here, as a fresh clone has none (use it for the "
                             "committed cost.md)")
    parser.add_argument("--whole", action="store_true",
                        help="price every arm, finished or not: the whole study's cost (-> cost_whole.md)")


def _dvc_yaml(params: Params, args: argparse.Namespace) -> None:
    from lediflow import dvcgen

    dvcgen.write(args.output)
    print(f"wrote {args.output}")


def _dvc_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="dvc.yaml", help="where to write the generated dvc.yaml")


# Stage registry: the CLI's choices come from it.
STAGES: dict[str, Stage] = {
    "show-params": Stage(_show_params, "print the validated params with all defaults filled",
                writes_run=False, group="pipeline", example="--config params.yaml --set data.resolution=64"),
    "prepare-data": Stage(_prepare_data, "write results/<run>/data/{train,test}.npy and manifest.json",
                group="pipeline", example="--config params.yaml"),
    "train-autoencoder": Stage(_train_autoencoder, "train (or locate) the AutoencoderKL of the latent variant",
                group="pipeline", example="--config results/default/params.yaml"),
    "encode-latents": Stage(_encode_latents, "store posterior mean/std of every image under the autoencoder",
                group="pipeline", example="--config results/default/params.yaml"),
    "train-prior": Stage(_train_prior, "train the auxiliary encoder/decoder that defines the learned prior",
                _space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "train-latent-sampler": Stage(_train_latent_sampler, "train the flow MLP that samples z for the learned prior",
                _space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "train-flow": Stage(_train_flow, "train a flow-matching DiT from the gaussian or learned prior",
                _flow_args, group="pipeline",
                example="--config results/default/params.yaml --space pixel --prior learned"),
    "sample": Stage(_sample, "draw sample.num_samples images from one flow model at one solver setting",
                _sample_args, group="pipeline",
                example="--config results/default/params.yaml --model flow-pixel-learned --setting euler-2"),
    "time-cells": Stage(_time_cells, "time every cell of one space, both arms back to back, repeated",
                _space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
    "reference-features": Stage(_reference_features, "Inception (and CLIP) features of the real reference images",
                group="pipeline", example="--config results/default/params.yaml"),
    "autoencoder-floor": Stage(_autoencoder_floor, "FID of the autoencoder's test reconstructions (latent floor)",
                group="pipeline", example="--config results/default/params.yaml"),
    "score": Stage(_score, "FID, KID, mmd_inception and CMMD of one sample set",
                _sample_args, group="pipeline",
                example="--config results/default/params.yaml --model flow-pixel-learned --setting euler-2"),
    "generate": Stage(_generate, "draw images from a finished run's trained model (PNG grid and .npz)",
                _generate_args, writes_run=False, group="model",
                example="--run results/default --model flow-pixel-learned --setting euler-2 --seeds 0-63"),
    "tables": Stage(_tables, "paper-style tables (Markdown, CSV, LaTeX) and figures from the score files",
                group="pipeline", example="--config results/default/params.yaml"),
    "compare-runs": Stage(_compare_runs, "one ablation table across finished runs (results/<run> per arm)",
                _compare_args, writes_run=False, group="study",
                example="--study std_scale --runs results/ablation-reference results/ablation-std_scale_0.5"),
    "autoencoder-budget-point": Stage(_budget_point, "record a run's autoencoder floor at its step budget",
                _point_args, writes_run=False, group="internal"),
    "autoencoder-budget": Stage(_budget_table, "the autoencoder floor against training steps (table)",
                _budget_args, writes_run=False, group="study",
                example="--points results/ablations/autoencoder_budget/*.json"),
    "scaling": Stage(_scaling, "the scaling study's tables and figures from its finished runs",
                _scaling_args, writes_run=False, group="study",
                example="--runs results/default results/scaling-pixel-x2-s0 --out results/scaling"),
    "methods": Stage(_methods, "Gaussian baseline, OT-CFM and LeDiFlow side by side from finished runs",
                _methods_args, writes_run=False, group="study",
                example="--runs results/default results/otcfm-pixel-x1-s0 --out results/methods"),
    "scaling-cost": Stage(_scaling_cost, "estimate the scaling study's hours from the default run's job times",
                _scaling_cost_args, writes_run=False, group="study", example="--whole"),
    "dvc-yaml": Stage(_dvc_yaml, "regenerate dvc.yaml from the path table",
                _dvc_args, writes_run=False, group="internal"),
    "interpolate": Stage(_interpolate, "slerp between two images' z and run the learned flow (PNG strip)",
                group="pipeline", example="--config results/default/params.yaml"),
    "inpaint": Stage(_inpaint, "fill a masked region with the learned prior and flow (PNG + metrics)",
                group="pipeline", example="--config results/default/params.yaml"),
    "prior-report": Stage(_prior_report, "measure ||x0 - x1||^2 of the couplings and draw prior samples",
                _space_arg, group="pipeline", example="--config results/default/params.yaml --space pixel"),
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (where it has one), and the example kept on its own line."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, [], False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


GROUP_TITLES = {"pipeline": "pipeline stages (each Snakemake rule calls one)",
                "model": "using a trained model",
                "study": "study tools (tables across finished runs)"}


def _epilog(stages: dict[str, Stage]) -> str:
    """The stages by group; internal helpers are left out of the listing (they still run)."""
    lines = []
    for group, title in GROUP_TITLES.items():
        lines.append(f"{title}:")
        lines += [f"  {name:<26}{stage.help}" for name, stage in stages.items() if stage.group == group]
        lines.append("")
    return "\n".join(lines) + "`lediflow STAGE --help` shows a stage's options, defaults and an example."


def build_parser(stages: dict[str, Stage] = STAGES) -> argparse.ArgumentParser:
    from lediflow import __version__

    parser = argparse.ArgumentParser(prog="lediflow", description=__doc__.splitlines()[0], epilog=_epilog(stages),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lediflow {__version__}")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, stage in stages.items():
        # no help= here: argparse would list every stage flat; the epilog lists them by group, internal ones not
        example = f"example:\n  lediflow {name} {stage.example}" if stage.example else None
        sub_parser = sub.add_parser(name, description=stage.help, epilog=example, formatter_class=_HelpFormatter)
        sub_parser.add_argument("--config", action="append", default=[], metavar="FILE",
                                help="YAML config; repeat to overlay several (later wins); without it, "
                                     "./params.yaml where it exists")
        sub_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                                help="override one key, e.g. --set data.resolution=64")
        stage.add_args(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stage = STAGES[args.stage]
    try:
        # no --config: ./params.yaml where there is one, as snakemake and dvc read it (else the schema's defaults)
        configs = args.config or (["params.yaml"] if Path("params.yaml").is_file() else [])
        params = load_params(configs, args.sets)
        if stage.writes_run:
            from lediflow.runlock import refuse_if_changed

            refuse_if_changed(params, f"lediflow {args.stage}")
        stage.run(params, args)
    except LediflowError as exc:
        print(f"lediflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lediflow: interrupted; no partial artifact was kept", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        # the machine, not lediflow: a read-only folder, a full disk, a missing permission (exit 74, EX_IOERR)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"lediflow: error: cannot use{where}: {exc.strerror}; {ENVIRONMENT_ERRNOS[exc.errno]}", file=sys.stderr)
        return 74
    except Exception as exc:  # a defect, not a user error: one line here, the traceback on request
        if os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
            traceback.print_exc()
        first = (str(exc).splitlines() or [""])[0][:200]
        print(f"lediflow: internal error in {args.stage}: {type(exc).__name__}: {first} (rerun with {DEBUG_ENV}=1 "
              "for the traceback and report it)", file=sys.stderr)
        return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
