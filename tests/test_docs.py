"""The README and docs: they speak of the repository only, build, and carry the committed study's numbers."""

import math
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
# a reader has no issue tracker, no log of working periods and no machine loans: none of them may be cited
HISTORY = re.compile(r"\b(issue|session)s? #?[0-9]+|\blease[sd]?\b|device\stime", re.IGNORECASE)
WRAPPED = re.compile(r"\b(issue|session)s?[ \t]*\n\s*#?[0-9]+", re.IGNORECASE)  # the same, split by a line break


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


def test_tracked_files_cite_no_issue_numbers_working_periods_or_machine_loans():
    hits = []
    for name in _tracked():
        # training logs are machine output; the smoke report embeds a third-party script's comment
        if name.endswith((".jsonl", ".png", ".pdf", ".npy", ".safetensors")) or name == "results/smoke/report.html":
            continue
        path = REPO / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [f"{name}:{i}: {line.strip()[:80]}" for i, line in enumerate(text.splitlines(), 1)
                 if HISTORY.search(line)]
        hits += [f"{name}: {match.group(0)!r}" for match in WRAPPED.finditer(text)]
    assert not hits, "\n".join(hits[:20])


def test_the_readme_is_a_first_page_and_links_only_what_exists():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def _pm(value: float, half: float, digits: int) -> str:
    return f"{value:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")


def test_the_readme_headline_table_carries_the_committed_studys_numbers():
    summary = pd.read_csv(REPO / "results/scaling/scaling_summary.csv").set_index(["space", "scale"])
    text = (REPO / "README.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and "|" in line[2:]}
    columns = [("pixel", 1.0), ("pixel", 2.0), ("latent", 1.0), ("latent", 4.0), ("latent", 8.0)]
    for label, metric in (("best cell against best cell (FID ratio)", "best_ratio"),
                          ("FID ratio at equal measured cost", "cost_ratio"),
                          ("FID ratio at 8 Euler steps", "ratio_e8")):
        expected = [_pm(summary.loc[c, metric], summary.loc[c, f"{metric}_ci"], 2) for c in columns]
        assert rows[label] == expected, label
    best = [f"{summary.loc[c, 'baseline_best_fid']:.1f} / {summary.loc[c, 'ledi_best_fid']:.1f}" for c in columns]
    assert rows["best FID, baseline / LeDiFlow"] == best
    speed = [(">= " if summary.loc[c, "speedup_nfe_bound"] == ">=" else "")
             + _pm(summary.loc[c, "speedup_nfe"], summary.loc[c, "speedup_nfe_ci"], 1).replace(".0 ", " ")
             for c in columns]
    assert [s.replace(".0", "") for s in rows["NFE speedup at the baseline's best FID"]] == [
        s.replace(".0", "") for s in speed]


def test_the_docs_build_strictly(tmp_path: Path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")  # the theme: pip install -e '.[docs]'
    out = subprocess.run(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                         capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_inpainting_numbers_in_the_docs_are_the_committed_ones():
    import json

    metrics = json.loads((REPO / "results/default/extras/inpainting/metrics.json").read_text())
    page = (REPO / "docs/results/default.md").read_text()
    block = page[page.index("<!-- inpainting:"):]
    for key, row in (("mse_unknown_flow", "the flow from the prior's sample"),
                     ("mse_unknown_prior_mean", "the prior's mean alone"), ("mse_unknown_grey", "flat grey")):
        line = next(ln for ln in block.splitlines() if ln.startswith(f"| {row}"))
        assert line.rstrip(" |").endswith(f"{metrics[key]:.3f}"), (key, line)


# (model, setting, decimals) of every cell docs/results/default.md quotes as "FID ± 95% half-width"
DEFAULT_PAGE_CELLS = [
    ("flow-pixel-learned", "euler-1", 1), ("flow-pixel-learned", "euler-2", 1), ("flow-pixel-learned", "prior-x0", 1),
    ("flow-pixel-learned", "prior-mean", 1), ("flow-pixel-gaussian", "euler-8", 1),
    ("flow-pixel-gaussian", "euler-16", 1), ("flow-latent-learned", "euler-1", 1),
    ("flow-latent-learned", "euler-4", 1),
    ("flow-latent-learned", "prior-x0", 1), ("flow-latent-learned", "prior-mean", 1),
    ("flow-latent-gaussian", "euler-16", 1), ("flow-latent-gaussian", "dopri5-1e-05", 1),
    ("flow-latent-gaussian", "midpoint-4", 1), ("", "data_floor", 2), ("", "autoencoder_floor", 2),
]


@pytest.mark.parametrize("model, setting, decimals", DEFAULT_PAGE_CELLS)
def test_the_default_runs_page_quotes_the_committed_scores(model: str, setting: str, decimals: int):
    import json

    from lediflow.analysis.tables import Z95

    score = json.loads((REPO / "results/default/scores" / model / f"{setting}.json").read_text())
    quoted = f"{score['fid']:.{decimals}f} ± {Z95 * score['fid_se']:.{decimals}f}"
    assert quoted in (REPO / "docs/results/default.md").read_text(), quoted


# (space, scale, summary column, decimals) of every "value ± 95% half-width" the scaling page quotes
SCALING_PAGE_NUMBERS = (
    [(space, scale, metric, 2) for space, scale in (("pixel", 1.0), ("pixel", 2.0), ("latent", 1.0), ("latent", 2.0),
                                                    ("latent", 4.0), ("latent", 8.0))
     for metric in ("best_ratio", "fid_ratio", "dopri5_ratio")]
    + [(space, scale, metric, 1) for space, scale in (("pixel", 1.0), ("pixel", 2.0), ("latent", 1.0),
                                                      ("latent", 2.0), ("latent", 4.0), ("latent", 8.0))
       for metric in ("baseline_best_fid", "ledi_best_fid")]
    + [("pixel", 1.0, "cost_ratio", 2), ("pixel", 2.0, "cost_ratio", 2), ("latent", 1.0, "cost_ratio", 2),
       ("latent", 4.0, "cost_ratio", 2), ("pixel", 1.0, "ratio_e8", 2), ("pixel", 2.0, "ratio_e8", 2)]
)


def test_the_scaling_page_quotes_the_committed_summary():
    """Every interval the scaling page's verdict and tables quote is the committed study summary's, so a re-made
    study cannot leave the prose behind (line breaks inside a number are read as spaces)."""
    summary = pd.read_csv(REPO / "results/scaling/scaling_summary.csv").set_index(["space", "scale"])
    page = " ".join((REPO / "docs/results/scaling.md").read_text().split())
    missing = []
    for space, scale, metric, digits in SCALING_PAGE_NUMBERS:
        value, half = summary.loc[(space, scale), metric], summary.loc[(space, scale), f"{metric}_ci"]
        quoted = f"{value:.{digits}f} ± {half:.{digits}f}"
        if quoted not in page:
            missing.append(f"{space} x{scale:g} {metric}: {quoted}")
    assert not missing, missing


# (space, method, against, column) of every comparison the methods page quotes from results/methods/methods.csv
_LEDI, _OT, _GAUSS = "LeDiFlow (learned prior)", "OT-CFM (Gaussian, minibatch OT)", "FM baseline (Gaussian)"
METHODS_PAGE_NUMBERS = [
    ("pixel", _OT, _GAUSS, "FID ratio, Euler 1"), ("pixel", _OT, _GAUSS, "FID ratio, Euler 2"),
    ("pixel", _OT, _GAUSS, "FID ratio, Euler 8"), ("pixel", _OT, _GAUSS, "best / best"),
    ("pixel", _LEDI, _OT, "FID ratio, Euler 1"), ("pixel", _LEDI, _OT, "FID ratio, Euler 2"),
    ("pixel", _LEDI, _OT, "FID ratio, Euler 8"), ("pixel", _LEDI, _OT, "best / best"),
    ("pixel", _LEDI, _GAUSS, "best / best"),
    ("latent", _OT, _GAUSS, "FID ratio, Euler 1"), ("latent", _OT, _GAUSS, "FID ratio, Euler 2"),
    ("latent", _OT, _GAUSS, "FID ratio, Euler 8"), ("latent", _OT, _GAUSS, "best / best"),
    ("latent", _LEDI, _OT, "FID ratio, Euler 1"), ("latent", _LEDI, _OT, "FID ratio, Euler 2"),
    ("latent", _LEDI, _OT, "FID ratio, Euler 8"), ("latent", _LEDI, _OT, "best / best"),
]


def test_the_methods_page_quotes_the_committed_comparisons():
    table = pd.read_csv(REPO / "results/methods/methods.csv").set_index(["space", "method", "against"])
    page = " ".join((REPO / "docs/results/methods.md").read_text().split())
    missing = [f"{row}: {table.loc[row[:3], row[3]]}" for row in METHODS_PAGE_NUMBERS
               if str(table.loc[row[:3], row[3]]) not in page]
    assert not missing, missing


def test_the_ot_pairing_table_in_the_docs_is_the_committed_one():
    costs = pd.read_csv(REPO / "results/methods/ot_pairing.csv").set_index(["space", "source", "pairing"])
    page = (REPO / "docs/results/methods.md").read_text()
    block = page[page.index("<!-- ot-pairing:"):].split("\n\n")[0]
    rows = [ln for ln in block.splitlines() if ln.startswith("| ") and "|" in ln[2:]][2:]
    assert len(rows) == 6, block
    couplings = [("gaussian", "as drawn"), ("gaussian", "OT"), ("learned prior", "as drawn"),
                 ("learned prior", "OT"), ("LeDiFlow", "paired"), ("LeDiFlow", "OT")]
    for row, (source, pairing) in zip(rows, couplings):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1:3] == [f"{costs.loc[(space, source, pairing), 'cost']:.4f}" for space in ("pixel", "latent")]
        if pairing == "OT":
            assert cells[3] == " / ".join(f"{costs.loc[(space, source, pairing), 'kept']:.1%}"
                                          for space in ("pixel", "latent"))


# printed by `bash benchmarks/sampler_standardize.sh` (a 15-minute check the page names), not a committed file
ABLATION_PAGE_FROM_A_SCRIPT = {"8.21 ± 0.59", "8.29 ± 0.61", "13.65 ± 0.81", "13.51 ± 0.79"}


def test_every_interval_on_the_ablations_page_is_in_a_committed_result():
    """Each "FID ± 95%" the ablations page quotes is an ablation arm's score file (at 1 or 2 decimals), its prior
    report's sampler FID, an autoencoder-budget point, a committed table's cell, or a study's difference against
    its first arm."""
    import glob
    import json

    from lediflow.analysis.tables import Z95

    committed: set[str] = set()
    for path in glob.glob(str(REPO / "results/ablation*/**/*.json"), recursive=True):
        record = json.loads(Path(path).read_text())
        for key in ("fid", "sampler_fid"):
            if isinstance(record, dict) and key in record and f"{key}_se" in record:
                committed |= {f"{record[key]:.{d}f} ± {Z95 * record[f'{key}_se']:.{d}f}" for d in (1, 2)}
    budget = pd.read_csv(REPO / "results/ablations/autoencoder_budget.csv")
    committed |= {f"{row.floor_fid:.2f} ± {row.floor_fid_ci:.2f}" for row in budget.itertuples()}
    committed |= {f"{row.data_floor_fid:.2f} ± {row.data_floor_fid_ci:.2f}" for row in budget.itertuples()}
    for path in glob.glob(str(REPO / "results/ablations/*_long.csv")):  # differences against a study's first arm
        long = pd.read_csv(path)
        if "fid_minus_first" in long:
            committed |= {f"{row.fid_minus_first:.1f} ± {row.fid_minus_first_ci:.1f}" for row in long.itertuples()}
    page = " ".join((REPO / "docs/results/ablations.md").read_text().split())
    quoted = set(re.findall(r"\d+\.\d+ ± \d+\.\d+", page)) - ABLATION_PAGE_FROM_A_SCRIPT
    assert len(quoted) > 30  # the page's tables are read, not skipped
    assert not sorted(quoted - committed), sorted(quoted - committed)
