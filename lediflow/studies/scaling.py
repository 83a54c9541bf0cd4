"""The scaling study: LeDiFlow's effect against training compute, with seeds.

Each arm is an ordinary run with `run.train_scale` (every network's optimiser steps multiplied together, the
baseline keeping its equal-compute share) and a `run.seed` (initialisation, data order and sampling noise);
the x1 seed-0 arm is the default run itself. Per run and space: both flows' best FID, the NFE and wall-clock
speedup at matched FID and the FID ratio at equal NFE (the definitions of lediflow.analysis.comparisons), and the
measured training compute. Per (space, scale) those are summarised over seeds: each seed's ratios first, then
mean +- std; an arm with one seed keeps its bootstrap interval over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from lediflow.pipeline.config import read_yaml
from lediflow.core.errors import LediflowError

SPACES = ("pixel", "latent")
# What each method's pipeline trains in a space (results/<run>/training/<model>.json); the autoencoder is
# shared by every method in latent space and counted on each side.
PRIOR_MODELS = {"gaussian": {"pixel": ["flow-pixel-gaussian"], "latent": ["autoencoder", "flow-latent-gaussian"]},
                "learned": {"pixel": ["prior-pixel", "latent_sampler-pixel", "flow-pixel-learned"],
                            "latent": ["autoencoder", "prior-latent", "latent_sampler-latent", "flow-latent-learned"]},
                "ot": {"pixel": ["flow-pixel-ot"], "latent": ["autoencoder", "flow-latent-ot"]}}
STEP_RATIOS = (1, 2, 4, 8)  # Euler step counts whose equal-NFE ratio the study reports one by one
BANDS = ("plus5pct", "plus10pct")  # the sensitivity targets of comparisons.speedup (BAND)
# metrics with an interval: value +- 95% over seeds, or one seed's bootstrap from the se of its log
RATIOS = ("best_ratio", "fid_ratio", "cost_ratio", "dopri5_ratio") + tuple(f"ratio_e{s}" for s in STEP_RATIOS)
# metrics the step grid may bound: their bound column says '>=', '<=' or '>' (not reached) where it does
BOUNDED = {"speedup_nfe": "speedup_bound", "speedup_wall_clock": "speedup_bound",
           **{f"speedup_nfe_{b}": f"speedup_nfe_{b}_bound" for b in BANDS},
           **{f"inverse_e{s}": f"inverse_e{s}_bound" for s in (1, 2, 4)}}
METRICS = ("baseline_best_fid", "ledi_best_fid") + RATIOS + tuple(BOUNDED)
PRIORS = ("gaussian", "learned")  # the two flows every arm trains; "ot" (OT-CFM) joins them where the study says


@dataclass(frozen=True)
class Arm:
    """One run of the study: the spaces it trains, at one scale and seed; `default` marks the default run."""

    name: str
    spaces: tuple[str, ...]
    scale: float
    seed: int
    default: bool = False
    # the trained autoencoder folder (save_pretrained) this arm loads instead of training its own: the study's
    # fixed_autoencoder, for the latent arms above its scale; None: the arm trains its own at its scale
    autoencoder: str | None = None
    # the flows it trains (flow.priors): the two of every arm, and OT-CFM beside them at the study's ot_cfm scales
    priors: tuple[str, ...] = PRIORS

    def overlay(self) -> dict:
        """The config overlay that makes this arm an ordinary run (none for the default run)."""
        out = {"run": {"name": self.name, "train_scale": self.scale, "seed": self.seed},
               "flow": {"spaces": list(self.spaces)}}
        if self.priors != PRIORS:
            out["flow"]["priors"] = list(self.priors)
        if self.autoencoder is not None:
            out["autoencoder"] = {"source": "pretrained", "pretrained": self.autoencoder}
        return out


def load_spec(path: str | Path) -> dict:
    """Read and check a scaling study file (configs/scaling/study.yaml); one-line errors name the fix."""
    if not Path(path).is_file():
        raise LediflowError(f"no scaling study file at {path}; pass `lediflow scaling-cost --study <file>` or "
                            "`snakemake -s workflow/scaling.smk --config study=<file>` "
                            "(see configs/scaling/study.yaml)")
    spec = read_yaml(path)
    for key in ("configs", "budget", "scales", "seeds", "out"):
        if key not in spec:
            raise LediflowError(f"scaling study {path} has no '{key}'; see configs/scaling/study.yaml")
    unknown = set(spec["scales"]) - set(SPACES)
    if unknown:
        raise LediflowError(f"scaling study {path}: unknown space {sorted(unknown)[0]}; use pixel or latent")
    for space, scales in spec["scales"].items():
        if 1 not in scales or any(s <= 0 for s in scales):
            raise LediflowError(f"scaling study {path}: scales.{space} must be positive and include 1 (the "
                                "default run)")
    if 0 not in spec["seeds"]:
        raise LediflowError(f"scaling study {path}: seeds must include 0 (the default run's seed)")
    for space, scale in spec.get("fixed_autoencoder", {}).items():
        if space != "latent" or scale not in spec["scales"].get("latent", []) or scale < 1:
            raise LediflowError(f"scaling study {path}: fixed_autoencoder.{space} must be latent, at one of "
                                "scales.latent and at least 1 (its seed-0 arm trains the autoencoder the larger "
                                "arms load; the default run, x1, always trains its own)")
    for space, scales in spec.get("ot_cfm", {}).items():
        if space not in SPACES or any(s not in spec["scales"].get(space, []) for s in scales):
            raise LediflowError(f"scaling study {path}: ot_cfm.{space} must name scales of scales.{space}")
    return spec


def seeded_scales(spec: dict, space: str) -> list[float]:
    """Scales that get every seed: those the study names, else x1 and the largest of the space."""
    named = spec.get("seeded_scales", {}).get(space)
    return sorted(set(named)) if named is not None else sorted({1, max(spec["scales"][space])})


def scale_label(scale: float) -> str:
    return f"x{scale:g}"


def autoencoder_folder(results_dir: str | Path, run: str) -> str:
    """Where a run's trained autoencoder is saved (the latents stage's save_pretrained folder)."""
    return str(Path(results_dir) / run / "models" / "autoencoder" / "vae")


def autoencoder_manifest(results_dir: str | Path, run: str) -> Path:
    """The manifest of a run's trained autoencoder: the file that says it exists (and what the larger arms wait for)."""
    return Path(autoencoder_folder(results_dir, run)).parent / "manifest.json"


def arms(spec: dict, default_name: str, results_dir: str | Path = "results") -> list[Arm]:
    """One run per (scale, seed) holding every space that needs it, or with `split_spaces` one run per (space,
    scale, seed) (each a shorter job: what fits one session of a machine that keeps no checkpoints between
    sessions); x1 seed 0 is the default run either way. With `fixed_autoencoder: {latent: <scale>}` the latent
    arms above that scale, every seed, load the autoencoder of the seed-0 arm at that scale: its floor has
    stopped improving there, and training it further would cost more than the networks the study scales. With
    `ot_cfm: {<space>: [<scale>, ...]}` the arms at those scales, every seed, train OT-CFM beside the two flows
    (flow.priors gaussian, learned, ot): one run, so its cells are timed back to back with theirs. The default
    run (x1 seed 0) stays as it is: its OT-CFM is a run of its own (the study's method_runs)."""
    split = bool(spec.get("split_spaces", False))
    wanted: dict[tuple[str, float, int], list[str]] = {}
    for space in SPACES:
        for scale in spec["scales"].get(space, []):
            seeds = spec["seeds"] if scale in seeded_scales(spec, space) else [0]
            for seed in seeds:
                default = scale == 1 and seed == 0
                key = (space if split and not default else "", float(scale), int(seed))
                wanted.setdefault(key, []).append(space)
    out = []
    for (space, scale, seed), spaces in sorted(wanted.items(), key=lambda item: item[0][1:] + item[0][:1]):
        if scale == 1 and seed == 0:
            out.append(Arm(default_name, tuple(spaces), scale, seed, default=True))
        else:
            prefix = f"scaling-{space}-" if space else "scaling-"
            ot = any(scale in spec.get("ot_cfm", {}).get(s, []) for s in spaces)
            out.append(Arm(f"{prefix}{scale_label(scale)}-s{seed}", tuple(spaces), scale, seed,
                           priors=PRIORS + ("ot",) if ot else PRIORS))
    fixed = spec.get("fixed_autoencoder", {}).get("latent")
    if fixed is None:
        return out
    source = autoencoder_source(out, fixed)
    folder = autoencoder_folder(results_dir, source.name)
    return [replace(arm, autoencoder=folder) if "latent" in arm.spaces and arm.scale > fixed else arm for arm in out]


def autoencoder_source(planned: list[Arm], scale: float) -> Arm:
    """The seed-0 latent arm at `scale`: the one whose autoencoder the larger latent arms load."""
    return next(arm for arm in planned if arm.seed == 0 and arm.scale == scale and "latent" in arm.spaces)


def fixed_autoencoder_arm(spec: dict, planned: list[Arm]) -> Arm | None:
    """The arm that trains the study's fixed autoencoder, or None when every latent arm trains its own."""
    fixed = spec.get("fixed_autoencoder", {}).get("latent")
    return None if fixed is None else autoencoder_source(planned, fixed)


# --- continuing the smaller arm's training ------------------------------------------------------------------

SPACE_MODELS = {"pixel": ("prior-pixel", "latent_sampler-pixel", "flow-pixel-gaussian", "flow-pixel-learned",
                          "flow-pixel-ot"),
                "latent": ("autoencoder", "prior-latent", "latent_sampler-latent", "flow-latent-gaussian",
                           "flow-latent-learned", "flow-latent-ot")}
# The networks whose inputs do not depend on the scale, so seed_checkpoints' copy is resumed by a larger arm (the
# latent ones learn from latents of a longer-trained autoencoder and start afresh, unless both arms load the same
# fixed autoencoder: see `continues`). A latent sampler or learned flow never continues: it learns from its
# arm's prior, which trained longer.
CONTINUES = frozenset({"autoencoder", "prior-pixel", "flow-pixel-gaussian", "flow-pixel-ot"})
# what learns from the latents and nothing else (OT-CFM's source is Gaussian noise, re-paired within the batch)
ON_LATENTS_ALONE = frozenset({"prior-latent", "flow-latent-gaussian", "flow-latent-ot"})


def trains(arm: Arm, space: str) -> list[str]:
    """The networks an arm trains in a space (SPACE_MODELS' names): the autoencoder unless it loads the fixed
    one, the prior and latent sampler for LeDiFlow, one flow per prior."""
    out = []
    for model in SPACE_MODELS[space]:
        kind = model.split("-")[0]
        if model == "autoencoder":
            keep = arm.autoencoder is None
        elif kind == "flow":
            keep = model.rsplit("-", 1)[-1] in arm.priors
        else:
            keep = "learned" in arm.priors
        if keep:
            out.append(model)
    return out


def latent_autoencoder(arm: Arm, results_dir: str | Path = "results") -> str:
    """The autoencoder folder an arm's latents come from: the fixed one it loads, or its own."""
    return arm.autoencoder or autoencoder_folder(results_dir, arm.name)


def continues(model: str, arm: Arm, source: Arm, results_dir: str | Path = "results") -> bool:
    """Whether `model` of `arm` resumes the smaller arm `source`'s checkpoint, as the trainer's fingerprint check
    will decide it (the same inputs: for the latent prior and baseline, latents of the same autoencoder; and a
    smaller arm that trains it at all: the default run trains no OT-CFM); for estimates only, the trainer is what
    enforces it."""
    space = next(s for s, models in SPACE_MODELS.items() if model in models)
    if model not in trains(source, space):
        return False
    if model in ON_LATENTS_ALONE:
        return latent_autoencoder(arm, results_dir) == latent_autoencoder(source, results_dir)
    return model in CONTINUES


def predecessors(planned: list[Arm]) -> dict[str, dict[str, str]]:
    """arm -> space -> the arm of the same seed with the largest smaller scale that trains that space. The default
    run continues nothing: `snakemake --cores all` makes it from scratch, before or without the study."""
    out: dict[str, dict[str, str]] = {}
    for arm in planned:
        if arm.default:
            continue
        for space in arm.spaces:
            smaller = [a for a in planned if a.seed == arm.seed and a.scale < arm.scale and space in a.spaces]
            if smaller:
                out.setdefault(arm.name, {})[space] = max(smaller, key=lambda a: a.scale).name
    return out


def tables_marker(run: Path) -> Path:
    """The file whose presence marks an arm finished: its run's tables (workflow/scaling.smk's arm output)."""
    return run / "tables" / "scores_long.csv"


def finished(run: Path) -> bool:
    """An arm with its tables is finished: workflow/scaling.smk never reruns it."""
    return tables_marker(run).is_file()


def has_checkpoint(run: Path, model: str) -> bool:
    """Whether a run still holds a checkpoint of `model` for a larger arm to continue (checkpoints are DVC's,
    not git's: a fresh clone has none, so a larger arm there trains afresh)."""
    return any((run / "models" / model / "checkpoints").glob("step_*"))


def seed_checkpoints(source_run: Path, run: Path, space: str) -> list[str]:
    """Copy the newest checkpoint of each of the space's networks from a smaller arm into this arm's empty
    checkpoint folders; returns the networks copied.

    The trainer resumes a checkpoint only when its fingerprint (data or latents, seed, every setting but the
    step budget, the weights of the networks it learns from) is this arm's, and deletes it otherwise: so the
    autoencoder, the pixel prior and the pixel baseline continue (their inputs do not depend on the scale) and
    the rest train afresh. With the learning rate constant after warm-up and the optimiser, EMA and random-number
    state in the checkpoint, the continued training is bitwise the longer one from scratch (tests/test_train.py), and
    its manifest's train_seconds counts both parts.
    """
    import shutil

    copied = []
    for model in SPACE_MODELS[space]:
        source = sorted((source_run / "models" / model / "checkpoints").glob("step_*"))
        target = run / "models" / model / "checkpoints"
        if not source or (target.is_dir() and any(target.iterdir())):
            continue  # nothing to continue from, or this arm has its own checkpoints already
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source[-1], target / source[-1].name)
        copied.append(model)
    return copied
