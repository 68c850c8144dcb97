"""The interface every sequential state encoder implements (``G(·)`` of P-SA2C §3).

``forward(state [B, L] int64 item ids (pad = n_items), len_state [B] int64) → [B, out_dim]``.

``len_state`` follows the reference rule (number of real items, but 1 for an empty history), histories
are right-padded, and the state is the encoder output at position ``len_state − 1``. A position is real
iff it is before ``len_state`` *and* its id is not the pad, so the output never depends on positions
``≥ len_state``. Each encoder owns its item-embedding table of ``n_items + 1`` rows (row ``n_items`` is
the pad), plus a learned ``[mask]`` row ``n_items + 1`` when built with ``mask_token=True`` (for the
masking augmentation of contrastive objectives; the mask id counts as a real position).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from rlrec.config import StrictModel

EncoderKind = Literal["gru", "caser", "nextitnet", "sasrec"]
WITHOUT_DROPOUT = ("gru", "nextitnet")
"""The papers' GRU and NextItNet encoders have no dropout (Xin et al., WSDM'22 §4.1.4)."""


class EncoderConfig(StrictModel):
    """Architecture of the state encoder; defaults are the papers' (P-SA2C §4.1.4)."""

    kind: EncoderKind = "sasrec"
    hidden: int = Field(64, ge=1, description="item embedding / hidden size d")
    dropout: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Caser and SASRec (default 0.1); GRU and NextItNet have none (0, the default)",
    )
    caser_filters: int = Field(16, ge=1, description="horizontal filters per height")
    caser_heights: tuple[int, ...] = (2, 3, 4)
    nextitnet_dilations: tuple[int, ...] = (1, 2, 1, 2, 1, 2)
    nextitnet_kernel: int = Field(3, ge=2)
    sasrec_blocks: int = Field(1, ge=1)
    sasrec_heads: int = Field(1, ge=1)
    sasrec_variant: Literal["xin_tf", "ccql_torch"] = "xin_tf"

    @model_validator(mode="before")
    @classmethod
    def _dropout_where_the_encoder_has_it(cls, data: Any) -> Any:
        """GRU and NextItNet default to no dropout and refuse a non-zero rate (it would be
        silently ignored)."""
        if not isinstance(data, dict) or data.get("kind") not in WITHOUT_DROPOUT:
            return data
        if data.get("dropout", 0.0) not in (0, 0.0):
            raise ValueError(
                f"encoder.dropout: the {data['kind']} encoder has no dropout (set 0 or remove it)"
            )
        return {**data, "dropout": 0.0}


class Encoder(nn.Module):
    """Base class: maps item-id histories to a state vector of size ``out_dim``."""

    out_dim: int
    item_emb: nn.Embedding  # (n_embeddings, d), set by every encoder

    def __init__(
        self, n_items: int, state_size: int, cfg: EncoderConfig, *, mask_token: bool = False
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.pad_id = n_items
        self.mask_id: int | None = n_items + 1 if mask_token else None
        self.n_embeddings = n_items + 1 + int(mask_token)
        self.state_size = state_size
        self.cfg = cfg

    def real_mask(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` bool: position is before ``len_state`` and not the pad id."""
        positions = torch.arange(state.shape[1], device=state.device)
        return (positions < len_state.unsqueeze(1)) & (state != self.pad_id)

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
