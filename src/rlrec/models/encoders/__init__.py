"""Sequential state encoders ``G(·)`` (P-SA2C §3, §4.1.3): GRU, Caser, NextItNet, SASRec.

All implement :class:`Encoder`: ``forward(state [B, L] int64, len_state [B] int64) → [B, out_dim]``.
Build one from its config with :func:`build_encoder`.
"""

from __future__ import annotations

from rlrec.models.encoders.base import Encoder, EncoderConfig, EncoderKind
from rlrec.models.encoders.caser import CaserEncoder
from rlrec.models.encoders.gru import GRUEncoder
from rlrec.models.encoders.nextitnet import NextItNetEncoder
from rlrec.models.encoders.sasrec import SASRecEncoder

ENCODERS: dict[str, type[Encoder]] = {
    "gru": GRUEncoder,
    "caser": CaserEncoder,
    "nextitnet": NextItNetEncoder,
    "sasrec": SASRecEncoder,
}


def build_encoder(
    cfg: EncoderConfig, n_items: int, state_size: int, *, mask_token: bool = False
) -> Encoder:
    """The encoder ``cfg.kind`` for ``n_items`` items (pad id ``n_items``) and window ``state_size``.

    ``mask_token`` adds a learned ``[mask]`` item with id ``n_items + 1``.
    """
    try:
        cls = ENCODERS[cfg.kind]
    except KeyError:
        raise ValueError(
            f"unknown encoder kind {cfg.kind!r}; expected one of {sorted(ENCODERS)}"
        ) from None
    return cls(n_items, state_size, cfg, mask_token=mask_token)


__all__ = [
    "ENCODERS",
    "CaserEncoder",
    "Encoder",
    "EncoderConfig",
    "EncoderKind",
    "GRUEncoder",
    "NextItNetEncoder",
    "SASRecEncoder",
    "build_encoder",
]
