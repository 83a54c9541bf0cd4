#!/usr/bin/env bash
# The one prepared GPU check: the CUDA tests, the GPU benchmark and the default run end to end on the
# GPU, each under its own time limit, with everything it measured written to one folder.
#   bash benchmarks/gpu_check.sh                          # -> gpu_check/{card.txt,tests.log,benchmark.log,run.log,summary.md,results.tar.gz}
#   bash benchmarks/gpu_check.sh OUT RUN_LIMIT_S [EXTRA]  # another folder; the default run's limit (default 360 s);
#                                                         # EXTRA: one more params overlay (data.path, score.inception_weights)
#   GPU_TESTS_S=90 GPU_BENCH_S=120                        # the other two limits; 0 skips that step
#   GPU_WARM=0                                            # the default run cold (default: under `lediflow warm`,
#                                                         # every cell forked from one server; docs/gpu.md)
# Needs the project installed (`pip install -e .`, as in the README) and Fashion-MNIST where params.yaml finds it.
# The default run writes results/gpu-default/ (params.yaml with run.name gpu-default: nothing of results/default
# is touched); run it again and Snakemake resumes it. The default limits (570 s together) fit a 15-minute GPU slot
# with the machine's start and the transfers.
set -u
out=${1:-gpu_check}
run_limit=${2:-360}
extra=${3:-}
tests_limit=${GPU_TESTS_S:-90}
bench_limit=${GPU_BENCH_S:-120}
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to torch; run this on a machine with an NVIDIA GPU (and a CUDA build of torch)"
    exit 2
fi
mkdir -p "$out"
python -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')" > "$out/card.txt"
overlay="$out/gpu-default.yaml"
printf 'run: {name: gpu-default}\n' > "$overlay"

# One step under `timeout LIMIT`; LIMIT 0 skips it (exit "skipped").
timed() {
    local limit=$1 log=$2; shift 2
    if [ "$limit" = 0 ]; then echo "0 skipped"; return; fi
    local start=$SECONDS
    timeout "$limit" "$@" > "$log" 2>&1
    local rc=$?
    echo "$((SECONDS - start)) $rc"
}
read -r t_tests rc_tests < <(timed "$tests_limit" "$out/tests.log" python -m pytest -q -p no:cacheprovider tests/test_gpu.py)
read -r t_bench rc_bench < <(timed "$bench_limit" "$out/benchmark.log" python benchmarks/run.py --no-pipeline)
configs=(params.yaml "$overlay")
[ -n "$extra" ] && configs+=("$extra")
warm=()
[ "${GPU_WARM:-1}" != 0 ] && warm=(lediflow warm --)
trace="$(cd "$out" && pwd)/warm.trace"
read -r t_run rc_run < <(LEDIFLOW_WARM_TRACE="$trace" timed "$run_limit" "$out/run.log" "${warm[@]}" \
    snakemake --workflow-profile workflow/profiles/gpu --configfile "${configs[@]}")
# The run's tables, figures, scores and manifests (not the checkpoints or samples), to keep beside the summary.
[ -d results/gpu-default ] && tar czf "$out/results.tar.gz" --exclude='*/checkpoints' --exclude='*.npy' \
    --exclude='*.safetensors' --exclude='*.pt' results/gpu-default

last() { [ -f "$1" ] && tail -n 1 "$1"; }
{
    echo "# GPU check: $(cat "$out/card.txt")"
    echo
    echo "| step | limit s | seconds | exit | log |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| CUDA tests (tests/test_gpu.py) | $tests_limit | $t_tests | $rc_tests | tests.log: $(last "$out/tests.log") |"
    echo "| GPU benchmark (benchmarks/run.py --no-pipeline) | $bench_limit | $t_bench | $rc_bench | benchmark.log |"
    echo "| default run (${warm[*]:+lediflow warm -- }snakemake --workflow-profile workflow/profiles/gpu, run.name gpu-default) | $run_limit | $t_run | $rc_run | run.log: $(grep -c '^Finished jobid' "$out/run.log" 2>/dev/null) jobs finished; warm.trace: $(grep -c '^warm' "$out/warm.trace" 2>/dev/null || echo 0) stages forked warm |"
    echo
    echo "exit 124 = stopped at its time limit; rerun the script and the default run resumes."
} > "$out/summary.md"
cat "$out/summary.md"
ok() { [ "$1" = 0 ] || [ "$1" = skipped ]; }
ok "$rc_tests" && ok "$rc_bench" && ok "$rc_run"
