"""Sequence augmentations for contrastive objectives (P-CCQL §3.4), on tensors.

Every function takes a batch of right-padded histories ``state [B, L]`` (pad id ``pad_id``) with
``len_state [B]`` (the reference rule: 1 for an empty history) and returns a new ``(state, len_state)``.
All random draws come from the caller's seeded CPU ``torch.Generator`` (one tensor call per draw, no
Python loop per sample), so a view is a function of ``(seed, step)``.

Except for ``permutation_legacy``, they act on the **real part** of each row only (the
``n_real = #{positions < len_state whose id is not the pad}`` leading items): pads never move and
no pad is created inside the real part; an empty history is returned unchanged.

* ``reorder`` — shuffle a random contiguous span of ``⌊ratio·n_real⌋`` items (CL4SRec's "reorder";
  ``ratio = 1`` permutes the whole real part — the corrected form of the reference's permutation);
  the multiset of items and ``len_state`` are kept;
* ``mask`` — replace each real item by the learned ``[mask]`` id with probability ``ratio`` (the
  encoder is built with a mask token; the reference writes the pad id instead, which turns masked
  positions into padding);
* ``crop`` — keep a random contiguous sub-sequence of ``max(1, ⌊ratio·n_real⌋)`` items, re-packed to
  the front (``len_state`` shrinks; the reference's "crop" is span masking with the pad id);
* ``permutation_legacy`` — the reference code's augmentation: shuffle all ``L`` positions of each row,
  pads included (numpy ``Generator.permuted(axis=1)``), ``len_state`` unchanged — a pad can then land
  at the gathered position ``len_state − 1``.
"""

from __future__ import annotations

from typing import Literal

import torch

Augmentation = Literal["reorder", "mask", "crop", "permutation_legacy"]


def real_count(state: torch.Tensor, len_state: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``[B]`` number of leading real items (0 for the empty history, whose ``len_state`` is 1)."""
    positions = torch.arange(state.shape[1], device=state.device)
    return ((positions < len_state.unsqueeze(1)) & (state != pad_id)).sum(dim=1)


def _uniform(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=gen).to(device)


def _span(
    n_real: torch.Tensor, ratio: float, gen: torch.Generator, min_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random span ``[start, start + length)`` inside ``[0, n_real)`` per row, ``length = ⌊ratio·n⌋``."""
    length = torch.floor(n_real.to(torch.float64) * ratio).to(n_real.dtype)
    length = torch.minimum(length.clamp(min=min_len), n_real)
    room = (n_real - length + 1).to(torch.float64)
    start = torch.floor(_uniform(tuple(n_real.shape), gen, n_real.device).double() * room)
    return start.to(n_real.dtype), length


def reorder(
    state: torch.Tensor, len_state: torch.Tensor, pad_id: int, ratio: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle a random span of ``⌊ratio·n_real⌋`` real items in each row."""
    positions = torch.arange(state.shape[1], device=state.device).expand_as(state)
    start, length = _span(real_count(state, len_state, pad_id), ratio, gen, min_len=0)
    inside = (positions >= start.unsqueeze(1)) & (positions < (start + length).unsqueeze(1))
    # Sort keys: a position outside the span keeps its index; one inside gets a random key in
    # [start, start + length), so sorting permutes the span and leaves everything else in place.
    noise = start.unsqueeze(1) + _uniform(tuple(state.shape), gen, state.device) * length.unsqueeze(
        1
    )
    keys = torch.where(inside, noise, positions.to(noise.dtype))
    return state.gather(1, keys.argsort(dim=1, stable=True)), len_state


def mask(
    state: torch.Tensor,
    len_state: torch.Tensor,
    pad_id: int,
    ratio: float,
    gen: torch.Generator,
    mask_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each real item by ``mask_id`` with probability ``ratio``."""
    positions = torch.arange(state.shape[1], device=state.device)
    real = positions < real_count(state, len_state, pad_id).unsqueeze(1)
    hit = real & (_uniform(tuple(state.shape), gen, state.device) < ratio)
    return torch.where(hit, torch.full_like(state, mask_id), state), len_state


def crop(
    state: torch.Tensor, len_state: torch.Tensor, pad_id: int, ratio: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep a contiguous run of ``max(1, ⌊ratio·n_real⌋)`` real items, moved to the front."""
    n_real = real_count(state, len_state, pad_id)
    start, length = _span(n_real, ratio, gen, min_len=1)
    positions = torch.arange(state.shape[1], device=state.device)
    source = (start.unsqueeze(1) + positions).clamp(max=state.shape[1] - 1)
    kept = positions < length.unsqueeze(1)
    cropped = torch.where(kept, state.gather(1, source), torch.full_like(state, pad_id))
    empty = n_real == 0
    return (
        torch.where(empty.unsqueeze(1), state, cropped),
        torch.where(empty, len_state, length),
    )


def permutation_legacy(
    state: torch.Tensor, len_state: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``permuted(axis=1)``: every row's ``L`` positions shuffled, pads included."""
    order = _uniform(tuple(state.shape), gen, state.device).argsort(dim=1)
    return state.gather(1, order), len_state


def augment(
    kind: Augmentation,
    state: torch.Tensor,
    len_state: torch.Tensor,
    *,
    pad_id: int,
    ratio: float,
    gen: torch.Generator,
    mask_id: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply augmentation ``kind`` (``ratio``: its span / probability parameter)."""
    if kind == "reorder":
        return reorder(state, len_state, pad_id, ratio, gen)
    if kind == "mask":
        if mask_id is None:
            raise ValueError("the mask augmentation needs an encoder with a mask token")
        return mask(state, len_state, pad_id, ratio, gen, mask_id)
    if kind == "crop":
        return crop(state, len_state, pad_id, ratio, gen)
    if kind == "permutation_legacy":
        return permutation_legacy(state, len_state, gen)
    raise ValueError(f"unknown augmentation {kind!r}")
