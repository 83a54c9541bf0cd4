"""`lediflow <stage> --config FILE [--config FILE ...] [--set key.path=value ...]`.

Every Snakemake rule calls one of these stages. Config files are merged in
order over the schema defaults (as Snakemake merges --configfile), then the
--set overrides; the result is validated before any compute.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from pathlib import Path

from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError
from lediflow.cli.registry import STAGES, Stage
from lediflow.cli.warm import WARM_ENV

DEBUG_ENV = "LEDIFLOW_TRACEBACK"
# errors of the machine a user can act on, and what to do about each
ENVIRONMENT_ERRNOS = {errno.EACCES: "give this user write access there or choose another run.results_dir",
                      errno.EPERM: "give this user write access there or choose another run.results_dir",
                      errno.EROFS: "the file system is read-only; choose another run.results_dir",
                      errno.ENOSPC: "the disk is full; free space (old runs' samples, ~/.cache) and run again",
                      errno.EDQUOT: "the disk quota is used up; free space and run again"}


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
    lines += ["running many stages:",
              f"  {'warm -- COMMAND':<26}run COMMAND (snakemake, dvc repro) with every lediflow stage forked from",
              f"  {'':<26}one process that has imported torch and the stages once (docs/gpu.md)", ""]
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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["warm"]:
        from lediflow.cli.warm.client import wrap

        return wrap(argv[1:])
    if os.environ.get(WARM_ENV):
        from lediflow.cli.warm.client import forward

        code = forward(os.environ[WARM_ENV], argv)
        if code is not None:
            return code
    args = build_parser().parse_args(argv)
    stage = STAGES[args.stage]
    try:
        # no --config: ./params.yaml where there is one, as snakemake and dvc read it (else the schema's defaults)
        configs = args.config or (["params.yaml"] if Path("params.yaml").is_file() else [])
        params = load_params(configs, args.sets)
        if stage.writes_run:
            from lediflow.pipeline.runlock import refuse_if_changed

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

