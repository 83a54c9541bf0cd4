"""The analysis: metrics (FID, KID, precision/recall, CMMD), the comparisons that define a speedup, significance, tables and figures."""
