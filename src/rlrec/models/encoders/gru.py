"""GRU state encoder (P-SA2C §4.1.3; TF ``QNetwork`` with model ``GRU``).

A single-layer GRU (tanh), hidden size ``d = cfg.hidden``, reads the **unmasked** item embeddings
``[B, L, d]`` — pads included, so the trainable pad row matters here and only here — and the state
is its output at position ``len_state − 1``. The reference runs ``dynamic_rnn`` for exactly
``len_state`` steps; since a GRU is causal, running all ``L`` steps and taking the output at
``len_state − 1`` is identical (later steps never influence it), needs no packing, and is one
fused call. For the empty history (``len_state = 1``) the GRU consumes one pad embedding.
No dropout. ``out_dim = d``.

Initialisation: item embeddings normal(0, 0.01) (the TF code's); GRU weights keep PyTorch's default
(the papers do not fix them; TF's GRUCell would use Glorot-uniform kernels and gate bias 1).
"""

from __future__ import annotations

import torch
from torch import nn

from rlrec.models.encoders.base import Encoder, EncoderConfig


class GRUEncoder(Encoder):
    """``state [B, L]``, ``len_state [B]`` → GRU output at ``len_state − 1``, ``[B, d]``."""

    def __init__(
        self, n_items: int, state_size: int, cfg: EncoderConfig, *, mask_token: bool = False
    ) -> None:
        super().__init__(n_items, state_size, cfg, mask_token=mask_token)
        d = cfg.hidden
        self.out_dim = d
        self.item_emb = nn.Embedding(self.n_embeddings, d)
        self.gru = nn.GRU(d, d, num_layers=1, batch_first=True)
        nn.init.normal_(self.item_emb.weight, 0.0, 0.01)

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(self.item_emb(state))  # [B, L, d]
        batch, _, d = outputs.shape
        last = (len_state - 1).view(batch, 1, 1).expand(batch, 1, d)
        return outputs.gather(1, last).squeeze(1)
