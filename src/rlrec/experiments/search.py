"""``rlrec sweep`` with ``search:``: hyper-parameter search by optuna, one process per trial.

::

    base: configs/ccql/rc15/sasrec_ccql.yaml
    out: runs/search/ccql
    seeds: [0]                          # every trial trains this one seed
    jobs: 2
    search:
      backend: optuna                   # pip install 'rlrec[optuna]'
      sampler: tpe                      # or random
      n_trials: 30
      metric: val ndcg_purchase@10      # a validation metric (never test: that would flatter)
      direction: maximize
      space:
        objective.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        train.batch_size: {choices: [128, 256]}
        objective.num_negatives: {low: 5, high: 50, step: 5}   # integers: int low/high/step
      pruning: true                     # stop trials below the median at the same step

A trial is a run ``out/trial_<n>`` of ``base`` with the trial's values as ``--set`` overrides. Its
value is ``metric`` on validation at the checkpoint the run selects (its best ``select_metric``
validation; for sim runs the best validation total reward). While it trains, the sweep reads the
run's ``metrics.jsonl`` every ``poll_seconds`` and reports each new validation value to optuna
(``trial.report``); with ``pruning`` optuna's median rule (after ``prune_startup_trials`` finished
trials and ``prune_warmup_steps`` training steps) may stop it (SIGTERM; state ``pruned``). The
study lives in ``out/optuna.journal`` — optuna's journal storage, JSON lines, no pickle — so a
re-run resumes it (``n_trials``, the sampler and the pruning settings may change; the space, metric
and direction may not): trials that were running are continued (their runs resumed from their last
checkpoint), finished and pruned ones count towards ``n_trials``, failed ones do not. Three failed
trials in a row stop the search. The sampler is seeded (``seed``), so one job gives the same trials
every time; several jobs, or a resumed study, ask in another order.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from rlrec.config import StrictModel
from rlrec.errors import ConfigError, RlrecError
from rlrec.experiments.kinds import RunKind
from rlrec.experiments.launch import Launcher, RunSpec
from rlrec.fsutil import read_json

if TYPE_CHECKING:
    from rlrec.experiments.sweep import SweepConfig

JOURNAL = "optuna.journal"
STUDY = "rlrec-sweep"
MAX_FAILED_IN_A_ROW = 3
SAME_SEARCH = {"backend", "space", "metric", "direction"}  # a resumed search keeps these
Choice = bool | int | float | str | None


class Param(StrictModel):
    """One dimension of the search space: ``choices``, or a range ``low``–``high`` (integers when
    ``low``, ``high`` and ``step`` are all integers) with an optional ``log`` scale or ``step``."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[Choice] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> Param:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.step is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs choices, or both low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log needs low > 0 and no step")
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None)

    def corners(self) -> list[Any]:
        """The values a config check tries: every choice, or both ends of the range."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask optuna's ``trial`` for this parameter's value."""
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.integer:
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


class SearchConfig(StrictModel):
    """A sweep's ``search:`` section (the module doc)."""

    backend: Literal["optuna"] = "optuna"
    sampler: Literal["tpe", "random"] = "tpe"
    n_trials: int = Field(20, ge=1)
    metric: str | None = Field(None, description="'val METRIC' (default: the runs' select metric)")
    direction: Literal["maximize", "minimize"] = "maximize"
    space: dict[str, Param] = Field(min_length=1)
    pruning: bool = False
    prune_startup_trials: int = Field(2, ge=0, description="finished trials before pruning")
    prune_warmup_steps: int = Field(0, ge=0, description="training steps before pruning")
    seed: int = Field(0, description="the sampler's seed")
    poll_seconds: float = Field(2.0, gt=0, description="how often a trial's log is read")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise RlrecError(
            "search.backend optuna needs optuna: pip install 'rlrec[optuna]'"
        ) from None
    return optuna


def val_metric(spec: str | None, default: str) -> str:
    """The metric name of ``search.metric`` (``'val NAME'``; ``None``: ``default``)."""
    if spec is None:
        return default
    split, _, name = spec.strip().partition(" ")
    name = name.strip()
    if split != "val" or not name:
        raise ConfigError(
            f"search.metric '{spec}': give 'val METRIC' — trials are compared on validation; "
            "choosing them on test would flatter the winner (rlrec report shows test)"
        )
    return name


class TrialWatch:
    """Reads a running trial's ``metrics.jsonl`` and reports new validation values to optuna."""

    def __init__(
        self, path: Path, trial: Any, metric: str, pruning: bool, lock: Any, reported: set[int]
    ) -> None:
        """``reported``: the steps optuna already has (a resumed trial's earlier validations)."""
        self.path = path
        self.trial = trial
        self.metric = metric
        self.pruning = pruning
        self.lock = lock
        self.offset = 0
        self.values: dict[int, float] = {}  # step → validation value, from this run's log
        self.reported = reported

    def poll(self) -> bool:
        """Read the lines written since the last call; True when optuna says prune."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size < self.offset:  # a resumed run truncates its log to its checkpoint
            self.offset = 0
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # complete lines only
        self.offset += end
        new = False
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            value = record.get(self.metric) if isinstance(record, dict) else None
            if record.get("kind") != "val" or not isinstance(value, (int, float)):
                continue
            step = int(record["step"])
            self.values[step] = float(value)
            if step not in self.reported and math.isfinite(value):
                with self.lock:
                    self.trial.report(float(value), step)
                self.reported.add(step)
                new = True
        if not (self.pruning and new):
            return False
        with self.lock:
            return bool(self.trial.should_prune())


class Search:
    """A checked search: every config the space can produce at its corners resolves, the metric
    is one validation logs, optuna is installed — all before the sweep directory is touched."""

    def __init__(self, cfg: SweepConfig, kind: RunKind, jobs: int, threads: int) -> None:
        from rlrec.experiments.sweep import check_run, describe, run_overrides

        assert cfg.search is not None
        if cfg.grid:
            raise ConfigError("give either grid or search, not both")
        if len(cfg.seed_list) != 1:
            raise ConfigError(
                "search: every trial trains one seed; give seeds: [S] (then run the best point "
                "over several seeds as a grid sweep)"
            )
        self.cfg, self.kind, self.search = cfg, kind, cfg.search
        self.seed = cfg.seed_list[0]
        self.jobs, self.threads = jobs, threads
        self.optuna = _optuna()
        self._run_overrides = run_overrides
        space = self.search.space
        base = {name: p.corners()[0] for name, p in space.items()}
        points = [base] + [
            {**base, name: value} for name, p in space.items() for value in p.corners()[1:]
        ]
        checked: set[tuple[str, ...]] = set()
        first = None
        for point in points:
            overrides = run_overrides(cfg, point, self.seed, cfg.out / "trial_000")
            run_cfg = check_run(kind, cfg.base, overrides, checked, "search" + describe(point))
            first = first or run_cfg
        self.metric = val_metric(self.search.metric, kind.select_metric(first))
        kind.check_val_metric(first, self.metric, "search.metric")
        self.settings = {
            "base": str(cfg.base),
            "overrides": cfg.overrides,
            "seed": self.seed,
            "search": self.search.model_dump(mode="json", include=SAME_SEARCH),
        }
        self._check_same_search()

    def _check_same_search(self) -> None:
        """A sweep directory resumes only the search it was started with."""
        from rlrec.experiments.sweep import SWEEP_INDEX

        path = self.cfg.out / SWEEP_INDEX
        if not path.is_file():
            return
        index = read_json(path, "sweep index")
        saved = index.get("settings") if isinstance(index, dict) else None
        if saved != self.settings:
            raise ConfigError(
                f"{path}: this sweep directory holds another sweep (its base, overrides, seed, "
                "search space, metric or direction differ); give another out to start a new one"
            )

    def _study(self) -> Any:
        optuna, s = self.optuna, self.search
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(self.cfg.out / JOURNAL)))
        sampler = (
            optuna.samplers.TPESampler(seed=s.seed)
            if s.sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=s.seed)
        )
        pruner = (
            optuna.pruners.MedianPruner(s.prune_startup_trials, s.prune_warmup_steps)
            if s.pruning
            else optuna.pruners.NopPruner()
        )
        return optuna.create_study(
            storage=storage,
            study_name=STUDY,
            sampler=sampler,
            pruner=pruner,
            direction=s.direction,
            load_if_exists=True,
        )

    def spec(self, number: int, params: dict[str, Any]) -> RunSpec:
        name = f"trial_{number:03d}"
        out = self.cfg.out / name
        overrides = self._run_overrides(self.cfg, params, self.seed, out)
        return RunSpec(name, params, self.seed, out, overrides, trial=number)

    def run(self, on_event: Callable[[RunSpec, int, int], None] | None = None) -> list[RunSpec]:
        """Run (or resume) the search; returns every trial of the study, in order."""
        from rlrec.experiments.sweep import write_index

        optuna = self.optuna
        state = optuna.trial.TrialState
        study = self._study()
        trials = study.get_trials(deepcopy=False)
        stale = [t for t in trials if t.state == state.RUNNING]  # a killed sweep's trials
        counted = sum(t.state in (state.COMPLETE, state.PRUNED) for t in trials)
        budget = self.search.n_trials - counted - len(stale)
        specs: dict[int, RunSpec] = {t.number: self._previous(t, state) for t in trials}
        launcher = Launcher(self.kind, self.cfg.base, self.cfg.out / "logs", self.threads)
        lock = threading.RLock()
        failed_in_a_row = 0
        done = counted

        def save() -> None:
            write_index(
                self.cfg,
                self.kind,
                self.jobs,
                self.threads,
                [specs[n] for n in sorted(specs)],
                settings=self.settings,
                metric=self.metric,
                direction=self.search.direction,
            )

        def next_trial() -> tuple[Any, RunSpec, set[int]] | None:
            nonlocal budget
            with lock:
                if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                    return None
                if stale:
                    frozen = stale.pop(0)
                    trial = optuna.trial.Trial(study, frozen._trial_id)
                    params, reported = frozen.params, set(frozen.intermediate_values)
                elif budget > 0:
                    budget -= 1
                    trial = study.ask()
                    params = {n: p.suggest(trial, n) for n, p in self.search.space.items()}
                    reported = set()
                else:
                    return None
                spec = self.spec(trial.number, params)
                spec.status = "running"
                specs[trial.number] = spec
                save()
                return trial, spec, reported

        def work() -> None:
            nonlocal failed_in_a_row, done
            while (got := next_trial()) is not None:
                trial, spec, reported = got
                watch = TrialWatch(
                    spec.out / "metrics.jsonl",
                    trial,
                    self.metric,
                    self.search.pruning,
                    lock,
                    reported,
                )
                if (spec.out / "summary.json").is_file():  # finished before the sweep was killed
                    spec.status, spec.message = "done", "already finished"
                else:
                    launcher.run(spec, watch=watch.poll, poll_seconds=self.search.poll_seconds)
                watch.poll()
                with lock:
                    self._tell(study, trial, spec, watch)
                    failed_in_a_row = failed_in_a_row + 1 if spec.status == "failed" else 0
                    done += spec.status != "failed"
                    save()
                    if on_event is not None:
                        on_event(spec, done, self.search.n_trials)

        save()
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            for future in [pool.submit(work) for _ in range(self.jobs)]:
                future.result()
        except BaseException:
            launcher.terminate_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        ordered = [specs[n] for n in sorted(specs)]
        if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            first = next(s for s in reversed(ordered) if s.status == "failed")
            raise RlrecError(
                f"search stopped: {MAX_FAILED_IN_A_ROW} trials in a row failed; last: {first.name}: "
                f"{first.message} (log: {self.cfg.out / 'logs'})"
            )
        return ordered

    def _tell(self, study: Any, trial: Any, spec: RunSpec, watch: TrialWatch) -> None:
        """Finish the optuna trial: its value (validation ``metric`` at the selected checkpoint),
        pruned, or failed (a failed process, or no finite value)."""
        state = self.optuna.trial.TrialState
        if spec.status == "pruned":
            study.tell(trial, state=state.PRUNED)
            return
        if spec.status == "done":
            summary = read_json(spec.out / "summary.json", "run summary")
            step = summary.get("best_step") if isinstance(summary, dict) else None
            value = watch.values.get(int(step)) if isinstance(step, int) else None
            if value is not None and math.isfinite(value):
                spec.value = value
                study.tell(trial, value)
                return
            spec.status = "failed"
            spec.message = f"no finite validation {self.metric} at the selected checkpoint"
        study.tell(trial, state=state.FAIL)

    def _previous(self, frozen: Any, state: Any) -> RunSpec:
        """A trial of an earlier sweep session as a :class:`RunSpec` (from the study)."""
        spec = self.spec(frozen.number, frozen.params)
        spec.status = {
            state.COMPLETE: "done",
            state.PRUNED: "pruned",
            state.FAIL: "failed",
            state.RUNNING: "running",
        }.get(frozen.state, "pending")
        spec.value = frozen.value if frozen.state == state.COMPLETE else None
        return spec


def best_trial(specs: list[RunSpec], direction: str) -> RunSpec | None:
    """The finished trial with the best value (``direction``: maximize or minimize)."""
    scored = [s for s in specs if s.status == "done" and s.value is not None]
    if not scored:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(scored, key=lambda s: (sign * (s.value or 0.0), -(s.trial or 0)))
