"""Caser state encoder as in the TF SNQN/SA2C code (P-SA2C §4.1.3–§4.1.4; model ``Caser``).

The ``L × d`` embedding matrix of the history (pad positions zeroed) is read as a one-channel
image and convolved two ways:

* **horizontal**: for each height ``h`` in ``cfg.caser_heights``, ``cfg.caser_filters`` filters of
  size ``h × d`` (stride 1, no padding, bias 0.1), ReLU, max-pool over the ``L − h + 1`` positions.
  A 2-D convolution with an ``h × d`` kernel on a one-channel ``L × d`` image is exactly a 1-D
  convolution with ``d`` input channels and kernel ``h`` along the sequence, so each height is
  one ``nn.Conv1d(d, F, h)`` on the ``[B, d, L]`` sequence (on 2 CPU threads this measured faster
  than an ``unfold`` + matmul or a single zero-padded matmul for all heights).
* **vertical**: one ``L × 1`` filter — a learned weighting of the ``L`` positions shared by all
  ``d`` dimensions — plus bias 0.1, ReLU → ``d`` values.

The two are concatenated and passed through dropout (``cfg.dropout``, training only); there is no
fully connected layer after them (unlike the original Caser). ``out_dim = F·len(heights) + d``
(112 with the defaults 16 × 3 + 64). Conv weights: truncated normal, std 0.1 (truncated at two
standard deviations as TF's ``truncated_normal``).

Positions ``≥ len_state`` are zeroed before the convolutions, so they cannot influence the state;
the empty history is an all-zero image, whose state is ``relu(0.1)`` everywhere before dropout.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rlrec.models.dropout import bernoulli_dropout
from rlrec.models.encoders.base import Encoder, EncoderConfig

CONV_STD = 0.1
CONV_BIAS = 0.1


class CaserEncoder(Encoder):
    """``state [B, L]``, ``len_state [B]`` → ``[B, F·len(heights) + d]`` (horizontal ‖ vertical)."""

    def __init__(
        self, n_items: int, state_size: int, cfg: EncoderConfig, *, mask_token: bool = False
    ) -> None:
        super().__init__(n_items, state_size, cfg, mask_token=mask_token)
        d = cfg.hidden
        self.heights = tuple(cfg.caser_heights)
        if not self.heights:
            raise ValueError("caser_heights must not be empty")
        if max(self.heights) > state_size or min(self.heights) < 1:
            raise ValueError(
                f"caser_heights {self.heights} must lie in [1, state_size={state_size}]"
            )
        n_filters = cfg.caser_filters
        self.out_dim = n_filters * len(self.heights) + d
        self.item_emb = nn.Embedding(self.n_embeddings, d)
        # Horizontal filters: weight [F, d, h], weight[f, :, j] multiplies window row j.
        self.horizontal = nn.ModuleList(nn.Conv1d(d, n_filters, h) for h in self.heights)
        self.v_weight = nn.Parameter(torch.empty(state_size))  # the L × 1 vertical filter
        self.v_bias = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.item_emb.weight, 0.0, 0.01)
        for conv in cast(list[nn.Conv1d], list(self.horizontal)):
            nn.init.trunc_normal_(conv.weight, 0.0, CONV_STD, -2 * CONV_STD, 2 * CONV_STD)
            if conv.bias is not None:
                nn.init.constant_(conv.bias, CONV_BIAS)
        nn.init.trunc_normal_(self.v_weight, 0.0, CONV_STD, -2 * CONV_STD, 2 * CONV_STD)
        nn.init.constant_(self.v_bias, CONV_BIAS)

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """``state [B, L]`` int64, ``len_state [B]`` int64 → ``[B, out_dim]``."""
        x = self.item_emb(state)
        x = x * self.real_mask(state, len_state).unsqueeze(-1).to(x.dtype)  # [B, L, d]
        sequence = x.transpose(1, 2)  # [B, d, L]: the d embedding dims are the conv channels
        pooled = [F.relu(conv(sequence)).amax(dim=-1) for conv in self.horizontal]  # each [B, F]
        vertical = F.relu(torch.matmul(self.v_weight, x) + self.v_bias)  # [B, d]
        out = torch.cat([*pooled, vertical], dim=1)
        return bernoulli_dropout(out, self.cfg.dropout, self.training)
