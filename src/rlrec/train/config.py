"""The training config: data, encoder, objective, loop, evaluation (one YAML per experiment)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from rlrec.config import StrictModel
from rlrec.eval.evaluator import EvalConfig
from rlrec.models.encoders.base import EncoderConfig
from rlrec.models.network import HeadInit
from rlrec.objectives import Objective
from rlrec.objectives.supervised import SupervisedConfig
from rlrec.train.reporting import ReportingOptions
from rlrec.train.stability import StabilityConfig


class LoopConfig(ReportingOptions):
    """The optimisation loop (defaults: P-SA2C §4.1.4).

    Batches are drawn from a seeded permutation of the training transitions per epoch; the last
    partial batch is dropped, so an epoch is ``floor(#transitions / batch_size)`` steps, as in the
    reference. ``eval_every`` counts optimiser steps; the validation split selects the checkpoint
    (``select_metric``, higher is better); the ``keep_top`` best validation checkpoints are kept and
    evaluated on the test split at the end (the best one is the run's result; the others serve
    P-CCQL's "top 5 checkpoints" protocol, §4.1). ``stability`` flags divergence
    (:mod:`.stability`). Trackers and progress: :class:`~rlrec.train.reporting.ReportingOptions`.
    ``--resume`` may raise ``epochs``/``max_steps`` of a finished run to train it further
    (docs/offline.md, Resuming).
    """

    batch_size: int = Field(256, ge=1)
    epochs: int = Field(50, ge=1)
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many steps (overrides epochs)"
    )
    eval_every: int = Field(4000, ge=1)
    log_every: int = Field(200, ge=1)
    keep_last: int = Field(2, ge=1, description="resumable checkpoints kept")
    select_metric: str = "ndcg_purchase@10"
    keep_top: int = Field(
        5,
        ge=1,
        description="validation checkpoints kept (weights) and evaluated on test at the end",
    )
    keep_top_by: Literal["select_metric", "each_metric"] = Field(
        "select_metric",
        description="rank checkpoints by select_metric, or keep the top keep_top of every ranking "
        "metric (needed for P-CCQL's per-metric top-5 protocol)",
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without improvement"
    )
    grad_clip_norm: float | None = Field(None, gt=0)
    grad_clip_value: float | None = Field(
        None, gt=0, description="element-wise clamp (CCQL code: 1.0)"
    )
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads (default: torch's, capped by the CPUs this process may use)",
    )
    fused_adam: bool = Field(
        False,
        description="torch's fused Adam kernel: the same update, faster, but rounded differently "
        "(weights agree to ~1e-6, not bit for bit, with the default per-parameter arithmetic)",
    )
    sparse_items: bool = Field(
        False,
        description="row-sparse gradients for the item embedding and the heads' rows a step "
        "touches, updated by a lazy Adam (rlrec.train.lazy_adam): a step's cost is set by the "
        "batch and its sampled items, not by the catalogue (docs/offline.md)",
    )
    sparse_moments: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="storage of the lazy Adam's moments under sparse_items: bfloat16 halves the "
        "optimiser's memory for the item rows (float32 arithmetic, stochastic rounding: exact in "
        "expectation; seeded)",
    )
    stability: StabilityConfig = StabilityConfig()


class TrainConfig(StrictModel):
    """``rlrec train`` settings. ``data`` is a prepared dataset directory; ``out`` the run directory."""

    data: Path
    out: Path
    seed: int = 0
    device: str = "auto"
    state_size: int | None = Field(
        None, ge=1, description="history window (default: the dataset's)"
    )
    name: str | None = Field(
        None, description="label of the run in reports (default: method/encoder)"
    )
    head_init: HeadInit = "glorot"
    eval_network: Literal[0, 1] = Field(
        0, description="which net of the double-Q pair is evaluated (the reference: the first)"
    )
    encoder: EncoderConfig = EncoderConfig()
    objective: Objective = SupervisedConfig()
    train: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def label(self) -> str:
        """The run's name in reports, trackers and progress: ``name``, else method/encoder."""
        return self.name or f"{self.objective.kind}/{self.encoder.kind}"
