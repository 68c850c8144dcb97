"""Encoder + the two linear heads of the papers (P-SA2C §3, Eq. 3).

``q_head`` (the reference's ``output1``) gives ``Q(s, ·) ∈ R^n``; ``ce_head`` (``output2``) gives the
supervised logits ``y(s) ∈ R^n``. Both are plain affine maps with no activation and no weight tying,
and neither has a column for the pad id, so the pad can never be ranked. Methods without one of the
losses (supervised: no Q; DQN: no CE) build only the head they use. Contrastive objectives may add
a SimCLR-style projection head (``Linear → ReLU → Linear``) that maps the state into the space
where the contrastive loss is computed; ranking never uses it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from rlrec.models.encoders.base import Encoder
from rlrec.models.gather import table_rows

HeadInit = Literal["glorot", "normal"]


def _init_head(layer: nn.Linear, init: HeadInit) -> None:
    """TF default (Glorot-uniform weights) or the CCQL code's normal(0, 0.01); zero bias either way."""
    if init == "glorot":
        nn.init.xavier_uniform_(layer.weight)
    else:
        nn.init.normal_(layer.weight, std=0.01)
    nn.init.zeros_(layer.bias)


def rows(head: nn.Linear, items: torch.Tensor, sparse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight rows ``[..., H]`` and biases ``[...]`` of a head at ``items`` (any shape); with
    ``sparse`` the weight's gradient is row-sparse (only the rows looked up). The bias, one number
    per item, keeps a dense gradient. (:func:`~rlrec.models.gather.table_rows`: backwards that sum
    in a fixed order.)"""
    return table_rows(head.weight, items, sparse), table_rows(head.bias, items)


class QNetwork(nn.Module):
    """State encoder with a Q head and/or a CE head over the ``n_items`` real items."""

    def __init__(
        self,
        encoder: Encoder,
        n_items: int,
        *,
        q_head: bool = True,
        ce_head: bool = True,
        head_init: HeadInit = "glorot",
        projection: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_items = n_items
        self.q_head = nn.Linear(encoder.out_dim, n_items) if q_head else None
        self.ce_head = nn.Linear(encoder.out_dim, n_items) if ce_head else None
        for head in (self.q_head, self.ce_head):
            if head is not None:
                _init_head(head, head_init)
        self.sparse_q = False  # q_at's rows give a row-sparse gradient (train.sparse_items)
        self.sparse_ce = False  # so do the sampled softmax's rows of the CE head
        d = encoder.out_dim
        self.proj_head = (
            nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, projection))
            if projection is not None
            else None
        )

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """``[B, L]``, ``[B]`` → encoded state ``[B, out_dim]``."""
        return self.encoder(state, len_state)

    def q(self, s: torch.Tensor) -> torch.Tensor:
        """Q-values ``[B, n]`` of an encoded state."""
        if self.q_head is None:
            raise RuntimeError("this network has no Q head")
        return self.q_head(s)

    def q_at(self, s: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Q-values ``[B, M]`` of an encoded state ``[B, H]`` at ``items [B, M]`` only.

        ``M`` dot products per row instead of :meth:`q`'s ``n`` (and a sparse gradient for the
        head): what the TD and conservative terms use, the logged action and a few sampled ones.
        Equal to ``q(s).gather(1, items)`` up to float rounding (another summation order).
        """
        if self.q_head is None:
            raise RuntimeError("this network has no Q head")
        weight, bias = rows(self.q_head, items, self.sparse_q)
        return torch.baddbmm(bias.unsqueeze(2), weight, s.unsqueeze(2)).squeeze(2)

    def logits(self, s: torch.Tensor) -> torch.Tensor:
        """Supervised logits ``[B, n]`` of an encoded state."""
        if self.ce_head is None:
            raise RuntimeError("this network has no CE head")
        return self.ce_head(s)

    def project(self, s: torch.Tensor) -> torch.Tensor:
        """``[B, out_dim]`` → the contrastive embedding (the state itself without a projection head)."""
        return s if self.proj_head is None else self.proj_head(s)

    def head_layer(self, name: Literal["q", "ce"]) -> nn.Linear:
        """The named head's linear layer (``weight [n, out_dim]``, ``bias [n]``)."""
        layer = self.q_head if name == "q" else self.ce_head
        if layer is None:
            raise RuntimeError(f"this network has no {name} head")
        return layer

    def head(self, name: Literal["q", "ce"], s: torch.Tensor) -> torch.Tensor:
        """Scores from the named head (used for ranking)."""
        return self.q(s) if name == "q" else self.logits(s)


class ScoringNetwork(nn.Module):
    """A network's ranking scores in one call: ``(state [B, L] int64, len_state [B] int64) →
    scores [B, n_items] float32``, the encoder followed by the ranking head (``eval_head``).

    Tensors in and tensors out, nothing else: the form :func:`torch.jit.trace` and
    :func:`torch.onnx.export` need (``rlrec export``). Higher scores rank first.
    """

    def __init__(self, net: QNetwork, head: Literal["q", "ce"]) -> None:
        super().__init__()
        self.net = net
        self.head_name: Literal["q", "ce"] = head

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.head_name, self.net(state, len_state)).float()


class StateNetwork(nn.Module):
    """A network's encoder alone: ``(state [B, L] int64, len_state [B] int64) → encoded state
    [B, out_dim] float32``, the query an approximate top-k index searches with (``rlrec export
    --index faiss``); the ranking head's rows are the indexed item vectors."""

    def __init__(self, net: QNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        return self.net(state, len_state).float()
