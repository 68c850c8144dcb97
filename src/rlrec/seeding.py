"""Seeds derived from one run seed, so every random draw is a function of (seed, purpose, step).

Training re-seeds its random streams at every optimiser step from ``derive_seed(seed, purpose,
step)``. A resumed run therefore replays exactly the draws of an uninterrupted one without storing
any RNG state, and data-parallel ranks agree on shared draws (batch order, negatives, roles).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and any keys (stable across runs, platforms and Python versions)."""
    text = "/".join(str(k) for k in (seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int, *keys: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(seed, *keys)``."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global RNGs (model initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
