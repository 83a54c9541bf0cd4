"""The studies: workflows of ordinary runs (ablations, the scaling study and its cost, the methods comparison) and their summaries."""
