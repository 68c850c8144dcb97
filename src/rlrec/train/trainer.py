"""One training loop for every offline objective (CleanRL-style: read it top to bottom).

``Trainer(cfg).fit()`` builds the networks (one, or the double-Q pair of P-SA2C Algorithm 1, or an
online net with a Polyak target), then for each optimiser step:

1. re-seeds the step's random streams from ``(seed, step)`` (dropout, negatives, network roles), so a
   resumed run ends exactly where an uninterrupted one does;
2. cuts the batch from the epoch's seeded permutation of training transitions;
3. picks main/target networks, samples negatives, computes the objective's loss;
4. stops with a clear error on a non-finite loss (the last good checkpoint stays);
5. steps the main network's Adam for the current phase (a fresh Adam per phase, as the reference code does);
6. every ``log_every`` steps logs the window's averages and checks them for divergence
   (:mod:`.stability`);
7. every ``eval_every`` steps evaluates the validation split, keeps the ``keep_top`` best
   checkpoints by ``select_metric`` (``best/`` and ``top/step_N/``, weights only) and writes a
   resumable checkpoint.

At the end the kept checkpoints are evaluated on the test split (the best one is the run's result)
and ``summary.json`` is written. Records go to the run's trackers (:mod:`.trackers`) and to the
progress display (:mod:`.progress`). ``--resume`` with a larger ``train.epochs``/``max_steps``
continues a finished run to the new budget (:meth:`Trainer._extend`).
Under ``torchrun`` each rank trains on a slice of every global batch (see :mod:`.distributed`).
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlrec import __version__
from rlrec.data.dataset import PreparedDataset
from rlrec.data.popularity import item_popularity
from rlrec.data.transitions import Transitions
from rlrec.device import keep_freed_memory, resolve_device, set_threads
from rlrec.errors import ConfigError, RlrecError
from rlrec.eval.evaluator import LinearScores, evaluate, metric_names
from rlrec.eval.metrics import degenerate_warning
from rlrec.eval.sampled import check_protocol
from rlrec.fsutil import atomic_write_json
from rlrec.models.encoders import build_encoder
from rlrec.models.network import QNetwork
from rlrec.objectives import LossInputs
from rlrec.objectives.base import QLearningConfig
from rlrec.objectives.ce_sampling import draw_candidates
from rlrec.objectives.functional import sample_negatives
from rlrec.objectives.sharding import BatchShard
from rlrec.seeding import derive_seed, generator, seed_everything
from rlrec.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_modules,
    restore_optimizer,
    save_checkpoint,
    save_weights,
)
from rlrec.train.clock import StepClock, window_means
from rlrec.train.config import TrainConfig
from rlrec.train.distributed import (
    World,
    average_gradients,
    barrier,
    init_world,
    shutdown,
    window_across,
)
from rlrec.train.lazy_adam import LazyAdam
from rlrec.train.progress import ProgressReporter
from rlrec.train.reporting import PROGRESS_KEYS
from rlrec.train.rundir import (
    budget_change,
    claim_run_dir,
    json_safe,
    record_budget,
    run_files,
)
from rlrec.train.stability import Flag, StabilityMonitor, q_value_bound
from rlrec.train.trackers import check_trackers, open_tracker
from rlrec.train.tracking import Tracker

CHECKPOINTS = "checkpoints"
BEST = "best"
TOP = "top"
RANKING_METRIC = re.compile(r"(hr|ndcg)_(click|purchase)@\d+|reward@\d+")
ITEMS = "items.parquet"
BUDGET = ("train.epochs", "train.max_steps")  # may grow on --resume


class TrainingDiverged(RlrecError):
    """The loss became NaN or infinite."""


def build_network(cfg: TrainConfig, n_items: int, state_size: int) -> QNetwork:
    """Encoder and the heads the objective needs (with ``train.sparse_items``: the lookups that
    give row-sparse gradients, :func:`sparse_parameters`)."""
    obj = cfg.objective
    net = QNetwork(
        build_encoder(cfg.encoder, n_items, state_size, mask_token=obj.mask_token),
        n_items,
        q_head=obj.needs_q_head,
        ce_head=obj.needs_ce_head,
        head_init=cfg.head_init,
        projection=obj.projection_dim,
    )
    if cfg.train.sparse_items:
        net.encoder.item_emb.sparse = True
        # the Q head is only read row by row with gradient, unless a CQL term takes all of it
        net.sparse_q = (
            net.q_head is not None and getattr(obj, "cql_variant", "sampled") == "sampled"
        )
        net.sparse_ce = net.ce_head is not None and obj.ce_negatives > 0
    return net


def sparse_parameters(net: QNetwork) -> list[torch.Tensor]:
    """The parameters whose gradients are row-sparse under ``train.sparse_items``: the item
    embedding, and the weights of the heads read only at a step's rows."""
    params = [net.encoder.item_emb.weight] if net.encoder.item_emb.sparse else []
    for head, sparse in ((net.q_head, net.sparse_q), (net.ce_head, net.sparse_ce)):
        if sparse and head is not None:
            params.append(head.weight)
    return params


class OptimizerPair:
    """A network's dense Adam and, under ``train.sparse_items``, the :class:`LazyAdam` of its
    row-sparse parameters, stepped together."""

    def __init__(self, dense: torch.optim.Optimizer, sparse: torch.optim.Optimizer | None) -> None:
        self.parts = [dense] if sparse is None else [dense, sparse]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts:
            opt.step()


def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for dense and row-sparse gradients alike: the global
    2-norm (a sparse gradient's repeated rows summed first), all scaled by ``max_norm / norm``
    when it is larger; returns the norm before clipping."""
    params = [p for p in params if p.grad is not None]
    grads = [g for p in params if (g := p.grad) is not None]
    if not any(g.is_sparse for g in grads):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    norms = [(g.coalesce().values() if g.is_sparse else g).norm() for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms))
    if math.isfinite(max_norm) and total > max_norm:
        for g in grads:
            g.mul_(max_norm / (float(total) + 1e-6))
    return total


Q_MAXIMA = frozenset({"q_abs_max"})  # logged values whose window is reduced by max over ranks


class Trainer:
    """Trains ``cfg.objective`` on ``cfg.data`` into the run directory ``cfg.out``."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        on_log: Callable[[int, int, str, dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_log(step, total_steps, kind, values)`` is called with every train/val record."""
        self.cfg = cfg
        self.on_log = on_log
        self.run_dir = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.world: World = init_world(self.device.type)
        if self.world.size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
        set_threads(cfg.train.num_threads)
        keep_freed_memory()
        if cfg.train.batch_size % self.world.size:
            raise ConfigError(
                f"train.batch_size {cfg.train.batch_size} is not divisible by {self.world.size} processes"
            )
        self.ds = PreparedDataset.load(cfg.data)
        self.state_size = cfg.state_size or self.ds.state_size
        self.n_items = self.ds.n_items
        check_select_metric(cfg)
        check_protocol(cfg.eval.protocol, self.n_items)
        check_trackers(cfg.train)
        self.claim = claim_run_dir(
            self.run_dir,
            cfg,
            "run",
            resume=resume,
            overwrite=overwrite,
            inputs=[cfg.data],
            lock=self.world.is_main,
            mutable=[*BUDGET, *(f"train.{k}" for k in PROGRESS_KEYS)],
        )
        self.claim.setup(lambda: self._setup(resume))

    def _setup(self, resume: bool) -> None:
        """Everything after the run directory is claimed: a failure here removes what it made."""
        cfg, obj = self.cfg, self.cfg.objective
        self.train_data = Transitions(
            self.ds.split("train"), self.state_size, self.ds.pad_id, device=self.device
        )
        self.steps_per_epoch = len(self.train_data) // cfg.train.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"train.batch_size {cfg.train.batch_size} exceeds the {len(self.train_data)} training transitions"
            )
        self._start_run_dir()
        self.run_dir = self.claim.work

        seed_everything(cfg.seed)
        n_nets = 2 if obj.double_q and self._xin_pair else 1
        self.nets = [
            build_network(cfg, self.n_items, self.state_size).to(self.device) for _ in range(n_nets)
        ]
        self.target: QNetwork | None = None
        if obj.double_q and not self._xin_pair:
            self.target = build_network(cfg, self.n_items, self.state_size).to(self.device)
            self.target.load_state_dict(self.nets[0].state_dict())
            self.target.requires_grad_(False)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

        self.total_steps = self._total(cfg.train.epochs, cfg.train.max_steps)
        self.beta = None
        if getattr(obj, "needs_beta", False):
            pop = item_popularity(self.ds, obj.pop_scope, obj.pop_smoothing)  # type: ignore[union-attr]
            self.beta = torch.as_tensor(pop, dtype=torch.float32, device=self.device)

        if cfg.train.sparse_items and (self.world.size > 1 or cfg.train.grad_clip_value):
            raise ConfigError(
                "train.sparse_items trains in one process and without train.grad_clip_value "
                "(row-sparse gradients are not averaged across processes here)"
            )
        if cfg.train.sparse_moments != "float32" and not cfg.train.sparse_items:
            raise ConfigError("train.sparse_moments applies to train.sparse_items: set it true")
        self.ce_probs = None  # q of the sampled-softmax candidates (popularity, in-batch)
        if obj.ce_negatives and obj.ce_sampler != "uniform":
            pop = item_popularity(self.ds, "train", 1.0)
            self.ce_probs = torch.as_tensor(pop, dtype=torch.float64)
        if obj.ce_sampler == "in_batch" and obj.ce_negatives > cfg.train.batch_size:
            raise ConfigError(
                f"objective.ce_negatives ({obj.ce_negatives}) > train.batch_size "
                f"({cfg.train.batch_size}): in_batch candidates come from the batch"
            )

        self._eval_data: dict[str, Transitions] = {}
        self._eval_beta = ng_off_beta(self.ds, cfg)
        self._eval_pop = eval_popularity(self.ds)
        self.step = 0
        self.stopped = False  # stopped early (patience, a stability flag) at ``step``
        self.best: dict[str, Any] = {"metric": None, "step": None, "evals_since": 0}
        self.history: list[dict[str, float]] = []  # step + ranking metrics of every validation
        self.degenerate: list[dict[str, Any]] = []  # evaluations whose target scores were tied
        self.monitor = StabilityMonitor(cfg.train.stability, self._q_bound())
        self.progress: ProgressReporter | None = None  # while fit() runs
        self.tracker: Tracker | None = None
        if self.world.is_main:
            self.tracker = open_tracker(
                self.run_dir, cfg.train, cfg.model_dump(mode="json"), cfg.label
            )
        if resume:
            self._resume()

    # ------------------------------------------------------------------ set-up helpers

    @property
    def _xin_pair(self) -> bool:
        obj = self.cfg.objective
        return isinstance(obj, QLearningConfig) and obj.double_q_mode == "xin_pair"

    def _total(self, epochs: int, max_steps: int | None) -> int:
        """Optimiser steps of a budget of ``epochs`` epochs, capped by ``max_steps``."""
        total = epochs * self.steps_per_epoch
        return min(total, max_steps) if max_steps else total

    def _q_bound(self) -> float | None:
        obj = self.cfg.objective
        if not isinstance(obj, QLearningConfig):
            return None
        rewards = [obj.r_click, obj.r_buy]
        if obj.n_negatives:
            rewards.append(getattr(obj, "r_negative", 0.0))
        return q_value_bound(rewards, obj.gamma)

    def _start_run_dir(self) -> None:
        """A new run's config, ``run.json`` and item map (rank 0, after every rank checked the
        directory)."""
        barrier(self.world)
        meta = {
            "n_items": self.n_items,
            "state_size": self.state_size,
            "pad_id": self.ds.pad_id,
            "dataset": str(self.cfg.data),
            "dataset_content_hash": self.ds.manifest.get("content_hash"),
        }
        items = self.ds.items.select("item", "item_id")
        self.claim.start(
            run_files(self.cfg, meta, lambda d: items.write_parquet(d / ITEMS)),
        )
        barrier(self.world)

    def _optimizer(self, net: int, phase: int) -> OptimizerPair:
        """The Adam of network ``net`` for phase ``phase``, created fresh on first use."""
        name = f"net{net}.phase{phase}"
        if name not in self.optimizers:
            lr = self.cfg.objective.phases()[phase].lr
            sparse = sparse_parameters(self.nets[net])
            params = [p for p in self.nets[net].parameters() if all(p is not q for q in sparse)]
            # foreach: the same arithmetic as torch's per-parameter loop (bit for bit), in fewer
            # kernel calls; fused: one kernel, different rounding (train.fused_adam)
            kernel: dict[str, Any] = (
                {"fused": True} if self.cfg.train.fused_adam else {"foreach": True}
            )
            self.optimizers[name] = torch.optim.Adam(params, lr=lr, **kernel)
            if sparse:  # lazy Adam: only the rows a step touched move (docs/offline.md)
                self.optimizers[f"{name}.sparse"] = LazyAdam(
                    sparse,
                    lr=lr,
                    moment_dtype=getattr(torch, self.cfg.train.sparse_moments),
                    seed=derive_seed(self.cfg.seed, name),
                )
        return OptimizerPair(self.optimizers[name], self.optimizers.get(f"{name}.sparse"))

    def _modules(self) -> dict[str, torch.nn.Module]:
        modules: dict[str, torch.nn.Module] = {f"net{i}": n for i, n in enumerate(self.nets)}
        if self.target is not None:
            modules["target"] = self.target
        return modules

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop), then evaluate the best checkpoint on test."""
        cfg = self.cfg.train
        window: list[dict[str, torch.Tensor]] = []  # this log window's per-step values
        clock = StepClock(self.device)
        step0 = self.step
        order, order_epoch = None, -1
        stop = self.stopped  # a resumed run that had stopped early stays stopped
        self.progress = ProgressReporter(
            cfg.progress if self.world.is_main else "none",
            cfg.progress_every or cfg.log_every,
            self.cfg.label,
            val_key=cfg.select_metric,
            per_step=(cfg.batch_size, "transitions"),
        )
        self.progress.start(self.step, self.total_steps)
        if self.history:  # a resumed run shows its latest validation from the start
            self.progress.record("val", int(self.history[-1]["step"]), self.history[-1])
        try:
            while self.step < self.total_steps and not stop:
                epoch, index = divmod(self.step, self.steps_per_epoch)
                if epoch != order_epoch:
                    gen = generator(self.cfg.seed, "epoch", epoch)
                    order = torch.randperm(len(self.train_data), generator=gen).to(self.device)
                    order_epoch = epoch
                assert order is not None
                window.append(
                    self._train_step(order[index * cfg.batch_size : (index + 1) * cfg.batch_size])
                )
                self.step += 1
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    clock.lap("train")
                    train_s = clock.take_window()
                    values = window_across(window_means(window), self.world, Q_MAXIMA)
                    self._log(
                        "train",
                        {
                            **values,
                            "transitions_per_s": len(window) * cfg.batch_size / train_s,
                            "epoch": self.step / self.steps_per_epoch,
                        },
                    )
                    window = []
                    stop = self._agree(self._flag(self.monitor.check_train(self.step, values)))
                if self.step % cfg.eval_every == 0 or self.step == self.total_steps:
                    clock.lap("train")
                    stop = self._validate_and_checkpoint(stop, clock)
                self.progress.advance(self.step)
            clock.lap("train")
            summary = self._finish(clock, self.step - step0)
            self._close_tracker()
            if self.world.is_main:
                self.claim.commit()
                self.run_dir = self.claim.work
        except BaseException:
            self._close_tracker(failed=True)
            self.claim.fail()
            raise
        finally:
            self.progress.close()
            self.claim.close()
            shutdown(self.world)
        return summary

    def _close_tracker(self, failed: bool = False) -> None:
        if self.tracker is not None:
            self.tracker.close(failed)
            self.tracker = None

    def _train_step(self, global_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.cfg.objective
        step = self.step
        # Every process seeds rank 0's streams and draws for the whole global batch (dropout masks,
        # negatives, augmentations), so each sample's randomness does not depend on the split.
        torch.manual_seed(derive_seed(cfg.seed, "dropout", step, 0))
        gen = generator(cfg.seed, "step", step)
        phase = obj.phase_index(step)
        main_index = int(torch.randint(0, 2, (1,), generator=gen)) if len(self.nets) == 2 else 0
        main = self.nets[main_index]
        target = self.nets[1 - main_index] if len(self.nets) == 2 else self.target

        world = self.world
        local = global_pos.shape[0] // world.size
        start, stop = world.rank * local, (world.rank + 1) * local
        exclude_history = bool(getattr(obj, "exclude_history", False))
        full = None
        if world.size > 1 or (obj.n_negatives and exclude_history):
            full = self.train_data.batch(global_pos)
        shard = None
        if world.size > 1:
            assert full is not None  # fetched above whenever the batch is sharded
            shard = BatchShard(full, start, stop, world.rank, world.size)
        negatives = None
        if obj.n_negatives or obj.ce_negatives:
            actions = self.train_data.items[global_pos]  # the global batch's logged actions
        if obj.n_negatives:
            exclude = full.state if exclude_history and full is not None else None
            negatives = sample_negatives(actions, self.n_items, obj.n_negatives, gen, exclude)
            negatives = negatives[start:stop]
        ce_candidates = None
        if obj.ce_negatives:
            ce_candidates = draw_candidates(
                obj.ce_sampler,
                obj.ce_negatives,
                self.n_items,
                actions,
                self.ce_probs,
                generator(cfg.seed, "ce_negatives", step),
                obj.ce_logq,
                self.device,
            )
        if world.size == 1 and full is not None:
            batch = full  # the whole batch is this process's: gathered once
        else:
            batch = self.train_data.batch(global_pos[start:stop])

        main.train()
        rng = generator(cfg.seed, "objective", step, 0)
        stats = step % cfg.train.stability.catalogue_stats_every == 0
        inputs = LossInputs(
            main, target, batch, negatives, step, self.beta, rng, shard, stats, ce_candidates
        )
        with inputs.stacked(1):
            out = obj.compute_loss(inputs)
        opt = self._optimizer(main_index, phase)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        loss = average_gradients(main, world, out.loss.detach())
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at step {step} ({obj.kind}); {self._last_good()}. "
                "Try a lower objective.lr, train.grad_clip_norm, or td_loss_scale."
            )
        logs = dict(out.logs)
        logs["loss"] = loss
        # The norm before any clipping is logged every step (a divergence symptom).
        max_norm = self.cfg.train.grad_clip_norm or math.inf
        logs["grad_norm"] = clip_grad_norm(main.parameters(), max_norm)
        if self.cfg.train.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(main.parameters(), self.cfg.train.grad_clip_value)
        opt.step()
        if self.target is not None:
            tau = obj.polyak_tau  # type: ignore[union-attr]
            with torch.no_grad():
                for p_t, p in zip(self.target.parameters(), main.parameters(), strict=True):
                    p_t.lerp_(p, tau)
        return logs

    # ------------------------------------------------------------------ evaluation, checkpoints

    def eval_net(self) -> QNetwork:
        return self.nets[min(self.cfg.eval_network, len(self.nets) - 1)]

    def evaluate_split(self, split: str) -> dict[str, float]:
        """Metrics of the evaluated network on ``split`` (docs/offline.md, Evaluation)."""
        if split not in self._eval_data:
            self._eval_data[split] = Transitions(
                self.ds.split(split), self.state_size, self.ds.pad_id, device=self.device
            )
        data = self._eval_data[split]
        return evaluate_network(self.eval_net(), self.cfg, data, self._eval_beta, self._eval_pop)

    def _flag(self, flags: list[Flag]) -> bool:
        """Log new stability flags; True when the run should stop on them (this rank's view)."""
        for flag in flags:
            self._log("stability", flag.record())
        return bool(flags) and self.cfg.train.stability.stop_on_flag

    def _agree(self, stop: bool) -> bool:
        """Rank 0's stop decision, shared with every process of a data-parallel run."""
        if self.world.size > 1:
            flag = torch.tensor([int(stop)], device=self.device)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    def _kept_steps(self) -> set[int]:
        """Steps of the ``keep_top`` best validations (by ``select_metric`` or by every metric)."""
        cfg = self.cfg.train
        keys = [cfg.select_metric]
        if cfg.keep_top_by == "each_metric":
            keys = sorted({k for h in self.history for k in h if RANKING_METRIC.fullmatch(k)})
        kept: set[int] = set()
        for key in keys:
            scored = [h for h in self.history if key in h and not math.isnan(h[key])]
            scored.sort(key=lambda h: (-h[key], h["step"]))  # ties: the earlier checkpoint
            kept.update(int(h["step"]) for h in scored[: cfg.keep_top])
        return kept

    def _validate_and_checkpoint(self, stop: bool, clock: StepClock) -> bool:
        """Evaluate on validation, update the best checkpoint, save; returns True to stop early
        (``stop``: the training window already asked to). The decision is saved with the
        checkpoint, so a run resumed from it stops there too."""
        if self.world.is_main:
            metrics = self.evaluate_split("val")
            clock.lap("validation")
            key = self.cfg.train.select_metric
            self._log("val", metrics)
            self._check_degenerate("val", metrics)
            value = metrics[key]
            best = self.best["metric"]
            stop = self._flag(self.monitor.check_val(self.step, value, best)) or stop
            improved = not math.isnan(value) and (best is None or value > best)
            if improved:
                self.best.update(metric=value, step=self.step, evals_since=0)
            else:
                self.best["evals_since"] += 1
            self.history.append(
                {"step": self.step}
                | {k: v for k, v in metrics.items() if k == key or RANKING_METRIC.fullmatch(k)}
            )
            # Weights only (serving needs no optimiser state), written before the resumable
            # checkpoint: a crash in between replays this evaluation and rewrites them.
            weights = {"step": self.step, "rlrec_version": __version__, "val": metrics}
            if improved:
                save_weights(self.run_dir / BEST, self._modules(), weights)
            self._update_top(weights)
            patience = self.cfg.train.patience
            stop = stop or (patience is not None and self.best["evals_since"] >= patience)
            save_checkpoint(
                self.run_dir / CHECKPOINTS,
                self.step,
                self._modules(),
                self.optimizers,
                {
                    "best": self.best,
                    "history": self.history,
                    "degenerate": self.degenerate,
                    "stability": self.monitor.state_dict(),
                    "rlrec_version": __version__,
                    "val": metrics,
                    "stopped": stop,
                },
                keep_last=self.cfg.train.keep_last,
            )
        stop = self._agree(stop)
        clock.lap("checkpoint")  # other ranks: waiting for rank 0's evaluation and checkpoint
        return stop

    def _update_top(self, weights: dict[str, Any]) -> None:
        """Save this step's weights if it is among the kept ones; drop those no longer kept."""
        root = self.run_dir / TOP
        kept = self._kept_steps()
        if self.step in kept:
            save_weights(root / f"step_{self.step:09d}", self._modules(), weights)
        for path in root.glob("step_*"):
            if int(path.name[5:]) not in kept:
                shutil.rmtree(path)

    def _last_good(self) -> str:
        """Where a failed run can be picked up again (for its error message)."""
        if self.claim.replacing:
            return f"nothing was replaced: {self.claim.out} is as it was"
        last = latest_checkpoint(self.run_dir / CHECKPOINTS)
        return f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"

    def _resume(self) -> None:
        path = latest_checkpoint(self.run_dir / CHECKPOINTS)
        if path is None:  # killed before the first checkpoint: start from scratch
            self._extend()
            if self.tracker is not None:
                self.tracker.truncate_after(0)
            return
        model, optim, state = load_checkpoint(path)
        load_modules(self._modules(), model, path)
        self.step = int(state["step"])
        self.stopped = bool(state.get("stopped", False))
        self._extend()
        self.best = state["best"]
        self.history = state.get("history", [])
        self.degenerate = state.get("degenerate", [])
        self.monitor.load_state_dict(state.get("stability", {}))
        for kept in (self.run_dir / TOP).glob("step_*"):  # written after the checkpoint: replayed
            if int(kept.name[5:]) > self.step:
                shutil.rmtree(kept)
        for name, groups in state["optimizers"].items():
            net, phase = name.split(".")[:2]  # "net0.phase1", or its lazy part "net0.phase1.sparse"
            self._optimizer(int(net[3:]), int(phase[5:]))  # creates both parts
            restore_optimizer(self.optimizers[name], name, optim, groups)
        if self.tracker is not None:  # the test record of a finished run is logged again
            self.tracker.truncate_after(self.step, ends=("test",))

    def _extend(self) -> None:
        """A resumed run whose ``train.epochs``/``max_steps`` changed trains to the new budget from
        its latest checkpoint (at ``self.step``): refused if the run stopped early or has already
        passed the new end; recorded in ``run.json`` (``budget_history``) and ``config.yaml``."""
        change = budget_change(self.run_dir, self.cfg, BUDGET)
        if not change:
            return
        keys = ", ".join(change)
        if self.stopped:
            raise ConfigError(
                f"{self.run_dir}: the run stopped early at step {self.step} (patience or a "
                f"stability flag); a larger {keys} would not train it further"
            )
        if self.total_steps < self.step:
            raise ConfigError(
                f"{keys}: {self.total_steps} steps, fewer than the {self.step} the run has "
                "already trained; resume with at least that budget"
            )
        old = {k: old for k, (old, _) in change.items()}
        t = self.cfg.train
        old_total = self._total(
            old.get("train.epochs", t.epochs), old.get("train.max_steps", t.max_steps)
        )
        if self.world.is_main:
            record_budget(self.run_dir, self.cfg, change, self.step, (old_total, self.total_steps))

    def _finish(self, clock: StepClock, steps: int) -> dict[str, Any]:
        """Test the kept checkpoints; write ``summary.json`` (this session's time: training alone
        for ``transitions_per_s``, validation and checkpoints apart, all three per epoch)."""
        train_s = clock.seconds["train"]
        summary: dict[str, Any] = {}
        if self.world.is_main:
            top = self._evaluate_top()
            best = next((t for t in top if t["step"] == self.best["step"]), None)
            test = best["test"] if best is not None else self.evaluate_split("test")
            self._check_degenerate("test", test)
            self._log("test", test)
            summary = {
                "objective": self.cfg.objective.kind,
                "encoder": self.cfg.encoder.kind,
                "seed": self.cfg.seed,
                "steps": self.step,
                "steps_per_epoch": self.steps_per_epoch,
                "best_step": self.best["step"],
                "select_metric": self.cfg.train.select_metric,
                "eval_protocol": self.cfg.eval.protocol,
                "best_val": self.best["metric"],
                "test": test,
                "top": top,
                "stability": {
                    "flags": [vars(f) for f in self.monitor.flags],
                    "flagged": bool(self.monitor.flags),
                },
                "degenerate_scores": {
                    "flagged": bool(self.degenerate),
                    "evaluations": self.degenerate,
                },
                "train_seconds_this_session": train_s,
                "validation_seconds_this_session": clock.seconds["validation"],
                "checkpoint_seconds_this_session": clock.seconds["checkpoint"],
                "seconds_per_epoch": clock.total() / steps * self.steps_per_epoch
                if steps
                else None,
                "transitions_per_s": steps * self.cfg.train.batch_size / train_s if steps else None,
                "world_size": self.world.size,
                "device": str(self.device),
            }
            atomic_write_json(self.run_dir / "summary.json", json_safe(summary))
        barrier(self.world)
        return summary

    def _evaluate_top(self) -> list[dict[str, Any]]:
        """Test metrics of every kept checkpoint, best validation score first."""
        entries: list[dict[str, Any]] = []
        by_step = {int(h["step"]): h for h in self.history}
        for path in sorted((self.run_dir / TOP).glob("step_*")):
            model, _, _ = load_checkpoint(path)
            load_modules(self._modules(), model, path)
            step = int(path.name[5:])
            val = {k: v for k, v in by_step.get(step, {}).items() if k != "step"}
            entries.append({"step": step, "val": val, "test": self.evaluate_split("test")})
        key = self.cfg.train.select_metric
        entries.sort(key=lambda e: (-e["val"].get(key, -math.inf), e["step"]))
        return entries

    def _check_degenerate(self, split: str, metrics: dict[str, float]) -> None:
        """Warn (a ``warning`` record, and ``degenerate_scores`` in the summary) when more than 1 %
        of the evaluated targets are tied with another item: a constant or collapsed model."""
        message = degenerate_warning(metrics)
        if message is None:
            return
        share = metrics["tied_target_share"]
        self.degenerate.append({"split": split, "step": self.step, "tied_target_share": share})
        self._log("warning", {"message": f"{split} at step {self.step}: {message}"})

    def _log(self, kind: str, values: dict[str, Any]) -> None:
        if self.tracker is not None:
            self.tracker.log(kind, self.step, values)
        if self.progress is not None:
            self.progress.record(kind, self.step, values)
        if self.on_log is not None and self.world.is_main:
            self.on_log(
                self.step,
                self.total_steps,
                kind,
                {k: v if isinstance(v, str) else float(v) for k, v in values.items()},
            )


def ng_off_beta(ds: PreparedDataset, cfg: TrainConfig) -> np.ndarray:
    """The item popularity β of ``NG_off`` (P-SA2C Eq. 11) under ``cfg.eval``'s options."""
    return item_popularity(ds, cfg.eval.ng_off_pop_scope, cfg.eval.ng_off_pop_smoothing)


def eval_popularity(ds: PreparedDataset) -> np.ndarray:
    """Training-split item probabilities with add-one smoothing: the distribution of ``pop100``'s
    negatives and the ``p(i)`` of novelty (docs/offline.md, Evaluation)."""
    return item_popularity(ds, "train", 1.0)


def check_select_metric(cfg: TrainConfig) -> None:
    """``train.select_metric`` must be one of the quality metrics validation computes (not a count
    or the tie share; checked before the run directory is touched)."""
    names = {
        k
        for k in metric_names(cfg.eval, ng_off=True)
        if not k.startswith("n_") and k != "tied_target_share"
    }
    if cfg.train.select_metric not in names:
        raise ConfigError(
            f"train.select_metric '{cfg.train.select_metric}' is not a metric "
            f"(have: {', '.join(sorted(names))})"
        )


def evaluate_network(
    net: QNetwork,
    cfg: TrainConfig,
    data: Transitions,
    beta: np.ndarray | None,
    popularity: np.ndarray | None = None,
) -> dict[str, float]:
    """Rank the full catalogue (or ``cfg.eval.protocol``'s sampled candidates) with
    ``cfg.objective.eval_head`` for every event of ``data``; ``beta``: NG_off's β;
    ``popularity``: :func:`eval_popularity` (for ``pop100`` and novelty)."""
    head = cfg.objective.eval_head
    was_training = net.training
    net.eval()
    try:
        layer = net.head_layer(head)
        scores = LinearScores(net, layer.weight, layer.bias)
        return evaluate(scores, data, cfg.eval, net.n_items, beta, popularity)
    finally:
        net.train(was_training)
