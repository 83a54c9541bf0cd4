"""`lediflow <stage> --config FILE [--config FILE ...] [--set key.path=value ...]`.

Every Snakemake rule calls one of these stages. Config files are merged in
order over the schema defaults (as Snakemake merges --configfile), then the
--set overrides; the result is validated before any compute.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from lediflow.config import Params, load_params
from lediflow.errors import LediflowError

StageFn = Callable[[Params, argparse.Namespace], None]


def _prepare_data(params: Params, args: argparse.Namespace) -> None:
    from lediflow.data import prepare

    manifest = prepare(params)
    counts = ", ".join(f"{k}={v}" for k, v in manifest["counts"].items())
    print(f"prepared {params['data']['source']}: {counts}, shape {manifest['shape']}")


def _show_params(params: Params, args: argparse.Namespace) -> None:
    print(json.dumps(params, indent=2))


# Stage registry: name -> (function, help). The CLI's choices come from it.
STAGES: dict[str, tuple[StageFn, str]] = {
    "show-params": (_show_params, "print the validated params with all defaults filled"),
    "prepare-data": (_prepare_data, "write results/<run>/data/{train,test}.npy and manifest.json"),
}


def build_parser(stages: dict[str, tuple[StageFn, str]] = STAGES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lediflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_, help_text) in stages.items():
        stage = sub.add_parser(name, help=help_text)
        stage.add_argument("--config", action="append", default=[], metavar="FILE",
                           help="YAML config; repeat to overlay several (later wins)")
        stage.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                           help="override one key, e.g. --set data.resolution=64")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = load_params(args.config, args.sets)
        STAGES[args.stage][0](params, args)
    except LediflowError as exc:
        print(f"lediflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lediflow: interrupted; no partial artifact was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
