#!/usr/bin/env bash
# The script the second GPU slot ran (results/gpu/README.md, "Second GPU slot"): it trains the networks of
# scaling-study arms on a GPU machine that has torch but no Snakemake (the bare CUDA image), all arms at once,
# each arm's jobs in the order and with the CLI calls its Snakefile uses, then packs the finished arms' models
# (weights, arch, manifests, logs; no checkpoints) to bring back for sampling and scoring on the study's machine.
# It is kept here as the record of that measurement, not as a pipeline stage: no arm finished inside the GPU slot
# (the autoencoder trains at ~25 steps/s per arm there), so the half that would import the models was not written.
#   bash gpu_train_arms.sh OUT LIMIT_S MAX_MIB ARM [ARM...]    # run from the repository root
# Each results/<ARM>/params.yaml must exist (resolved, as Snakemake's onstart writes it). Arms are packed in
# the order given while their models fit MAX_MIB; an arm not finished within LIMIT_S is left out.
# Writes OUT/summary.md, OUT/card.txt, OUT/errors.txt and OUT/arms.tar.part-*.
set -u
out=$1 limit=$2 max_mib=$3
shift 3
mkdir -p "$out"
L="python3 -m lediflow.cli"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} PYTHONUNBUFFERED=1

# One arm: the training jobs of every space it trains, the two chains of a space side by side (Snakemake runs
# them so too): prior -> latent sampler -> learned flow, and the Gaussian flow.
train_arm() {
    local arm=$1 cfg=results/$1/params.yaml space
    mkdir -p "results/$arm/logs"
    run() { local name=$1; shift; $L "$@" --config "$cfg" > "results/$arm/logs/$name.log" 2>&1 || { echo "$arm: $name failed"; return 1; }; }
    run prepare_data prepare-data || return 1
    for space in $(python3 -c "import yaml, sys; print(' '.join(yaml.safe_load(open(sys.argv[1]))['flow']['spaces']))" "$cfg"); do
        (
            if [ "$space" = latent ]; then
                run train_autoencoder train-autoencoder && run encode_latents encode-latents || exit 1
            fi
            run "train_flow-$space-gaussian" train-flow --space "$space" --prior gaussian &
            local baseline=$!
            run "train_prior-$space" train-prior --space "$space" \
                && run "train_latent_sampler-$space" train-latent-sampler --space "$space" \
                && run "train_flow-$space-learned" train-flow --space "$space" --prior learned
            local rc=$?
            wait $baseline || rc=1
            exit $rc
        ) &
    done
    wait_all() { local rc=0; for job in $(jobs -p); do wait "$job" || rc=1; done; return $rc; }
    wait_all && touch "results/$arm/.gpu-trained" && echo "$arm: trained"
}

start=$SECONDS
for arm in "$@"; do
    timeout "$limit" bash -c "$(declare -f train_arm); L='$L'; train_arm $arm" &
done
wait
for arm in "$@"; do pkill -f -- "--config results/$arm/params.yaml"; done  # what a stopped arm left running
python3 -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)" > "$out/card.txt" 2>&1

# Pack: finished arms, in the order given, while they fit.
files=() total=0
{
    echo "# GPU training of scaling arms: $(cat "$out/card.txt"), limit ${limit} s, $((SECONDS - start)) s"
    echo
    echo "| arm | finished | MiB | packed |"
    echo "| --- | --- | --- | --- |"
    for arm in "$@"; do
        list=$(cd results && find "$arm" -path '*/checkpoints' -prune -o -type f \
            \( -path '*/models/*' -o -path '*/logs/*' -o -name norm.json -o -path '*/latents/manifest.json' \
               -o -name .gpu-trained -o -path '*/data/manifest.json' \) -print)
        mib=$(cd results && echo "$list" | xargs -r stat -c %s 2>/dev/null | awk '{s += $1} END {print int(s / 1048576) + 1}')
        done_=no; [ -f "results/$arm/.gpu-trained" ] && done_=yes
        packed=no
        if [ "$done_" = yes ] && [ $((total + mib)) -le "$max_mib" ]; then
            files+=($list) total=$((total + mib)) packed=yes
        fi
        echo "| $arm | $done_ | $mib | $packed |"
        for f in results/$arm/models/*/manifest.json; do
            [ -f "$f" ] && python3 -c "import json, sys; m = json.load(open(sys.argv[1])); t = m.get('training', {}); print('   ', sys.argv[1], t.get('step'), round(t.get('train_seconds', 0)), t.get('device'))" "$f"
        done
    done
} > "$out/summary.md"
[ ${#files[@]} -gt 0 ] && (cd results && tar cf - "${files[@]}") | split -b 15M - "$out/arms.tar.part-"
for arm in "$@"; do cat "results/$arm"/logs/*.log; done 2>/dev/null | grep -iE "error|Traceback" | head -40 > "$out/errors.txt"
cat "$out/summary.md"
