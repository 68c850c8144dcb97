"""Gymnasium interfaces to the simulator: ``ListRecVectorEnv`` (batched) and ``ListRecEnv`` (one user).

Registered as ``rlrec/ListRec-v0`` (``import rlrec.sim`` first)::

    env = gymnasium.make_vec("rlrec/ListRec-v0", num_envs=1024, data="data/ml100k_lists",
                             urm="runs/urm_ml100k", config={"zero_reward_cost": 0.1})
    env = gymnasium.make("rlrec/ListRec-v0")   # one user; without data: the synthetic default

Spaces (one user): observation ``Dict(user_features: Box(d_u), history: Box(0..N, (H,), int64),
history_mask: MultiBinary(H))``; action ``MultiDiscrete([N]*K, start=1)`` — a slate of item ids.
The vector env resets finished sessions in the same step (``AutoresetMode.SAME_STEP``): the returned
observation of a finished slot is the new user's, and ``info["final_obs"]`` (per finished slot, as
Gymnasium defines it) and ``info["next_obs"]`` (batched, every slot) hold the state after the step of
the users who acted. ``info`` also has ``response`` ``(B, K)``, ``probs`` ``(B, K)`` and, where
``_episode`` is True, ``episode = {"return", "depth"}``. Observations are NumPy arrays;
``tensors=True`` returns torch tensors on the simulator's device instead (no copies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlrec.config import build_config
from rlrec.sim.build import make_simulator
from rlrec.sim.env import EnvConfig, ListRecSimulator


def _config(config: EnvConfig | dict[str, Any] | None) -> EnvConfig:
    if isinstance(config, EnvConfig):
        return config
    return build_config(EnvConfig, cli=config or {})


def observation_space(sim: ListRecSimulator) -> spaces.Dict:
    """The one-user observation space of a simulator."""
    h, du = sim.max_history, sim.user_features.shape[1]
    table = sim.user_features.cpu().numpy()
    return spaces.Dict(
        {
            "user_features": spaces.Box(table.min(0), table.max(0), (du,), np.float32),
            "history": spaces.Box(0, sim.n_items, (h,), np.int64),
            "history_mask": spaces.MultiBinary(h),
        }
    )


def action_space(sim: ListRecSimulator) -> spaces.MultiDiscrete:
    """A slate: ``K`` item ids in ``1..N``."""
    k = sim.slate_size
    return spaces.MultiDiscrete(np.full(k, sim.n_items), start=np.ones(k, dtype=np.int64))


def _numpy_obs(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {
        "user_features": obs["user_features"].cpu().numpy(),
        "history": obs["history"].cpu().numpy(),
        "history_mask": obs["history_mask"].cpu().numpy().astype(np.int8),
    }


class ListRecVectorEnv(VectorEnv):
    """``num_envs`` users in one batched torch simulator."""

    metadata: ClassVar[dict[str, Any]] = {  # type: ignore[misc]  # an instance field in gymnasium
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int = 32,
        data: str | Path | None = None,
        urm: str | Path | None = None,
        config: EnvConfig | dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        tensors: bool = False,
        seed: int = 0,
        simulator: ListRecSimulator | None = None,
    ) -> None:
        self.sim = simulator or make_simulator(
            data, urm, num_envs=num_envs, cfg=_config(config), seed=seed, synthetic=synthetic
        )
        self.num_envs = self.sim.num_envs
        self.tensors = tensors
        self.single_observation_space = observation_space(self.sim)
        self.single_action_space = action_space(self.sim)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def _obs(self, obs: dict[str, torch.Tensor]) -> Any:
        if self.tensors:
            return {k: obs[k] for k in ("user_features", "history", "history_mask")}
        return _numpy_obs(obs)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """``seed``: slot ``i`` gets ``seed + i``; ``options={"starts": records}`` for evaluation."""
        if isinstance(seed, list):
            seed = seed[0]
        starts = (options or {}).get("starts")
        return self._obs(self.sim.reset(seed=seed, starts=starts)), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        out = self.sim.step(
            torch.as_tensor(np.asarray(actions) if not torch.is_tensor(actions) else actions)
        )
        done = out.done
        info: dict[str, Any] = {
            "response": out.response,
            "probs": out.probs,
            "next_obs": self._obs(out.next_obs),
            "episode": {"return": out.episode_return, "depth": out.episode_depth},
            "_episode": done,
        }
        if not self.tensors:
            info["response"] = out.response.cpu().numpy().astype(np.int8)
            info["probs"] = out.probs.cpu().numpy()
            info["episode"] = {k: v.cpu().numpy() for k, v in info["episode"].items()}
            info["_episode"] = done.cpu().numpy()
        if bool(done.any()):
            rows = torch.nonzero(done).flatten().tolist()
            final = np.full(self.num_envs, None, dtype=object)
            nxt = _numpy_obs(out.next_obs) if self.tensors else info["next_obs"]
            for i in rows:
                final[i] = {k: v[i] for k, v in nxt.items()}
            info["final_obs"] = final
            info["_final_obs"] = done.cpu().numpy()
        if self.tensors:
            return self._obs(out.obs), out.reward, out.terminated, out.truncated, info
        return (
            self._obs(out.obs),
            out.reward.cpu().numpy(),
            out.terminated.cpu().numpy(),
            out.truncated.cpu().numpy(),
            info,
        )


class ListRecEnv(gym.Env):
    """One user session (the simulator with a batch of one and no refill), for Gymnasium tooling.

    ``reset(seed=s)`` starts the stream that slot ``i`` of a vector env reset with ``s - i`` uses,
    and ``reset()`` without a seed continues it with the next episode — so a vector env of ``N``
    users equals ``N`` of these seeded ``s, s+1, ..., s+N-1``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}  # type: ignore[misc]

    def __init__(
        self,
        data: str | Path | None = None,
        urm: str | Path | None = None,
        config: EnvConfig | dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        cfg = _config(config).model_copy(update={"auto_reset": False})
        self.sim = make_simulator(data, urm, num_envs=1, cfg=cfg, seed=seed, synthetic=synthetic)
        self.observation_space = observation_space(self.sim)
        self.action_space = action_space(self.sim)
        self._needs_reset = True

    @staticmethod
    def _one(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in _numpy_obs(obs).items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        starts = (options or {}).get("starts")
        obs = self.sim.reset(
            seed=seed, starts=None if starts is None else torch.as_tensor([starts]).flatten()
        )
        self._needs_reset = False
        return self._one(obs), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One slate for the user; after ``terminated`` or ``truncated`` call :meth:`reset` first
        (Gymnasium's ``ResetNeeded`` otherwise)."""
        if self._needs_reset:
            raise ResetNeeded(
                "the episode has ended (or never started): call reset() before step()"
            )
        out = self.sim.step(torch.as_tensor(np.asarray(action)).reshape(1, -1))
        self._needs_reset = bool(out.terminated[0]) or bool(out.truncated[0])
        info = {
            "response": out.response[0].cpu().numpy().astype(np.int8),
            "probs": out.probs[0].cpu().numpy(),
        }
        return (
            self._one(out.next_obs),
            float(out.reward[0]),
            bool(out.terminated[0]),
            bool(out.truncated[0]),
            info,
        )
