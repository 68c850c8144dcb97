"""The run config of ``rlrec sim train``: data and user-response models, simulator, agent, loop and
evaluation (one YAML per experiment; every value is written back into the run directory).

``preset: hac_code_parity`` fills in, under whatever keys are given explicitly, every parity flag that
restores the reference code's behaviour (docs/online.md): reward cost 0.1 and URM dropout while
simulating (env), and for the agent the inverted terminal mask, stale buffer states, uniform
non-negative noise with one coin per batch, dropout while acting, the last-item padding lookup, the
``sasrec_hac_code`` policy and replayed A2C. ``paper`` (default) leaves the corrected defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from rlrec.config import StrictModel, deep_merge
from rlrec.online.agents import CONFIG_OF, AgentSpec, HACConfig
from rlrec.sim.env import EnvConfig
from rlrec.train.reporting import ReportingOptions
from rlrec.train.stability import StabilityConfig

ENV_PARITY: dict[str, Any] = {"zero_reward_cost": 0.1, "urm_legacy_dropout": True}


class LoopConfig(ReportingOptions):
    """The online loop (defaults: P-HAC A.3, §3.1.4).

    Each iteration takes one step of ``num_envs`` users and then ``updates_per_step`` updates on
    ``batch_size`` transitions. Replay agents first fill the buffer with ``prefill`` transitions
    (``hac_eps1``: the reference's ε = 1 acting, every ``Z`` replaced by noise; ``uniform_slate``:
    uniformly random slates). ``eval_every`` iterations the policy is evaluated in the validation
    environment and a resumable checkpoint is written (a multiple of ``log_every``). Trackers and
    progress: :class:`~rlrec.train.reporting.ReportingOptions` (TensorBoard off by default here).
    ``--resume`` may raise ``iterations`` of a finished run to train it further (docs/online.md).
    """

    iterations: int = Field(50_000, ge=1)
    num_envs: int = Field(32, ge=1)
    batch_size: int = Field(64, ge=1)
    updates_per_step: int = Field(1, ge=1)
    buffer_size: int = Field(100_000, ge=1)
    prefill: int = Field(2_000, ge=0)
    prefill_policy: Literal["hac_eps1", "uniform_slate"] = "hac_eps1"
    log_every: int = Field(100, ge=1)
    eval_every: int = Field(2_500, ge=1)
    keep_last: int = Field(1, ge=1, description="resumable checkpoints kept")
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads (default: torch's, capped by the CPUs this process may use)",
    )
    tensorboard: bool = Field(
        False, description="with trackers unset: also TensorBoard, when it is installed"
    )
    stability: StabilityConfig = StabilityConfig(val_drop=None)

    @model_validator(mode="after")
    def _aligned(self) -> LoopConfig:
        if self.eval_every % self.log_every:
            raise ValueError(
                f"eval_every ({self.eval_every}) must be a multiple of log_every ({self.log_every})"
            )
        return self


class EvalConfig(StrictModel):
    """The evaluation protocol (P-HAC §3.1.4; docs/online.md).

    ``val_users`` start records are held out of the training environment's pool (same URM): every
    ``eval_every`` iterations the policy runs once from each of them, and the best mean total reward
    selects the checkpoint. At the end the selected and the last policies run once from each of
    ``users`` start records of ``start_split`` in the evaluation environment (URM ``eval_urm``).
    All runs use common random numbers keyed by ``seed`` and the start record; ``policy: greedy``
    acts without noise and takes the top-K (``as_trained`` keeps the training exploration).
    """

    users: int = Field(3_200, ge=1)
    val_users: int = Field(320, ge=0)
    start_split: Literal["test", "all", "train"] = "test"
    batch_size: int = Field(256, ge=1, description="users simulated together")
    seed: int = 0
    policy: Literal["greedy", "as_trained"] = "greedy"


class OnlineTrainConfig(StrictModel):
    """``rlrec sim train`` settings. ``data``: a list dataset (``rlrec sim prepare``); ``urm``: the
    training environment's URM (default: the dataset's planted one, synthetic data only);
    ``eval_urm``: the evaluation environment's URM (default: ``urm``); ``out``: the run directory.
    ``device`` governs the networks and all simulators."""

    data: Path
    out: Path
    urm: Path | None = None
    eval_urm: Path | None = None
    name: str | None = Field(None, description="label of the run in tables (default: agent kind)")
    seed: int = 0
    device: str = "auto"
    preset: Literal["paper", "hac_code_parity"] = "paper"
    env: EnvConfig = EnvConfig()
    agent: AgentSpec = HACConfig()
    train: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") != "hac_code_parity":
            return data
        agent = data.get("agent") or {}
        if not isinstance(agent, dict):
            return data
        kind = agent.get("kind", "hac")
        parity = CONFIG_OF[kind].parity() if kind in CONFIG_OF else {}
        env = data.get("env") or {}
        return {
            **data,
            "env": deep_merge(ENV_PARITY, env) if isinstance(env, dict) else env,
            "agent": deep_merge(parity, agent),
        }

    @model_validator(mode="after")
    def _env_settings_a_run_fixes(self) -> OnlineTrainConfig:
        """A run's simulators live on the run's ``device`` and refill finished sessions with new
        users; a different ``env`` setting would be ignored, so it is refused."""
        if self.env.device not in ("auto", self.device):
            raise ValueError(
                f"env.device '{self.env.device}' differs from the run's device '{self.device}': "
                "set 'device' (it places the networks and every simulator)"
            )
        if not self.env.auto_reset:
            raise ValueError(
                "env.auto_reset must be true for training: each finished session is replaced by "
                "a new user in the same step"
            )
        return self

    @model_validator(mode="after")
    def _rollouts_fit_checkpoints(self) -> OnlineTrainConfig:
        m = getattr(self.agent, "rollout_length", 1)
        if self.train.eval_every % m:
            raise ValueError(
                f"train.eval_every ({self.train.eval_every}) must be a multiple of the agent's "
                f"rollout_length ({m}), so checkpoints fall between rollouts"
            )
        return self

    @property
    def label(self) -> str:
        return self.name or self.agent.kind
