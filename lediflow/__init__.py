"""lediflow: reproducibility pipeline for LeDiFlow (learned-prior flow matching, arXiv 2505.20723)."""

__version__ = "0.1.0"
