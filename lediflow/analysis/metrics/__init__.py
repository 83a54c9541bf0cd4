"""Quality metrics: FID/KID through torch-fidelity, CMMD through open_clip, and their kernels."""
