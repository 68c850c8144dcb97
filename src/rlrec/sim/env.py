"""The batched list-recommendation simulator (P-HAC §3.1.2, A.2), pure torch.

``B`` user sessions run in parallel. Per slot the simulator keeps the user, the history (``H`` ids,
left-padded, with a mask), the temper, the depth and the running return. A step takes a slate
``(B, K)`` of item ids in ``1..N`` and

1. scores it with the URM in eval mode: ``p = σ(⟨E(x_a), z⟩)``, ``z`` the user's cached interest;
2. draws ``y = 1[u < p]`` per item, ``u = hash_uniform(episode key, depth, item id)``;
3. reward ``r = (n_pos − c·n_neg)/K`` (optionally ``1 − |r − s|``, the RL4RS sweet point);
4. appends the positives to the history (slate order, last ``H`` kept) and recomputes ``z`` only for
   slots whose history changed;
5. lowers the temper by ``(1 − r̃)·K + 1`` (``hac_gpu``) or ``n_neg + 1`` (``hac_cpu``); the user
   leaves (``terminated``) when it drops below 1; ``truncated`` when ``max_depth`` is reached first;
6. refills finished slots with new users (``auto_reset``), returning both the pre-refill next state
   of the same users (for transitions) and the post-refill observation to act on.

Randomness is counter-based: slot ``i`` reset with seed ``s`` draws its start users and response
noise from a stream keyed by ``s + i`` and its episode counter, so a batch of ``B`` users behaves
exactly like ``B`` single-user simulators seeded ``s, s+1, ...``; with explicit start records
(``reset(starts=...)``) the noise is keyed by ``(seed, start record)``: every policy evaluated on the
same users meets the same response noise for the same item at the same depth (common random
numbers), whatever the slate order, batch size or slot.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
from pydantic import Field

from rlrec.config import StrictModel
from rlrec.device import resolve_device
from rlrec.errors import ConfigError
from rlrec.models.gather import table_rows
from rlrec.seeding import derive_seed
from rlrec.sim import functional as Fn
from rlrec.sim import fused_attention
from rlrec.sim.urm import URM

START_SALT = 0x5EED
EXPLICIT_SALT = 0xE7A1
SLOT_STATE = (
    "slot_key",
    "episode",
    "ep_key",
    "start",
    "user",
    "history",
    "mask",
    "temper",
    "depth",
    "ret",
    "seen",
    "positives",
    "active",
    "e_user",
    "query",
    "z",
)


class EnvConfig(StrictModel):
    """Simulator settings (P-HAC A.2); defaults are the paper's (cost 0.2), parity flags named."""

    initial_temper: float = Field(20.0, gt=0)
    zero_reward_cost: float = Field(0.2, ge=0)
    reward_transform: Literal["none", "sweet_point"] = "none"
    sweet_point: float = 0.9
    temper_formula: Literal["hac_gpu", "hac_cpu"] = "hac_gpu"
    max_depth: int = Field(20, ge=1)
    auto_reset: bool = True
    start_split: Literal["train", "test", "all"] = "train"
    urm_legacy_dropout: bool = False
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    attention_kernel: Literal["auto", "torch", "numba"] = "auto"
    """How the URM's history attention is computed on CPU: ``numba`` the fused kernel of
    :mod:`rlrec.sim.fused_attention` (same function up to float rounding, ≈ 2× faster), ``torch``
    PyTorch's operators, ``auto`` the kernel when numba is installed and the simulator runs on CPU."""


@dataclass(frozen=True)
class StartPool:
    """Start states: the logged records users are drawn from. ``user`` ``(R,)``; ``history``
    ``(R, H)`` left-padded ids; ``history_mask`` ``(R, H)`` bool; ``seen`` and ``positives``
    ``(R,)`` float32: the user's items shown and positive responses before the record."""

    user: torch.Tensor
    history: torch.Tensor
    history_mask: torch.Tensor
    seen: torch.Tensor
    positives: torch.Tensor

    def index(self, idx: torch.Tensor) -> StartPool:
        """The records ``idx``."""
        return StartPool(*(getattr(self, f.name)[idx] for f in fields(self)))

    def to(self, device: torch.device | str) -> StartPool:
        return StartPool(*(getattr(self, f.name).to(device) for f in fields(self)))

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass
class StepOutput:
    """One step of ``B`` slots. ``obs`` is what to act on next (refilled); ``next_obs`` the same users'
    state after the step (pre-refill). ``active`` marks slots that acted (``auto_reset=False`` leaves
    finished slots idle); ``episode_*`` are valid where ``terminated | truncated``."""

    obs: dict[str, torch.Tensor]
    next_obs: dict[str, torch.Tensor]
    reward: torch.Tensor
    response: torch.Tensor
    probs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    active: torch.Tensor
    episode_return: torch.Tensor
    episode_depth: torch.Tensor
    episode_start: torch.Tensor
    episode_user: torch.Tensor

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated

    @property
    def episodes(self) -> list[dict[str, Any]]:
        """Every episode finished at this step: ``{slot, user, start, total_reward, depth}``
        (``start``: the start record in the pool, ``user``: its user id)."""
        idx = torch.nonzero(self.done).flatten().tolist()
        ret, dep = self.episode_return.tolist(), self.episode_depth.tolist()
        start, user = self.episode_start.tolist(), self.episode_user.tolist()
        return [
            {
                "slot": i,
                "user": user[i],
                "start": start[i],
                "total_reward": ret[i],
                "depth": dep[i],
            }
            for i in idx
        ]


class ListRecSimulator:
    """``B`` parallel users answering slates with a URM (see the module docstring).

    ``item_features``: ``(N+1, d_i)`` (row 0 padding); ``user_features``: ``(U, d_u)``; ``pool``: the
    start states; ``slate_size``: K.
    """

    def __init__(
        self,
        urm: URM,
        item_features: torch.Tensor,
        user_features: torch.Tensor,
        pool: StartPool,
        *,
        num_envs: int,
        slate_size: int,
        cfg: EnvConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.cfg = cfg or EnvConfig()
        self.device = resolve_device(self.cfg.device)
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        if len(pool) == 0:
            raise ValueError("the start pool is empty")
        if pool.history.shape[1] != urm.cfg.max_history:
            raise ValueError(
                f"start histories have width {pool.history.shape[1]}, the URM expects "
                f"{urm.cfg.max_history}"
            )
        self.urm = urm.to(self.device).eval()  # responses are sampled in eval mode
        self.num_envs, self.slate_size = num_envs, slate_size
        self.n_items = item_features.shape[0] - 1
        self.max_history = urm.cfg.max_history
        self.item_features = item_features.to(self.device)
        self.user_features = user_features.to(self.device)
        self.pool = pool.to(self.device)
        with torch.no_grad():
            self.item_emb, self.item_qkv = self.urm.item_tables(self.item_features)
        self.query_weight, self.query_bias = self.urm.query_map()
        self.attention: fused_attention.HistoryAttention | None = None
        if self._fused_kernel_wanted():
            self.attention = fused_attention.HistoryAttention(
                num_envs, self.max_history, self.urm.cfg.dim, self.urm.cfg.n_heads
            )
            self.pooled_interest = self.urm.pooled_interest()
        self._default_seed = seed
        self._seed, self._steps = seed, 0
        self._seeded = False
        self._refill = self.cfg.auto_reset
        b, h, dev = num_envs, self.max_history, self.device
        self.slot_key = torch.zeros(b, dtype=torch.int64, device=dev)
        self.episode = torch.zeros(b, dtype=torch.int64, device=dev)
        self.ep_key = torch.zeros(b, dtype=torch.int64, device=dev)
        self.start = torch.zeros(b, dtype=torch.int64, device=dev)
        self.user = torch.zeros(b, dtype=torch.int64, device=dev)
        self.history = torch.zeros((b, h), dtype=torch.int64, device=dev)
        self.mask = torch.zeros((b, h), dtype=torch.bool, device=dev)
        self.temper = torch.zeros(b, dtype=torch.float64, device=dev)
        self.depth = torch.zeros(b, dtype=torch.int64, device=dev)
        self.ret = torch.zeros(b, dtype=torch.float64, device=dev)
        self.seen = torch.zeros(b, device=dev)
        self.positives = torch.zeros(b, device=dev)
        self.active = torch.zeros(b, dtype=torch.bool, device=dev)
        f = urm.cfg.dim
        self.e_user = torch.zeros((b, f), device=dev)
        self.query = torch.zeros((b, urm.cfg.n_heads, f), device=dev)
        self.z = torch.zeros((b, f), device=dev)

    # ------------------------------------------------------------------------------ state

    def _observe(
        self, user: torch.Tensor, history: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {
            "user": user.clone(),
            "user_features": self.user_features[user],
            "history": history.clone(),
            "history_mask": mask.clone(),
        }

    def observation(self) -> dict[str, torch.Tensor]:
        """The current state (copies): ``user`` ``(B,)``, ``user_features`` ``(B, d_u)``,
        ``history`` ``(B, H)``, ``history_mask`` ``(B, H)``."""
        return self._observe(self.user, self.history, self.mask)

    def _fused_kernel_wanted(self) -> bool:
        """Whether :meth:`_refresh_interest` runs the fused kernel (``EnvConfig.attention_kernel``)."""
        choice = self.cfg.attention_kernel
        usable = self.device.type == "cpu" and fused_attention.available()
        if choice == "numba" and not usable:
            raise ConfigError(
                "attention_kernel 'numba' needs numba (pip install 'rlrec[fast]') and a CPU "
                f"simulator (device here: {self.device})"
            )
        return usable and choice != "torch"

    def _cross_query(self, e_user: torch.Tensor) -> torch.Tensor:
        """:meth:`URM.cross_query` ``(b, h, f)`` of user embeddings ``(b, f)``, as one product."""
        query = torch.addmm(self.query_bias, e_user, self.query_weight)
        return query.view(e_user.shape[0], self.urm.cfg.n_heads, -1)

    def _history_qkv(self, history: torch.Tensor) -> torch.Tensor:
        """The URM's self-attention ``[q|k|v]`` rows of a history ``(b, H)`` → ``(b, H, 3f)``."""
        flat = torch.index_select(self.item_qkv, 0, history.reshape(-1))
        return flat.view(history.shape[0], history.shape[1], -1)

    @torch.no_grad()
    def _refresh_interest(
        self, rows: torch.Tensor | None, shift: torch.Tensor | None = None
    ) -> None:
        """Recompute the cached interest ``z`` of ``rows`` (``None``: all) from their history.

        ``shift`` ``(B,)``: how many items each slot's window gained since its last refresh (0:
        unchanged, −1 or ``None``: a new window); the fused kernel updates its per-slot attention
        state by it (:class:`rlrec.sim.fused_attention.HistoryAttention`). On the PyTorch path, with
        the URM's padding mask, leading columns that are padding in every row are dropped first
        (exact: masked keys carry zero weight), so short histories cost less.
        """
        if rows is not None and rows.numel() == 0:
            return
        hist, mask, e_user, query = (
            x if rows is None else x.index_select(0, rows)
            for x in (self.history, self.mask, self.e_user, self.query)
        )
        if self.attention is not None:
            idx = torch.arange(self.num_envs) if rows is None else rows
            moved = torch.full((len(idx),), -1) if shift is None else shift[idx]
            keys = mask if self.urm.cfg.key_padding_mask else torch.ones_like(mask)
            pooled = self.attention.refresh(self.item_qkv, idx, hist, keys, moved, query)
            z = self.pooled_interest(pooled, e_user, mask)
        else:
            if self.urm.cfg.key_padding_mask:
                width = max(1, int(mask.sum(1).max()))
                if width < hist.shape[1]:
                    hist, mask = hist[:, -width:], mask[:, -width:]
            z = self.urm.interest(e_user, query, self._history_qkv(hist), mask)
        if rows is None:
            self.z = z
        else:
            self.z[rows] = z

    @torch.no_grad()
    def _start_episodes(
        self, rows: torch.Tensor, starts: torch.Tensor, ep_keys: torch.Tensor, refresh: bool = True
    ) -> None:
        """Put new users into ``rows`` from pool records ``starts`` with episode keys ``ep_keys``
        (``refresh=False``: the caller recomputes their interest)."""
        self.ep_key[rows] = ep_keys
        self.start[rows] = starts
        self.user[rows] = self.pool.user[starts]
        self.history[rows] = self.pool.history[starts]
        self.mask[rows] = self.pool.history_mask[starts]
        self.temper[rows] = self.cfg.initial_temper
        self.depth[rows] = 0
        self.ret[rows] = 0.0
        self.seen[rows] = self.pool.seen[starts]
        self.positives[rows] = self.pool.positives[starts]
        self.active[rows] = True
        users = self.user[rows]
        e = self.urm.encode_user(self.user_features[users], users)
        self.e_user[rows] = e
        self.query[rows] = self._cross_query(e)
        if refresh:
            self._refresh_interest(rows)

    def _draw_starts(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Episode keys and start records for the next episode of ``rows`` (counter-based)."""
        keys = Fn.hash_combine(self.slot_key[rows], self.episode[rows])
        starts = Fn.hash_combine(keys, START_SALT) % len(self.pool)
        return keys, starts

    # ------------------------------------------------------------------------------ API

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything a resumed run needs to continue exactly (copies): the per-slot tensors of
        :data:`SLOT_STATE` and the stream counters as 0-d tensors."""
        state = {name: getattr(self, name).clone() for name in SLOT_STATE}
        for name in ("_seed", "_steps", "_seeded", "_refill"):
            state[name.lstrip("_")] = torch.tensor(int(getattr(self, name)))
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a :meth:`state_dict` of a simulator with the same batch size and URM.

        A state saved before the response counts existed has no ``seen``/``positives``; only a URM
        with the engagement term (which such a run cannot have) reads them, so they are kept."""
        for name in SLOT_STATE:
            if name in ("seen", "positives") and name not in state:
                continue
            current = getattr(self, name)
            if state[name].shape != current.shape:
                raise ValueError(f"simulator state '{name}' has shape {tuple(state[name].shape)}")
            setattr(self, name, state[name].to(current.device, current.dtype).clone())
        self._seed, self._steps = int(state["seed"]), int(state["steps"])
        self._seeded, self._refill = bool(state["seeded"]), bool(state["refill"])
        if self.attention is not None:  # its state is rebuilt from the restored histories
            self.attention.forget()

    def reset(
        self, seed: int | None = None, starts: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Start ``B`` new episodes and return the observation.

        ``seed``: slot ``i`` uses the stream ``seed + i`` (episode counters restart at 0); without a
        seed the streams continue with their next episodes. ``starts``: ``(B,)`` explicit start
        records (pool indices) for evaluation; their noise is keyed by ``(seed, record)`` and
        finished slots are not refilled until the next reset.
        """
        if seed is None and not self._seeded:
            seed = self._default_seed
        all_rows = torch.arange(self.num_envs, device=self.device)
        if seed is not None:
            self._seeded = True
            self._seed = int(seed)
            self._steps = 0
            self.slot_key = Fn.seed_key(torch.arange(self.num_envs) + int(seed)).to(self.device)
            self.episode.zero_()
        else:
            self.episode += 1
        if starts is None:
            self._refill = self.cfg.auto_reset
            keys, first = self._draw_starts(all_rows)
        else:
            starts = torch.as_tensor(starts, dtype=torch.int64, device=self.device)
            if starts.shape != (self.num_envs,):
                raise ValueError(
                    f"starts must have shape ({self.num_envs},), got {tuple(starts.shape)}"
                )
            if starts.min() < 0 or starts.max() >= len(self.pool):
                raise ValueError(f"start records must be in 0..{len(self.pool) - 1}")
            self._refill = False
            base = Fn.seed_key(self._seed)
            keys = Fn.hash_combine(Fn.hash_combine(base.to(self.device), EXPLICIT_SALT), starts)
            first = starts
        self._start_episodes(all_rows, first, keys, refresh=False)
        self._refresh_interest(None)
        return self.observation()

    def _dropout_user_state(self) -> None:
        """Parity mode (the reference code's): the user encoder's dropout is on while simulating.
        The mask is drawn from torch's RNG seeded by (seed, step count), so runs repeat, but unlike
        the default it depends on the batch composition."""
        self._steps += 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self._seed, "urm_dropout", self._steps))
            self.urm.user_encoder.train()
            self.e_user = self.urm.encode_user(self.user_features[self.user], self.user)
            self.urm.user_encoder.eval()
        self.query = self._cross_query(self.e_user)
        self._refresh_interest(None, torch.zeros(self.num_envs, dtype=torch.int64))

    @torch.no_grad()
    def probabilities(self, slate: torch.Tensor) -> torch.Tensor:
        """Response probabilities ``(B, K)`` of the current users for ``slate`` (no state change)."""
        items = table_rows(self.item_emb, slate)
        logits = self.urm.score(items, self.z, slate, self.seen, self.positives)
        return torch.sigmoid(logits)

    @torch.no_grad()
    def catalogue_probabilities(self, chunk: int = 512) -> torch.Tensor:
        """Response probabilities ``(B, N)`` of every item ``1..N`` (column ``i - 1``) for the
        current users, in item chunks of ``chunk`` (no state change)."""
        out = []
        for lo in range(1, self.n_items + 1, chunk):
            ids = torch.arange(lo, min(lo + chunk, self.n_items + 1), device=self.device)
            out.append(self.probabilities(ids.expand(self.num_envs, -1)))
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def step(self, slate: torch.Tensor) -> StepOutput:
        """Show ``slate`` ``(B, K)`` (item ids in ``1..N``) to every active user."""
        cfg = self.cfg
        slate = torch.as_tensor(slate, device=self.device).long()
        if slate.shape != (self.num_envs, self.slate_size):
            raise ValueError(
                f"slate must have shape ({self.num_envs}, {self.slate_size}), got {tuple(slate.shape)}"
            )
        if int(slate.min()) < 1 or int(slate.max()) > self.n_items:
            raise ValueError(f"slate item ids must be in 1..{self.n_items}")
        if cfg.urm_legacy_dropout:
            self._dropout_user_state()
        active = self.active.clone()
        probs = self.probabilities(slate)
        noise = Fn.hash_uniform(self.ep_key[:, None], self.depth[:, None], slate)
        response = (noise < probs) & active[:, None]
        reward = Fn.list_reward(response, cfg.zero_reward_cost)
        if cfg.reward_transform == "sweet_point":
            reward = Fn.sweet_point(reward, cfg.sweet_point)
        reward = torch.where(active, reward, torch.zeros_like(reward))
        self.temper = self.temper - torch.where(
            active, Fn.temper_decrement(reward, response, cfg.temper_formula), 0.0
        )
        self.depth = self.depth + active.long()
        self.ret = self.ret + reward
        self.seen = self.seen + active * float(self.slate_size)
        self.positives = self.positives + response.sum(1)
        terminated = active & (self.temper < 1.0)
        truncated = active & ~terminated & (self.depth >= cfg.max_depth)
        done = terminated | truncated
        self.history, self.mask = Fn.append_positives(self.history, self.mask, slate, response)
        next_obs = self.observation()
        stale = response.any(1) & ~done  # history changed: interest must be recomputed
        ep_return, ep_depth, ep_start = self.ret.clone(), self.depth.clone(), self.start.clone()
        ep_user = self.user.clone()
        if bool(done.any()):
            rows = torch.nonzero(done).flatten()
            if self._refill:
                self.episode[rows] += 1
                keys, starts = self._draw_starts(rows)
                self._start_episodes(rows, starts, keys, refresh=False)
                stale = stale | done
            else:
                self.active[rows] = False
        shift = torch.where(done, -1, response.sum(1))  # window growth; −1: a new user
        if bool(stale.all()):
            self._refresh_interest(None, shift)
        else:
            self._refresh_interest(torch.nonzero(stale).flatten(), shift)
        return StepOutput(
            obs=self.observation(),
            next_obs=next_obs,
            reward=reward.to(torch.float32),
            response=response,
            probs=probs,
            terminated=terminated,
            truncated=truncated,
            active=active,
            episode_return=ep_return,
            episode_depth=ep_depth,
            episode_start=ep_start,
            episode_user=ep_user,
        )
