"""The handlers of the study tools: tables across finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from lediflow.core.errors import LediflowError
from lediflow.pipeline.config import Params, load_params


def run_folders(values: list[str], flag: str, example: str = "results/default") -> list[Path]:
    """The finished runs a study tool reads; a folder without params.yaml is refused before any table is made."""
    for value in values:
        if not (Path(value) / "params.yaml").is_file():
            raise LediflowError(f"{flag} {value}: not a finished run's folder (it holds no params.yaml); "
                                f"pass run folders, e.g. {flag} {example}")
    return [Path(value) for value in values]


def compare_runs(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies.ablations import write_study

    wide = write_study(args.study, run_folders(args.runs, "--runs"), args.out, args.cells)
    print(f"{args.study}: {len(wide)} arms -> {args.out}/{args.study}.md")


def compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="table name, e.g. std_scale")
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="run folders (results/<run>), one per arm")
    parser.add_argument("--out", default="results/ablations", help="folder for <study>.md/.csv/.tex")
    parser.add_argument("--cells", choices=["tables", "prior", "scores"], default="tables",
                        help="compare every cell of the arms (tables), only the learned prior's zero-step cells "
                             "(prior), or every cell with each arm's flow training compute and best FID (scores)")


def budget_point(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies.autoencoder_budget import write_point

    row = write_point(params, args.out)
    print(f"autoencoder at {row['steps']} steps: floor FID {row['floor_fid']:.2f} = {row['ratio']:.2f}x the data "
          f"floor -> {args.out}")


def point_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="where to write this budget's point (JSON)")


def budget_table(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies.autoencoder_budget import write_table

    frame = write_table(args.points, args.out)
    print(f"autoencoder_budget: {len(frame)} budgets -> {args.out}/autoencoder_budget.md")


def budget_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", nargs="+", required=True, metavar="FILE", help="budget points, one per budget")
    parser.add_argument("--out", default="results/ablations", help="folder for autoencoder_budget.md/.csv/.tex")


def scaling(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies.scaling_summary import write

    runs = run_folders(args.runs, "--runs")
    method_runs = run_folders(args.method_runs, "--method-runs", "results/otcfm-latent-x1-s0")
    summary = write(runs, Path(args.out), method_runs)
    print(f"scaling: {len(summary)} (space, scale) points from {len(args.runs)} runs -> {args.out}/scaling.md")


def scaling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="the study's run folders")
    parser.add_argument("--out", default="results/scaling", help="folder for scaling.md/.csv/.tex and figures")
    parser.add_argument("--method-runs", nargs="*", default=[], metavar="DIR",
                        help="runs that add OT-CFM to an arm of the same scale and seed (workflow/methods.smk's, "
                             "e.g. results/otcfm-latent-x1-s0): the three-method table scaling_methods.md")


def methods(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies.methods import write

    compared = write(run_folders(args.runs, "--runs"), Path(args.out))
    print(f"methods: {len(compared)} comparisons from {len(args.runs)} runs -> {args.out}/methods.md")


def methods_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                        help="finished runs holding the methods, e.g. results/default results/otcfm-pixel-x1-s0")
    parser.add_argument("--out", default="results/methods", help="folder for methods.md/.csv/.tex and the figure")


def seed_quality(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies import seed_quality

    spec = seed_quality.load_spec(args.study)
    frame, missing = seed_quality.write(spec)
    made = "every run made" if not missing else f"not yet made: {', '.join(missing)}"
    print(f"seed-quality: {frame['space'].nunique()} spaces ({made}) -> {spec['out']}/seeds.md")


def seed_quality_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default="configs/seeds/study.yaml",
                        help="the study file: base configs, runs table, seed-0 run and the re-made arms")


def ot_pairing(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies.ot_pairing import write

    spaces = args.space or params["flow"]["spaces"]
    write(params, spaces, args.batches, Path(args.out))
    print(f"ot-pairing: {args.batches} batches in {', '.join(spaces)} -> {args.out}/ot_pairing.md")


def ot_pairing_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", nargs="+", choices=["pixel", "latent"], default=None,
                        help="spaces to measure (default: the run's flow.spaces)")
    parser.add_argument("--batches", type=int, default=20, help="training batches to average over")
    parser.add_argument("--out", default="results/methods", help="folder for ot_pairing.md/.csv")


def scaling_cost(params: Params, args: argparse.Namespace) -> None:
    from lediflow.studies import scaling, scaling_cost
    from lediflow.pipeline.paths import run_dir

    spec = scaling.load_spec(args.study)
    default_run = Path(args.default_run) if args.default_run else run_dir(load_params(spec["configs"]))
    frame = scaling_cost.write(spec, default_run, Path(args.out), args.alone, args.fresh_clone, args.whole)
    name = scaling_cost.table_name(args.alone, args.whole)
    arms = "in the study" if args.whole else "to run"
    print(f"scaling-cost: {len(frame)} arms {arms}, about {frame['hours'].sum():.1f} hours on this machine "
          f"(training {frame['train_s'].sum() / 3600:.1f}), estimated from {default_run} -> {args.out}/{name}.md")


def scaling_cost_args(parser: argparse.ArgumentParser) -> None:
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


def seed_checkpoints(params: Params, args: argparse.Namespace) -> None:
    from lediflow.core.errors import LediflowError
    from lediflow.studies import scaling

    for item in args.continue_from:
        space, sep, source = item.partition("=")
        if not sep or space not in ("pixel", "latent"):
            raise LediflowError(f"--continue {item!r}: write SPACE=RUN_DIR, e.g. pixel=results/scaling-pixel-x1-s1")
        copied = scaling.seed_checkpoints(Path(source), Path(args.run), space)
        if copied:
            print(f"{Path(args.run).name}: continues {', '.join(copied)} from {Path(source).name}")


def seed_checkpoints_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR", help="the scaling arm's run folder")
    parser.add_argument("--continue", dest="continue_from", action="append", default=[], metavar="SPACE=DIR",
                        help="continue SPACE's trainings from the smaller arm of the same seed in DIR")
