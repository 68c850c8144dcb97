"""Shared helpers of the simulator tests: tiny raw files, a hand-controlled URM, thread settings."""

from __future__ import annotations

from pathlib import Path

import torch

from rlrec.sim.env import EnvConfig, ListRecSimulator, StartPool
from rlrec.sim.urm import URM, URMConfig

TINY_SYNTH = {"n_users": 40, "n_items": 60, "mean_lists": 4, "max_lists": 8, "slate_size": 5}


def write_text(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return path


def controlled_urm(signs: list[int], max_history: int = 5) -> tuple[URM, torch.Tensor]:
    """A URM whose logit for item ``i`` is ``100·signs[i-1]`` whatever the user and history:
    probability 1 for ``+1`` items and 0 for ``-1`` items. Returns ``(urm, item features (N+1, 1))``."""
    cfg = URMConfig(dim=4, hidden_dims=[], n_heads=1, dropout=0.0, max_history=max_history)
    urm = URM(cfg, user_dim=1, item_dim=1)
    with torch.no_grad():
        for p in urm.parameters():
            p.zero_()
        urm.item_embed.weight[0, 0] = 100.0
        assert urm.fuse is not None
        urm.fuse.bias[0] = 1.0
    items = torch.tensor([[0.0]] + [[float(s)] for s in signs])
    return urm.eval(), items


def controlled_sim(
    signs: list[int],
    slate_size: int,
    cfg: EnvConfig,
    num_envs: int = 1,
    histories: list[list[int]] | None = None,
    max_history: int = 5,
) -> ListRecSimulator:
    """A simulator over :func:`controlled_urm`; start records = ``histories`` (one user each)."""
    urm, items = controlled_urm(signs, max_history)
    histories = histories or [[]]
    h = torch.zeros((len(histories), max_history), dtype=torch.long)
    for r, hist in enumerate(histories):
        if hist:
            h[r, max_history - len(hist) :] = torch.tensor(hist)
    counts = torch.tensor([float(len(x)) for x in histories])  # as if every item shown was liked
    pool = StartPool(torch.arange(len(histories)), h, h > 0, counts, counts.clone())
    users = torch.zeros((len(histories), 1))
    return ListRecSimulator(
        urm, items, users, pool, num_envs=num_envs, slate_size=slate_size, cfg=cfg
    )


class single_thread:
    """Run torch on one thread inside the block (tiny tensors; avoids OpenMP contention)."""

    def __enter__(self) -> None:
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.saved)
