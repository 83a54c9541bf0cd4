"""Pipeline stages: each is one CLI command and one Snakemake rule."""
