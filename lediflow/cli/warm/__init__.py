"""Warm start for per-cell jobs: one server process imports torch and the stages once, and every `lediflow`
command of a run is forked from it instead of starting an interpreter and importing them again.

Every cell stays its own Snakemake or DVC job with its own outputs, manifest, log and exit status; only the
process image is shared. `lediflow warm -- snakemake --cores all` (or `-- dvc repro`) starts the server, runs the
command with LEDIFLOW_WARM pointing at it, and stops it; without LEDIFLOW_WARM nothing changes. docs/gpu.md,
"Start-up per cell", says when it pays.
"""

WARM_ENV = "LEDIFLOW_WARM"  # the server's socket path; set, the `lediflow` command forwards itself there
TRACE_ENV = "LEDIFLOW_WARM_TRACE"  # a file; set, each command appends whether it ran warm or cold, and its stage
