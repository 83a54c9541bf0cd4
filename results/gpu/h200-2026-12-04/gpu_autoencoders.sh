#!/usr/bin/env bash
# Third GPU slot: train the autoencoders of the scaling study's last latent arms on the GPU, all at once,
# and bring back each arm's models/autoencoder (the finished model if done, else the newest checkpoint) so the
# CPU pipeline uses or resumes them. Every other network of the arms trains, samples and scores on the CPU.
#   bash gpu_autoencoders.sh OUT WAIT_S start ARM...    # install, copy the data, start each arm's prepare-data + train-autoencoder
#                                                       # (setsid: they outlive this call while the machine stays warm)
#   bash gpu_autoencoders.sh OUT WAIT_S collect ARM...  # a later call on the same machine: wait on, then pack again
# Each call waits until every arm has finished or WAIT_S has passed, then packs OUT/arms.tar.part-* (15 MB parts),
# OUT/summary.md and the logs. results/<arm>/params.yaml must exist (resolved here first); x8 s0's
# models/autoencoder/checkpoints travel in the call's carry (the x4 s0 autoencoder it continues). SKIP_INSTALL=1
# skips the wheel install (a dry run on a CPU machine: every step but the GPU works there, tried with 40 steps).
# Run from the repository root, as .gpu/run.sh with the wheels in .whl/ and Fashion-MNIST's .gz files in .gpu/fm/
# (results/gpu/README.md, "Third GPU slot").
set -u
out=$1 wait_s=$2 mode=$3
shift 3
t0=$SECONDS
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-5} PYTHONPATH=/tmp/site:$PWD
L="python3 -m lediflow.cli"
if [ "$mode" = start ]; then
    [ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    mkdir -p /usr/share/datasets/fashion-mnist && cp .gpu/fm/*.gz /usr/share/datasets/fashion-mnist/
    { nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nproc; } > /tmp/card.txt 2>&1
    for arm in "$@"; do
        mkdir -p "results/$arm/logs"
        rm -f "results/$arm/.gpu-rc"
        setsid bash -c "$L prepare-data --config results/$arm/params.yaml > results/$arm/logs/gpu_prepare_data.log 2>&1 \
            && $L train-autoencoder --config results/$arm/params.yaml > results/$arm/logs/gpu_train_autoencoder.log 2>&1; \
            echo \$? > results/$arm/.gpu-rc" < /dev/null > /dev/null 2>&1 &
    done
fi

progress() { tr '\r' '\n' < "results/$1/logs/gpu_train_autoencoder.log" 2>/dev/null | grep -a 'it/s' | tail -n 1; }
while [ $((SECONDS - t0)) -lt "$wait_s" ]; do
    left=0
    for arm in "$@"; do [ -f "results/$arm/.gpu-rc" ] || left=$((left + 1)); done
    [ "$left" = 0 ] && break
    sleep 10
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv > /tmp/gpu_util.txt 2>&1

# Pack: per arm, the model folder without its checkpoints, the newest checkpoint (copied first: the trainer may be
# pruning while we read), the data manifest (its sha256 must match the CPU's) and the logs.
pack=/tmp/pack
rm -rf "$pack" && mkdir -p "$pack"
{
    echo "# GPU autoencoders: $(tr '\n' ' ' < /tmp/card.txt), mode $mode, $((SECONDS - t0)) s into this call"
    echo
    echo "| arm | rc | newest checkpoint | progress |"
    echo "| --- | --- | --- | --- |"
    for arm in "$@"; do
        src=results/$arm/models/autoencoder dst=$pack/$arm/models/autoencoder
        mkdir -p "$dst/checkpoints" "$pack/$arm/logs" "$pack/$arm/data"
        (cd "$src" 2>/dev/null && tar cf - --exclude=./checkpoints .) | (cd "$dst" && tar xf -)
        newest=""
        for ck in $(ls -d "$src"/checkpoints/step_* 2>/dev/null | grep -v damaged | sort -r); do
            cp -r "$ck" "$dst/checkpoints/" 2>/dev/null && [ -f "$dst/checkpoints/$(basename "$ck")/state.json" ] \
                && { newest=$(basename "$ck"); break; }
            rm -rf "$dst/checkpoints/$(basename "$ck")"
        done
        cp "results/$arm/data/manifest.json" "$pack/$arm/data/" 2>/dev/null
        cp results/$arm/logs/gpu_*.log "$pack/$arm/logs/" 2>/dev/null
        echo "| $arm | $(cat "results/$arm/.gpu-rc" 2>/dev/null || echo running) | $newest | $(progress "$arm") |"
    done
    echo; echo '```'; cat /tmp/gpu_util.txt
    for arm in "$@"; do echo "== $arm"; tail -c 1500 "results/$arm/logs/gpu_train_autoencoder.log" 2>/dev/null | tr '\r' '\n' | tail -n 5; done
    echo '```'
} > "$out/summary.md"
(cd "$pack" && tar cf - .) | split -b 15M - "$out/arms.tar.part-"
cat "$out/summary.md"; ls -la "$out"
