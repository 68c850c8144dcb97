"""The replay buffer (P-HAC §2.6, A.3): a FIFO ring of transitions held as tensors on the training
device, sampled uniformly with replacement from a seeded generator.

Per transition: the user id (features are looked up from the user table), the history before and
after the step (ids, left-padded), the state ``s`` and the hyper-action ``Z`` the actor used
(``Z`` is the noisy one that picked the slate), the slate, the per-item responses, the reward and
the ``terminated``/``truncated`` flags. The buffer is an ``nn.Module`` whose registered buffers are
its storage, so a checkpoint saves and restores it like any network (safetensors, no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn


@dataclass
class Batch:
    """Transitions: ``user`` ``(B,)``; ``history``, ``next_history`` ``(B, H)`` ids; ``state``
    ``(B, d)``; ``hyper`` ``(B, d_Z)``; ``slate`` ``(B, K)``; ``response`` ``(B, K)`` float;
    ``reward`` ``(B,)``; ``terminated``, ``truncated`` ``(B,)`` bool."""

    user: torch.Tensor
    history: torch.Tensor
    next_history: torch.Tensor
    state: torch.Tensor
    hyper: torch.Tensor
    slate: torch.Tensor
    response: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @staticmethod
    def stack(steps: list[Batch]) -> Batch:
        """A rollout: ``m`` consecutive steps of the same ``B`` slots, every field ``(m, B, ...)``."""
        return Batch(
            **{f.name: torch.stack([getattr(b, f.name) for b in steps]) for f in fields(Batch)}
        )

    def flatten(self) -> Batch:
        """A rollout ``(m, B, ...)`` as ``m·B`` transitions (step-major)."""
        return Batch(**{f.name: getattr(self, f.name).flatten(0, 1) for f in fields(Batch)})


STORAGE = {  # field → storage dtype (ids as int32: half the memory of int64)
    "user": torch.int64,
    "history": torch.int32,
    "next_history": torch.int32,
    "state": torch.float32,
    "hyper": torch.float32,
    "slate": torch.int32,
    "response": torch.bool,
    "reward": torch.float32,
    "terminated": torch.bool,
    "truncated": torch.bool,
}


class ReplayBuffer(nn.Module):
    """A ring of ``capacity`` transitions (see the module docstring)."""

    history: torch.Tensor  # (capacity, history), like every field of Batch: a registered buffer
    ptr: torch.Tensor  # () int64: the next slot to write
    size: torch.Tensor  # () int64: how many slots are filled

    def __init__(
        self,
        capacity: int,
        history: int,
        state_dim: int,
        hyper_dim: int,
        slate_size: int,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.capacity = capacity
        shapes = {
            "user": (),
            "history": (history,),
            "next_history": (history,),
            "state": (state_dim,),
            "hyper": (hyper_dim,),
            "slate": (slate_size,),
            "response": (slate_size,),
            "reward": (),
            "terminated": (),
            "truncated": (),
        }
        for name, shape in shapes.items():
            self.register_buffer(
                name, torch.zeros((capacity, *shape), dtype=STORAGE[name], device=device)
            )
        self.register_buffer("ptr", torch.zeros((), dtype=torch.int64))
        self.register_buffer("size", torch.zeros((), dtype=torch.int64))

    def __len__(self) -> int:
        return int(self.size)

    @torch.no_grad()
    def push(self, batch: Batch) -> None:
        """Append ``batch`` (oldest entries are overwritten once full)."""
        n = len(batch)
        idx = (int(self.ptr) + torch.arange(n)) % self.capacity
        idx = idx.to(self.history.device)
        for f in fields(Batch):
            store = getattr(self, f.name)
            store[idx] = getattr(batch, f.name).to(store.dtype)
        self.ptr.fill_((int(self.ptr) + n) % self.capacity)
        self.size.fill_(min(self.capacity, int(self.size) + n))

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        """``n`` transitions drawn uniformly with replacement from the filled part."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, len(self), (n,), generator=gen).to(self.history.device)
        out = {}
        for f in fields(Batch):
            rows = getattr(self, f.name)[idx]
            out[f.name] = rows.long() if rows.dtype == torch.int32 else rows
        out["response"] = out["response"].float()
        return Batch(**out)
