"""Inverted dropout with cheap CPU masks, shared by the offline encoders and the online policy.

On CPU the mask comes from 16-bit uniform integers, four per 64-bit draw of torch's default
generator (``torch.manual_seed`` makes it reproducible), about 3× cheaper than ``F.dropout``'s
Bernoulli sampling. The drop probability is rounded to a multiple of 2^-16 (0.1 → 0.100006) and the
kept values are scaled by the exact ``1 / (1 − p)`` of that rounded probability. The integers are
compared as float32 (exact: |value| ≤ 2^15), so the mask is built without a bool tensor, whose
conversions and mixed-dtype products take a slow, unvectorised path on CPU.
"""

from __future__ import annotations

import math

import torch

INT16_LEVELS = 1 << 16


def dropout_mask(
    shape: tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Inverted-dropout multiplier of ``shape``: 0 with probability ``p``, else ``1 / (1 − p)``
    (``p`` rounded to 2^-16 on CPU; an ordinary Bernoulli draw on other devices)."""
    if device.type != "cpu":
        keep = torch.empty(shape, dtype=dtype, device=device).bernoulli_(1.0 - p)
        return keep.mul_(1.0 / (1.0 - p))
    n_drop = min(round(p * INT16_LEVELS), INT16_LEVELS - 1)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    uniform16 = words.view(torch.int16)[:n].view(shape)  # uniform on [−2^15, 2^15)
    keep = uniform16.to(torch.float32).ge_(n_drop - INT16_LEVELS // 2)  # 1.0 kept, 0.0 dropped
    return keep.to(dtype).mul_(INT16_LEVELS / (INT16_LEVELS - n_drop))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` with masks from :func:`dropout_mask`; identity unless training and ``p > 0``."""
    if not training or p == 0.0:
        return x
    return x * dropout_mask(tuple(x.shape), p, x.dtype, x.device)
