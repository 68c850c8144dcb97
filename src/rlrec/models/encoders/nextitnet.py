"""NextItNet state encoder as in the TF SNQN/SA2C code (P-SA2C §4.1.3–§4.1.4;
``NextItNetModules.py``).

Item embeddings ``[B, L, d]`` with pad positions zeroed go through ``len(cfg.nextitnet_dilations)``
residual blocks. A block with base dilation ``δ`` and kernel ``k``::

    y = relu(LN(causal_conv(x, dilation=δ)))
    y = relu(LN(causal_conv(y, dilation=2δ)))
    x ← (x + y) · pad_mask

where ``causal_conv`` is a 1-D convolution over the sequence with ``d`` channels, left padding
``(k − 1)·dilation`` and no right padding (output ``t`` sees inputs ``≤ t`` only), weights
truncated normal std 0.02 (truncated at two standard deviations, as TF), bias 0. LayerNorm is over
channels with learned gain/bias, ε = 1e-8. No dropout. The state is the output at
``len_state − 1``; ``out_dim = d``.

Causality means positions ``≥ len_state`` never reach the state; re-applying the pad mask after
every block (as the reference does) keeps pads zero for the next block's convolutions. The empty
history's state is the zero vector (its only position is a pad and is zeroed after every block).

Implementation: the convolutions run in ``[B, L, d]`` layout as one matmul over the ``k`` dilated
taps (shifted copies of the left-padded sequence), so layer norms need no transposes (on 2 CPU
threads this measured ~10 % faster than ``F.conv1d`` with transposes and ~30 % faster than
``unfold``). The encoder is compute-bound: with the defaults, 12 convolutions of ``[B·L, 3d] × [3d, d]``. Weights keep the
``nn.Conv1d`` layout ``[d_out, d_in, k]``; tap ``j`` reads input ``t − (k − 1 − j)·dilation``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlrec.models.encoders.base import Encoder, EncoderConfig

CONV_STD = 0.02
LN_EPS = 1e-8


def causal_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int
) -> torch.Tensor:
    """Causal dilated 1-D conv on ``x [B, L, C_in]`` with ``weight [C_out, C_in, k]`` → ``[B, L, C_out]``.

    Equals ``F.conv1d(F.pad(x.transpose(1, 2), ((k − 1)·dilation, 0)), weight, bias,
    dilation=dilation).transpose(1, 2)``: the ``k`` shifted copies of the left-padded sequence are
    concatenated along channels (tap-major) and multiplied by the matching ``[C_out, k·C_in]``
    view of the weight in one matmul.
    """
    length = x.shape[1]
    c_out, c_in, k = weight.shape
    padded = F.pad(x, (0, 0, (k - 1) * dilation, 0))  # [B, (k − 1)·dilation + L, C_in]
    taps = torch.cat([padded[:, j * dilation : j * dilation + length] for j in range(k)], dim=-1)
    return F.linear(taps, weight.permute(0, 2, 1).reshape(c_out, k * c_in), bias)


class NextItNetBlock(nn.Module):
    """One residual block: ``[B, L, d] → [B, L, d]`` (before the pad mask).

    ``conv1``/``conv2`` are ``nn.Conv1d`` only to hold the weights in the usual layout; they are
    applied through :func:`causal_conv` (their own ``forward`` would not pad causally).
    """

    def __init__(self, d: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv1 = nn.Conv1d(d, d, kernel, dilation=dilation)
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.conv2 = nn.Conv1d(d, d, kernel, dilation=2 * dilation)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.conv1, self.conv2):
            nn.init.trunc_normal_(conv.weight, 0.0, CONV_STD, -2 * CONV_STD, 2 * CONV_STD)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.ln1.reset_parameters()
        self.ln2.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        y = causal_conv(x, self.conv1.weight, self.conv1.bias, self.dilation)
        y = F.relu(F.layer_norm(y, (d,), self.ln1.weight, self.ln1.bias, LN_EPS))
        y = causal_conv(y, self.conv2.weight, self.conv2.bias, 2 * self.dilation)
        y = F.relu(F.layer_norm(y, (d,), self.ln2.weight, self.ln2.bias, LN_EPS))
        return x + y


class NextItNetEncoder(Encoder):
    """``state [B, L]``, ``len_state [B]`` → output of the last block at ``len_state − 1``, ``[B, d]``."""

    def __init__(
        self, n_items: int, state_size: int, cfg: EncoderConfig, *, mask_token: bool = False
    ) -> None:
        super().__init__(n_items, state_size, cfg, mask_token=mask_token)
        d = cfg.hidden
        self.out_dim = d
        self.item_emb = nn.Embedding(self.n_embeddings, d)
        nn.init.normal_(self.item_emb.weight, 0.0, 0.01)
        self.blocks = nn.ModuleList(
            NextItNetBlock(d, cfg.nextitnet_kernel, dilation)
            for dilation in cfg.nextitnet_dilations
        )

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """``state [B, L]`` int64, ``len_state [B]`` int64 → ``[B, d]``."""
        x = self.item_emb(state)
        mask = self.real_mask(state, len_state).unsqueeze(-1).to(x.dtype)
        x = x * mask
        for block in self.blocks:
            x = block(x) * mask
        batch, _, d = x.shape
        last = (len_state - 1).view(batch, 1, 1).expand(batch, 1, d)
        return x.gather(1, last).squeeze(1)
