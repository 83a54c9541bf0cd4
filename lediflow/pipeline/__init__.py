"""The pipeline: params and their schema, the path table, data sources, the run lock, the stages Snakemake and DVC call, and dvc.yaml's generator."""
