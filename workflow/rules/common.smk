# Shared helpers for rule files. PARAMS, RUN_DIR and PARAMS_FILE come from the Snakefile.


def lediflow_cmd(stage):
    """The CLI call every rule makes: one stage, reading the run's resolved params."""
    return f"lediflow {stage} --config {PARAMS_FILE}"
