"""Job count and summed job seconds of finished runs, per rule, from Snakemake's benchmark files.

Two runs of the same jobs (e.g. the scaling study's seed-1 arm made cold and its seed-2 arm made under
`lediflow warm --`, on one machine) side by side: per rule the jobs and the summed wall seconds of each run, and
the second over the first. A benchmark file holds the last invocation of its job only, so a training job that a
session's end cut and a later one resumed (its training record's `resumed_from` > 0) is counted as "resumed"
and left out of the sums: its file times the second part alone.

    python benchmarks/run_jobs.py results/scaling-latent-x1-s1 results/scaling-latent-x1-s2
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

# benchmark file stem -> the model whose training record says whether the job was resumed
TRAIN_RULES = {"train_flow": "flow", "train_prior": "prior", "train_latent_sampler": "latent_sampler",
               "train_autoencoder": "autoencoder"}


def _rule(stem: str) -> str:
    """`sample-flow-pixel-learned-euler-1` -> `sample`: the rule is the stem up to its first '-'."""
    return stem.split("-", 1)[0]


def _resumed(run: Path, stem: str) -> bool:
    rule = _rule(stem)
    if rule not in TRAIN_RULES:
        return False
    model = TRAIN_RULES[rule] + ("-" + stem.split("-", 1)[1] if "-" in stem else "")
    record = run / "training" / f"{model}.json"
    return record.is_file() and int(json.loads(record.read_text()).get("resumed_from", 0) or 0) > 0


def jobs(run: Path) -> dict[str, dict[str, float]]:
    """rule -> {'jobs': n, 'seconds': summed wall seconds, 'resumed': n left out}."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "resumed": 0})
    for path in sorted((run / "benchmarks").glob("*.tsv")):
        with path.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        entry = out[_rule(path.stem)]
        entry["jobs"] += 1
        if _resumed(run, path.stem):
            entry["resumed"] += 1
        elif rows:
            entry["seconds"] += float(rows[-1]["s"])
    return dict(out)


def table(first: Path, second: Path) -> list[dict]:
    """Per rule of either run, and a total over the rules neither run resumed: jobs and seconds of each, the
    ratio second / first."""
    a, b = jobs(first), jobs(second)
    rows = []
    for rule in sorted(set(a) | set(b)):
        none = {"jobs": 0, "seconds": 0.0, "resumed": 0}
        x, y = a.get(rule, none), b.get(rule, none)
        whole = not x["resumed"] and not y["resumed"]
        rows.append({"rule": rule, "jobs": f"{x['jobs']:.0f} / {y['jobs']:.0f}",
                     "first_s": x["seconds"] if whole else math.nan, "second_s": y["seconds"] if whole else math.nan,
                     "ratio": y["seconds"] / x["seconds"] if whole and x["seconds"] else math.nan,
                     "note": "" if whole else "resumed: left out"})
    kept = [r for r in rows if not math.isnan(r["first_s"])]
    first_s, second_s = sum(r["first_s"] for r in kept), sum(r["second_s"] for r in kept)
    rows.append({"rule": "total (rules not resumed)",
                 "jobs": f"{sum(a[r]['jobs'] for r in a):.0f} / {sum(b[r]['jobs'] for r in b):.0f}",
                 "first_s": first_s, "second_s": second_s,
                 "ratio": second_s / first_s if first_s else math.nan, "note": ""})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a finished run folder (e.g. the cold one)")
    parser.add_argument("second", type=Path, help="another finished run of the same jobs (e.g. the warm one)")
    args = parser.parse_args()
    print(f"| rule | jobs | {args.first.name} s | {args.second.name} s | ratio | |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in table(args.first, args.second):
        seconds = f"{r['first_s']:.0f} | {r['second_s']:.0f} | {r['ratio']:.3f}"
        print(f"| {r['rule']} | {r['jobs']} | {seconds} | {r['note']} |")


if __name__ == "__main__":
    main()
