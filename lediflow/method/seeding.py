"""Explicit, derived seeds: every random draw comes from a generator seeded by a tuple of ints.

Deriving the generator of training step k (or of image i) from (root seed,
k, ...) makes results independent of batch splitting, resumption and rank
count, with no global RNG state to carry around.
"""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from integer keys (numpy SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def generator(device: torch.device | str, *keys: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(*keys))
    return gen


def seed_model_init(seed: int, *keys: int) -> None:
    """Seed torch's global RNG, which nn.Module constructors draw their initial weights from."""
    torch.manual_seed(derive_seed(seed, STREAM_INIT, *keys))


# Stream identifiers, so different consumers of the same root seed never share draws.
STREAM_TRAIN = 1
STREAM_SAMPLE = 2
STREAM_EVAL = 3
STREAM_INIT = 4
STREAM_STATS = 5  # draws that only estimate statistics (the latent sampler's standardisation)
