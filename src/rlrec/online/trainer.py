"""One online training loop for every agent (P-HAC Algorithm 1, A.3; CleanRL-style: read it top to bottom).

``OnlineTrainer(cfg).fit()`` builds the training, validation and evaluation simulators
(:mod:`.worlds`) and the agent, then

1. replay agents: fills the buffer with ``prefill`` transitions acting with ε = 1 (every ``Z``
   replaced by noise) and resets the users;
2. for each iteration ``i``: re-seeds dropout and draws an iteration generator from ``(seed, i)``;
   the agent acts on the ``num_envs`` users (exploring; Offline SL greedily); the simulator steps;
   finished sessions are recorded; the transitions go to the buffer (replay), straight to the
   update (on-policy A2C) or nowhere (Offline SL, which learns from logged records);
   ``updates_per_step`` updates; a non-finite loss stops the run with a clear error (the last
   checkpoint stays);
3. every ``log_every`` iterations: window averages of the losses, the training sessions' reward,
   depth and reward variance, divergence flags (:mod:`rlrec.train.stability`), and an ``episodes``
   record listing every finished training session (iteration, slot, total reward, depth), from which
   :mod:`.training_report` rebuilds the reference code's training-time report (docs/online.md);
4. every ``eval_every`` iterations: the validation evaluation (best mean total reward → ``best/``)
   and a resumable checkpoint: networks, optimisers, replay buffer and simulator state, so a run
   resumed with ``--resume`` ends exactly where an uninterrupted one does.

At the end the ``last/`` and ``best/`` weights are evaluated in the evaluation environment (P-HAC §3.1.4) and
``summary.json`` is written. Layout: ``config.yaml``, ``run.json``, ``metrics.jsonl`` (+ CSVs),
``checkpoints/``, ``best/``, ``last/``, ``summary.json``. Records also go to the trackers of
``train.trackers`` and to the progress display (``train.progress``). ``--resume`` with a larger
``train.iterations`` continues a finished run to the new budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlrec import __version__
from rlrec.device import keep_freed_memory, resolve_device, set_threads
from rlrec.errors import ConfigError
from rlrec.fsutil import atomic_write_json
from rlrec.online.agents import Action
from rlrec.online.buffer import Batch, ReplayBuffer
from rlrec.online.config import OnlineTrainConfig
from rlrec.online.evaluate import BEST, LAST, evaluate_policy, load_policy
from rlrec.online.policy import sample_slate
from rlrec.online.training_report import EPISODE_FIELDS, EPISODES
from rlrec.online.worlds import build_worlds
from rlrec.seeding import derive_seed, generator, seed_everything
from rlrec.sim.dataset import ListTensors
from rlrec.sim.env import StepOutput
from rlrec.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_modules,
    restore_optimizer,
    save_checkpoint,
    save_weights,
)
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
from rlrec.train.trainer import TrainingDiverged

CHECKPOINTS = "checkpoints"
BUDGET = ("train.iterations",)  # may grow on --resume
TRAIN_FIELDS = ("train_total_reward", "critic_loss", "actor_loss", "behavior_loss")
OnLog = Callable[[int, int, str, dict[str, Any]], None]


class TensorStore(nn.Module):
    """Named tensors as registered buffers, so the checkpoint functions save and load them."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name, value in tensors.items():
            self.register_buffer(name, value)

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.named_buffers())


def transitions(obs: dict[str, torch.Tensor], action: Action, out: StepOutput) -> Batch:
    """The ``B`` transitions of one simulator step (``next_history``: the same users, pre-refill)."""
    return Batch(
        user=obs["user"],
        history=obs["history"],
        next_history=out.next_obs["history"],
        state=action.state,
        hyper=action.hyper,
        slate=action.slate,
        response=out.response.float(),
        reward=out.reward,
        terminated=out.terminated,
        truncated=out.truncated,
    )


class OnlineTrainer:
    """Trains ``cfg.agent`` in the simulator of ``cfg`` into the run directory ``cfg.out``."""

    def __init__(
        self,
        cfg: OnlineTrainConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        on_log: OnLog | None = None,
    ) -> None:
        """``on_log(iteration, total, kind, values)`` is called with every train/val/eval record."""
        self.cfg = cfg
        self.on_log = on_log
        self.run_dir = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        set_threads(cfg.train.num_threads)
        keep_freed_memory()
        self.worlds = build_worlds(cfg)
        assert self.worlds.train is not None
        self.sim = self.worlds.train
        self.source = cfg.agent.data_source
        self.logged: ListTensors | None = None
        if self.source == "logged":
            split = getattr(cfg.agent, "data_split", "train")
            self.logged = self.worlds.dataset.tensors(split, self.sim.max_history).to(self.device)
            if len(self.logged) < cfg.train.batch_size:
                raise ConfigError(
                    f"train.batch_size {cfg.train.batch_size} exceeds the {len(self.logged)} "
                    f"logged '{split}' records"
                )
        check_trackers(cfg.train)
        self.claim = claim_run_dir(
            self.run_dir,
            cfg,
            "sim_run",
            resume=resume,
            overwrite=overwrite,
            inputs=[cfg.data, cfg.urm, cfg.eval_urm],
            mutable=[*BUDGET, *(f"train.{k}" for k in PROGRESS_KEYS)],
        )
        self.claim.setup(lambda: self._setup(resume))

    def _setup(self, resume: bool) -> None:
        """Everything after the run directory is claimed: a failure here removes what it made."""
        cfg = self.cfg
        self.claim.start(
            run_files(
                cfg,
                {
                    "agent": cfg.agent.kind,
                    "name": cfg.label,
                    "dataset": str(cfg.data),
                    "dataset_content_hash": self.worlds.dataset.content_hash,
                    "n_items": self.sim.n_items,
                    "slate_size": self.sim.slate_size,
                    "urms": self.worlds.urm_info,
                },
            )
        )
        self.run_dir = self.claim.work

        seed_everything(cfg.seed)
        self.agent = cfg.agent.create(self.worlds.item_x, self.worlds.user_x, self.sim.slate_size)
        self.buffer: ReplayBuffer | None = None
        if self.source == "replay":
            d = cfg.agent.policy.dim
            self.buffer = ReplayBuffer(
                cfg.train.buffer_size,
                self.sim.max_history,
                d,
                d,
                self.sim.slate_size,
                self.device,
            )
        self.step = 0
        self.best: dict[str, Any] = {"value": None, "step": None}
        self.history: list[dict[str, float]] = []
        self.monitor = StabilityMonitor(cfg.train.stability, self._q_bound())
        self.tracker = open_tracker(self.run_dir, cfg.train, cfg.model_dump(mode="json"), cfg.label)
        self.progress: ProgressReporter | None = None  # while fit() runs
        self._episodes: list[tuple[int, int, float, int]] = []  # iteration, slot, return, depth
        self._order: tuple[int, torch.Tensor] | None = None
        self.rollout_length: int = getattr(cfg.agent, "rollout_length", 1)
        self._rollout: list[Batch] = []  # on-policy steps collected towards the next update
        self.eval_seconds = 0.0
        if resume:
            self._resume()

    # ------------------------------------------------------------------ set-up helpers

    def _q_bound(self) -> float | None:
        gamma = getattr(self.cfg.agent, "gamma", None)
        if gamma is None:
            return None
        env = self.cfg.env
        low = -env.zero_reward_cost
        if env.reward_transform == "sweet_point":
            low = 1.0 - (env.sweet_point - low)
        return q_value_bound([low, 1.0], gamma)

    def _modules(self) -> dict[str, nn.Module]:
        """Everything a checkpoint holds as tensors: networks, replay buffer, simulator state."""
        modules: dict[str, nn.Module] = dict(self.agent.nets)
        if self.buffer is not None:
            modules["buffer"] = self.buffer
        modules["sim"] = TensorStore(self.sim.state_dict())
        return modules

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to ``train.iterations``, then evaluate the last and the best policy."""
        cfg = self.cfg.train
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        self.progress = ProgressReporter(
            cfg.progress,
            cfg.progress_every or cfg.log_every,
            self.cfg.label,
            unit="iteration",
            train_fields=TRAIN_FIELDS,
            val_key="total_reward_mean",
            per_step=(cfg.num_envs, "transitions"),
        )
        self.progress.start(self.step, cfg.iterations)
        if self.history:  # a resumed run shows its latest validation from the start
            self.progress.record("val", int(self.history[-1]["step"]), self.history[-1])
        try:
            obs = self._start() if self.step == 0 else self.sim.observation()
            t0, step0 = time.perf_counter(), self.step  # the rate leaves out the prefill
            while self.step < cfg.iterations:
                obs, updates = self._iteration(obs)
                self.step += 1
                for key, value in (kv for logs in updates for kv in logs.items()):
                    sums[key] = sums.get(key, 0.0) + float(value)
                    counts[key] = counts.get(key, 0) + 1
                if self.step % cfg.log_every == 0 or self.step == cfg.iterations:
                    elapsed = time.perf_counter() - t0 - self.eval_seconds
                    window = {k: v / counts[k] for k, v in sums.items()}
                    window["iterations_per_s"] = (self.step - step0) / max(elapsed, 1e-9)
                    self._log_train(window)
                    sums, counts = {}, {}
                if self.step % cfg.eval_every == 0 or self.step == cfg.iterations:
                    self._validate_and_checkpoint()
                self.progress.advance(self.step)
            train_seconds = time.perf_counter() - t0 - self.eval_seconds
            summary = self._finish(train_seconds, self.step - step0)
            self.tracker.close()
            self.claim.commit()
            self.run_dir = self.claim.work
            return summary
        except BaseException:
            self.tracker.close(failed=True)
            self.claim.fail()
            raise
        finally:
            self.progress.close()
            self.claim.close()

    def _start(self) -> dict[str, torch.Tensor]:
        """Seed the users; replay agents first fill the buffer."""
        obs = self.sim.reset(seed=derive_seed(self.cfg.seed, "train_env"))
        if self.buffer is None:
            return obs
        j = 0
        while len(self.buffer) < self.cfg.train.prefill:
            gen = generator(self.cfg.seed, "prefill", j)
            if self.cfg.train.prefill_policy == "hac_eps1":
                action = self.agent.act(obs, gen, explore=True, epsilon=1.0)
            else:
                greedy = self.agent.act(obs, gen, explore=False)
                noise = torch.zeros(len(obs["user"]), self.sim.n_items, device=self.device)
                action = Action(
                    sample_slate(noise, self.sim.slate_size, gen), greedy.state, greedy.hyper
                )
            out = self.sim.step(action.slate)
            self.buffer.push(transitions(obs, action, out))
            obs, j = out.obs, j + 1
        return self.sim.reset()

    def _iteration(
        self, obs: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """One step of the users, then the updates: ``(next observation, each update's logs)``."""
        cfg, i = self.cfg, self.step
        torch.manual_seed(derive_seed(cfg.seed, "dropout", i))
        gen = generator(cfg.seed, "iteration", i)
        epsilon = cfg.agent.explore.epsilon(i)
        action = self.agent.act(obs, gen, explore=self.source != "logged", epsilon=epsilon)
        out = self.sim.step(action.slate)
        done = out.done
        if bool(done.any()):
            slots = torch.nonzero(done).flatten().tolist()
            rewards = out.episode_return[done].tolist()
            depths = out.episode_depth[done].tolist()
            self._episodes.extend((i, *e) for e in zip(slots, rewards, depths, strict=True))
        batch = transitions(obs, action, out)
        if self.buffer is not None:
            self.buffer.push(batch)
        updates: list[dict[str, torch.Tensor]] = []
        if self.source == "on_policy" and self.rollout_length > 1:
            self._rollout.append(batch)
            if len(self._rollout) < self.rollout_length:
                return out.obs, updates
            batch, self._rollout = Batch.stack(self._rollout), []
        for u in range(cfg.train.updates_per_step):
            update = i * cfg.train.updates_per_step + u
            if self.buffer is not None:
                data: Batch | ListTensors = self.buffer.sample(cfg.train.batch_size, gen)
            elif self.logged is not None:
                data = self._logged_batch(update)
            else:
                data = batch
            logs = self.agent.update(data, update, gen)
            bad = [k for k, v in logs.items() if not bool(torch.isfinite(v))]
            if bad:
                if self.claim.replacing:
                    where = f"nothing was replaced: {self.claim.out} is as it was"
                else:
                    last = latest_checkpoint(self.run_dir / CHECKPOINTS)
                    where = f"the last good checkpoint is {last}" if last else "no checkpoint yet"
                raise TrainingDiverged(
                    f"{', '.join(bad)} became non-finite at iteration {i} ({cfg.agent.kind}); "
                    f"{where}. Try lower learning rates."
                )
            updates.append(logs)
        return out.obs, updates

    def _logged_batch(self, update: int) -> ListTensors:
        """Offline SL: batch ``update`` of seeded shuffled passes over the logged records."""
        assert self.logged is not None
        b = self.cfg.train.batch_size
        per_epoch = len(self.logged) // b
        epoch, j = divmod(update, per_epoch)
        if self._order is None or self._order[0] != epoch:
            gen = generator(self.cfg.seed, "logged_epoch", epoch)
            self._order = (epoch, torch.randperm(len(self.logged), generator=gen))
        return self.logged.index(self._order[1][j * b : (j + 1) * b].to(self.device))

    # ------------------------------------------------------------------ logging, evaluation

    def _log(self, kind: str, values: dict[str, Any]) -> None:
        self.tracker.log(kind, self.step, values)
        if self.progress is not None:
            self.progress.record(kind, self.step, values)
        if self.on_log is not None:
            self.on_log(self.step, self.cfg.train.iterations, kind, values)

    def _log_train(self, window: dict[str, float]) -> None:
        episodes = (
            {f: [e[j] for e in self._episodes] for j, f in enumerate(EPISODE_FIELDS)}
            if self._episodes
            else {}
        )
        if episodes:
            ret = torch.tensor(episodes["total_reward"], dtype=torch.float64)
            window["train_total_reward"] = float(ret.mean())
            window["train_depth"] = sum(episodes["depth"]) / len(ret)
            window["train_reward_var"] = float(ret.var(unbiased=False))
            window["train_episodes"] = len(ret)
        self._episodes = []
        if self.buffer is not None:
            window["buffer_size"] = len(self.buffer)
        self._log("train", window)
        if episodes:
            self._log(EPISODES, episodes)
        watched = {"q_abs_max": window.get("q_abs_max")}
        if "critic_loss" in window:
            watched["td_pos"] = window["critic_loss"]
        self._flag(
            self.monitor.check_train(self.step, {k: v for k, v in watched.items() if v is not None})
        )

    def _flag(self, flags: list[Flag]) -> None:
        for flag in flags:
            self._log("stability", flag.record())

    def _validate_and_checkpoint(self) -> None:
        """Validation (selects ``best/``) and a resumable checkpoint."""
        val = self.worlds.val
        weights = {"step": self.step, "rlrec_version": __version__}
        if val is not None:
            t0 = time.perf_counter()
            metrics = evaluate_policy(self.agent, val, self.cfg.eval)
            self.eval_seconds += time.perf_counter() - t0
            self._log("val", metrics)
            value = metrics["total_reward_mean"]
            self._flag(self.monitor.check_val(self.step, value, self.best["value"]))
            self.history.append({"step": self.step, **metrics})
            if self.best["value"] is None or value > self.best["value"]:
                self.best = {"value": value, "step": self.step}
                save_weights(self.run_dir / BEST, self.agent.nets, {**weights, "val": metrics})
        save_checkpoint(
            self.run_dir / CHECKPOINTS,
            self.step,
            self._modules(),
            self.agent.optimizers,
            {
                "best": self.best,
                "history": self.history,
                "stability": self.monitor.state_dict(),
                "rlrec_version": __version__,
            },
            keep_last=self.cfg.train.keep_last,
        )

    def _resume(self) -> None:
        path = latest_checkpoint(self.run_dir / CHECKPOINTS)
        if path is None:  # killed before the first checkpoint: start from scratch
            self._extend()
            self.tracker.truncate_after(0)
            return
        tensors, optim, state = load_checkpoint(path)
        modules = self._modules()
        load_modules(modules, tensors, path)
        store = modules["sim"]
        assert isinstance(store, TensorStore)
        self.sim.load_state_dict(store.tensors())
        self.step = int(state["step"])
        self.best = state["best"]
        self.history = state.get("history", [])
        self.monitor.load_state_dict(state.get("stability", {}))
        self._extend()
        for name, groups in state["optimizers"].items():
            if name not in self.agent.optimizers:
                raise ConfigError(f"{path}: optimiser '{name}' is not part of this agent")
            restore_optimizer(self.agent.optimizers[name], name, optim, groups)
        self.tracker.truncate_after(self.step, ends=("eval",))  # a finished run evaluates again

    def _extend(self) -> None:
        """A resumed run whose ``train.iterations`` changed trains to the new budget from its
        latest checkpoint (at ``self.step``): refused past the new end, or mid-rollout (an
        on-policy rollout in progress is not checkpointed); recorded in ``run.json``
        (``budget_history``) and ``config.yaml``."""
        change = budget_change(self.run_dir, self.cfg, BUDGET)
        if not change:
            return
        new = self.cfg.train.iterations
        if new < self.step:
            raise ConfigError(
                f"train.iterations: {new}, fewer than the {self.step} the run has already "
                "trained; resume with at least that budget"
            )
        if self.step % self.rollout_length:
            raise ConfigError(
                f"{self.run_dir}: the run ended at iteration {self.step}, inside a rollout of "
                f"{self.rollout_length}; it cannot be continued exactly"
            )
        old = change["train.iterations"][0]
        record_budget(self.run_dir, self.cfg, change, self.step, (old, new))

    def _finish(self, seconds: float, iterations: int) -> dict[str, Any]:
        save_weights(self.run_dir / LAST, self.agent.nets, {"step": self.step})
        results: dict[str, dict[str, float]] = {}
        arena = self.worlds.eval
        if arena is not None:
            t0 = time.perf_counter()
            results[LAST] = evaluate_policy(self.agent, arena, self.cfg.eval)
            if self.best["step"] is not None:
                load_policy(self.run_dir, BEST, self.agent)
                results[BEST] = evaluate_policy(self.agent, arena, self.cfg.eval)
            else:
                results[BEST] = results[LAST]
            for which, metrics in results.items():
                self._log("eval", {"checkpoint": which, **metrics})
            self.eval_seconds += time.perf_counter() - t0
        summary = {
            "agent": self.cfg.agent.kind,
            "name": self.cfg.label,
            "seed": self.cfg.seed,
            "iterations": self.step,
            "best_step": self.best["step"],
            "val_best": self.best["value"],
            "eval": results,
            "eval_users": self.cfg.eval.users,
            "stability": {
                "flags": [vars(f) for f in self.monitor.flags],
                "flagged": bool(self.monitor.flags),
            },
            "train_seconds_this_session": seconds,
            "iterations_per_s": iterations / seconds if iterations and seconds > 0 else None,
            "device": str(self.device),
        }
        atomic_write_json(self.run_dir / "summary.json", json_safe(summary))
        return summary
