#!/usr/bin/env bash
# The one prepared GPU check (issue 17): the CUDA tests, the GPU benchmark and the default run end to end on the
# GPU, each under its own time limit, with everything it measured written to one folder.
#   bash benchmarks/gpu_check.sh                  # -> gpu_check/{card.txt,tests.log,benchmark.log,run.log,summary.md}
#   bash benchmarks/gpu_check.sh OUT RUN_LIMIT_S  # another folder; the default run's limit (default 420 s)
# Needs the project installed (`pip install -e .`, as in the README) and Fashion-MNIST where params.yaml finds it.
# The default run writes results/gpu-default/ (params.yaml with run.name gpu-default: nothing of results/default
# is touched); run it again and Snakemake resumes it. The limits leave room for a second try in a 15-minute lease.
set -u
out=${1:-gpu_check}
run_limit=${2:-420}
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to torch; run this on a machine with an NVIDIA GPU (and a CUDA build of torch)"
    exit 2
fi
mkdir -p "$out"
python -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')" > "$out/card.txt"
overlay="$out/gpu-default.yaml"
printf 'run: {name: gpu-default}\n' > "$overlay"

seconds() { local start=$SECONDS; "$@"; local rc=$?; echo "$((SECONDS - start)) $rc"; }
read -r t_tests rc_tests < <(seconds bash -c "timeout 240 python -m pytest -q tests/test_gpu.py > '$out/tests.log' 2>&1")
read -r t_bench rc_bench < <(seconds bash -c "timeout 240 python benchmarks/run.py --no-pipeline > '$out/benchmark.log' 2>&1")
read -r t_run rc_run < <(seconds bash -c "timeout $run_limit snakemake --cores all --configfile params.yaml '$overlay' > '$out/run.log' 2>&1")

{
    echo "# GPU check: $(cat "$out/card.txt")"
    echo
    echo "| step | seconds | exit | log |"
    echo "| --- | --- | --- | --- |"
    echo "| CUDA tests (tests/test_gpu.py) | $t_tests | $rc_tests | tests.log: $(tail -n 1 "$out/tests.log") |"
    echo "| GPU benchmark (benchmarks/run.py --no-pipeline) | $t_bench | $rc_bench | benchmark.log |"
    echo "| default run (snakemake --cores all, run.name gpu-default) | $t_run | $rc_run | run.log: $(grep -c '^Finished jobid' "$out/run.log") jobs finished |"
    echo
    echo "exit 124 = stopped at its time limit; rerun the script and the default run resumes."
} > "$out/summary.md"
cat "$out/summary.md"
[ "$rc_tests" = 0 ] && [ "$rc_bench" = 0 ] && [ "$rc_run" = 0 ]
