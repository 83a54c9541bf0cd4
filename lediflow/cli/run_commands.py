"""The handlers of the pipeline stages and of `generate`: each calls one stage and prints one line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lediflow.pipeline.config import Params
from lediflow.pipeline.paths import SHIPPED_WEIGHTS, check_cell


def prepare_data(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.data import prepare

    manifest = prepare(params)
    counts = ", ".join(f"{k}={v}" for k, v in manifest["counts"].items())
    print(f"prepared {params['data']['source']}: {counts}, shape {manifest['shape']}")


def show_params(params: Params, args: argparse.Namespace) -> None:
    print(json.dumps(params, indent=2))


def print_training(name: str, manifest: dict) -> None:
    if manifest:  # DDP ranks other than 0 return nothing
        info = manifest["training"]
        print(f"trained {name}: {info['step']} steps, {info['parameters']} parameters, "
              f"{info['train_seconds']:.1f} s, final loss {info['final_loss']:.4f}")


def space_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=["pixel", "latent"], default="pixel",
                        help="pixel (images) or latent (the autoencoder's latents)")


def train_prior(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.prior import train_prior

    print_training(f"prior ({args.space})", train_prior(params, args.space))


def train_latent_sampler(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.prior import train_latent_sampler

    print_training(f"latent sampler ({args.space})", train_latent_sampler(params, args.space))


def train_autoencoder(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.latents import train_autoencoder

    manifest = train_autoencoder(params)
    if "training" in manifest:
        print_training("autoencoder", manifest)
    elif manifest:
        print(f"using pretrained autoencoder {manifest['vae_dir']}")


def encode_latents(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.latents import encode_latents

    m = encode_latents(params)
    print(f"encoded latents {m['latent_shape']}: test MSE {m['test_mse']:.5f}, PSNR {m['test_psnr_db']:.2f} dB")


def flow_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=["pixel", "latent"], required=True, help="where the flow runs")
    parser.add_argument("--prior", choices=["gaussian", "learned", "ot"], required=True,
                        help="source distribution: gaussian (baseline), learned (LeDiFlow) or ot (OT-CFM: "
                             "Gaussian paired by minibatch optimal transport)")


def train_flow(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.flow import train_flow

    print_training(f"flow {args.space}/{args.prior}", train_flow(params, args.space, args.prior))


def prior_report(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.prior_report import prior_report

    report = prior_report(params, args.space)
    print(f"||x0 - x1||^2 per pixel: paired learned {report['mse_paired_x0']:.4f}, "
          f"gaussian {report['mse_gaussian_x0']:.4f} ({report['gaussian_over_paired']:.1f}x closer); latent sampler "
          f"FID {report['sampler_fid']:.2f} +- {1.96 * report['sampler_fid_se']:.2f} ({report['sampler_fid_images']} images)")


def sample_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="flow model folder name, e.g. flow-pixel-learned")
    parser.add_argument("--setting", required=True, help="solver cell: euler-8, midpoint-4, rk4-2, dopri5-1e-05 ...")


def sample(params: Params, args: argparse.Namespace) -> None:
    check_cell(params, args.model, args.setting)  # before torch is imported: a typo costs no seconds
    from lediflow.pipeline.stages.sample import sample_cell

    record = sample_cell(params, args.model, args.setting)
    print(f"sampled {record['num_samples']} images from {args.model} with {args.setting}: NFE {record['nfe']:g} "
          f"(+{record['latent_sampler_nfe']:g} latent sampler), {1000 * record['seconds_per_image']['total']:.2f} ms/image")


def time_cells(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.timing import time_cells

    result = time_cells(params, args.space)
    count = sum(len(cells) for cells in result["cells"].values())
    print(f"timed {count} cells of {args.space} space, {result['timing_repeats']} repeats of "
          f"{result['timing_images']} images each -> {args.space}.json")


def interpolate(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.extras import interpolate

    info = interpolate(params)
    print(f"interpolated {info['pairs']} pairs at {info['points']} points")


def inpaint(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.extras import inpaint

    m = inpaint(params)
    print(f"inpainted {m['images']} images ({m['mask']} mask): MSE on unknown pixels {m['mse_unknown_flow']:.4f} "
          f"(prior mean alone {m['mse_unknown_prior_mean']:.4f})")


def reference_features(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.score import reference_features

    info = reference_features(params)
    clip = "with CLIP" if isinstance(info["clip"], dict) else "CMMD " + info["clip"]
    print(f"reference features of {info['count']} {info['split']} images ({clip})")


def autoencoder_floor(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.score import autoencoder_floor

    r = autoencoder_floor(params)
    print(f"autoencoder floor: {r['num_samples']} reconstructed {r['split']} images, FID {r['fid']:.2f} +- "
          f"{1.96 * r['fid_se']:.2f}, PSNR {r['psnr_db']:.2f} dB")


def score(params: Params, args: argparse.Namespace) -> None:
    check_cell(params, args.model, args.setting)
    from lediflow.pipeline.stages.score import score

    r = score(params, args.model, args.setting)
    cmmd = f"{r['cmmd']:.4f}" if isinstance(r["cmmd"], float) else r["cmmd"]
    print(f"{args.model} {args.setting}: FID {r['fid']:.2f}, KID {r['kid_mean']:.4f} +- {r['kid_std']:.4f}, "
          f"mmd_inception {r['mmd_inception']:.3f}, CMMD {cmmd}")


def tables(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.report import make_tables

    counts = make_tables(params)
    print("tables: " + ", ".join(f"{name} ({rows} rows)" for name, rows in counts.items()))


def generate(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.generate import generate, locate_run, parse_seeds

    done = generate(locate_run(args.run), args.model, args.setting, parse_seeds(args.seeds), args.batch, args.device,
                    Path(args.out))
    print(f"generate: {done['images']} images at NFE {done['nfe']:g} -> {done['png']} and {done['npz']}")


def generate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", default=SHIPPED_WEIGHTS, metavar="DIR",
                        help="a finished run's folder, or exported weights (the default: the committed ones)")
    parser.add_argument("--model", default="flow-pixel-learned", help="flow-<space>-<prior> of that run")
    parser.add_argument("--setting", default="euler-2", help="solver cell: euler-4, midpoint-2, dopri5-1e-05, "
                                                             "prior-mean ...")
    parser.add_argument("--seeds", default="0-63", help="image indices: ranges and lists, e.g. 0-63 or 0,5,9")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (the images do not depend on it)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--out", default="generated", metavar="DIR", help="folder for the PNG grid and the .npz")


def dvc_yaml(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline import dvcgen

    dvcgen.write(args.output)
    print(f"wrote {args.output}")


def dvc_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="dvc.yaml", help="where to write the generated dvc.yaml")


def equal_nfe_grid(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.generate import equal_nfe_grid

    seeds = list(range(min(16, params["sample"]["grid_images"])))  # at most 16 columns: a row a reader can see
    made = equal_nfe_grid(params, args.space, list(params["sample"]["steps"]), seeds, params["run"]["device"])
    print(f"equal-NFE grid of {args.space} space: Euler {params['sample']['steps']}, {len(seeds)} seeds -> {made[0]}")


def export_weights(params: Params, args: argparse.Namespace) -> None:
    from lediflow.pipeline.stages.export import export_weights

    sizes = export_weights(params, args.flows, Path(args.out))
    total = sum(sizes.values()) / 2 ** 20
    print(f"export-weights: {', '.join(sizes)} ({total:.1f} MiB) -> {args.out}; "
          f"draw with `lediflow generate --run {args.out}`")


def export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flows", nargs="+", default=["flow-pixel-learned", "flow-pixel-gaussian"],
                        help="pixel-space flow models to export (a learned one brings its prior and latent sampler)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder to write (a run-shaped folder)")
