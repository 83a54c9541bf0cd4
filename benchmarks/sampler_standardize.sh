#!/usr/bin/env bash
# The latent sampler before and after standardising z, on the default run's own priors:
#   bash benchmarks/sampler_standardize.sh [WORK_DIR]      # about 15 min on the 2-core CPU
# before: results/default's latent samplers (fitted to raw z), scored by today's prior-report;
# after:  a sampler trained with latent_sampler.standardize true on the same priors (the pixel one is
#         results/ablation-prior_vgl_kl1e-3's, whose prior is bitwise results/default's), same report.
# Needs the default run's models (snakemake --cores all, or dvc pull). Writes only under WORK_DIR.
set -euo pipefail
work=${1:-/tmp/sampler_standardize}
mkdir -p "$work"
python - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
p = yaml.safe_load(open("results/default/params.yaml"))
for name, standardize in (("before", False), ("after", True)):
    p["run"].update(name=name, results_dir=work)
    p["latent_sampler"]["standardize"] = standardize
    yaml.safe_dump(p, open(f"{work}/{name}.yaml", "w"))
PY
for run in before after; do
    mkdir -p "$work/$run/models"
    for item in data latents; do ln -sfn "$PWD/results/default/$item" "$work/$run/$item"; done
    for model in autoencoder prior-pixel prior-latent; do
        ln -sfn "$PWD/results/default/models/$model" "$work/$run/models/$model"
    done
done
for space in pixel latent; do ln -sfn "$PWD/results/default/models/latent_sampler-$space" "$work/before/models/latent_sampler-$space"; done
ln -sfn "$PWD/results/ablation-prior_vgl_kl1e-3/models/latent_sampler-pixel" "$work/after/models/latent_sampler-pixel"
lediflow train-latent-sampler --config "$work/after.yaml" --space latent > "$work/train_after_latent.log" 2>&1
for run in before after; do
    for space in pixel latent; do
        echo "$run $space: $(lediflow prior-report --config "$work/$run.yaml" --space $space 2>/dev/null | tail -n 1)"
        echo "  final FM loss: $(tail -n 1 "$work/$run/models/latent_sampler-$space/metrics.jsonl")"
    done
done
