"""The optional tracker adapters (TensorBoard, MLflow, Weights & Biases) and :func:`open_tracker`,
which opens the ones a run's ``train.trackers`` names (:mod:`.reporting`).

Each external package is imported only when its tracker is used; a missing one is an error naming
the extra to install. MLflow and W&B runs are tied to the run directory by their run ids, kept in
``trackers.json`` there, so ``--resume`` continues the same MLflow/W&B run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml

from rlrec.config import flatten_config
from rlrec.errors import RlrecError
from rlrec.fsutil import atomic_write_json
from rlrec.train.reporting import ReportingOptions
from rlrec.train.tracking import FileTracker, Tracker, TrackerAdapter

RUN_IDS = "trackers.json"
PACKAGES = {  # tracker: (module, extra)
    "tensorboard": ("tensorboard", "track"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}
MLFLOW_BATCH = 100  # params/metrics per MLflow log_batch request (its limit)


def check_trackers(options: ReportingOptions) -> None:
    """Refuse, before any file is written, a listed tracker whose package is not installed."""
    for name in options.tracker_names():
        if name in PACKAGES and importlib.util.find_spec(PACKAGES[name][0]) is None:
            raise RlrecError(_missing(name))


def _missing(name: str) -> str:
    package, extra = PACKAGES[name]
    return f"train.trackers lists {name}, which needs {package}: pip install rlrec[{extra}]"


def open_tracker(
    run_dir: Path, options: ReportingOptions, config: dict[str, Any], run_name: str
) -> Tracker:
    """The run's trackers, each given ``config`` (the resolved config, nested)."""
    adapters: list[TrackerAdapter] = []
    ids = _read_ids(run_dir)
    new_ids: dict[str, str] = {}
    try:
        for name in options.tracker_names():
            if name == "files":
                adapters.append(FileTracker(run_dir))
            elif name in ("tensorboard", "tensorboard?"):
                board = TensorBoardTracker.open(run_dir, required=name == "tensorboard")
                adapters.extend([board] if board is not None else [])
            else:
                remote: MLflowTracker | WandbTracker
                if name == "mlflow":
                    uri = options.mlflow_uri or (Path(run_dir).resolve() / "mlruns").as_uri()
                    remote = MLflowTracker(uri, options.tracker_project, run_name, ids.get(name))
                else:
                    remote = WandbTracker(run_dir, options.tracker_project, run_name, ids.get(name))
                adapters.append(remote)
                new_ids[name] = remote.run_id
        if {**ids, **new_ids} != ids:
            atomic_write_json(Path(run_dir) / RUN_IDS, {**ids, **new_ids})
        tracker = Tracker(adapters)
        tracker.log_params(config)
    except BaseException:
        for adapter in adapters:
            adapter.close(failed=True)
        raise
    return tracker


def _read_ids(run_dir: Path) -> dict[str, str]:
    path = Path(run_dir) / RUN_IDS
    if not path.is_file():
        return {}
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise RlrecError(f"{path}: not valid JSON (the run's tracker ids)") from None
    return {k: v for k, v in ids.items() if isinstance(v, str)} if isinstance(ids, dict) else {}


def _require(name: str) -> Any:
    try:
        return importlib.import_module(PACKAGES[name][0])
    except ImportError:
        raise RlrecError(_missing(name)) from None


def _scalars(values: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a record (strings and lists are for the files tracker only)."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class TensorBoardTracker(TrackerAdapter):
    """Scalars under ``tb/`` in the run directory as ``<kind>/<key>``; the resolved config as
    hparams (scalar values; lists as text) and as YAML text (``config``)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, *, required: bool) -> TensorBoardTracker | None:
        """A writer to ``run_dir/tb``; without TensorBoard: ``None``, or an error if ``required``."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if required:
                raise RlrecError(_missing("tensorboard")) from None
            return None
        return cls(SummaryWriter(str(Path(run_dir) / "tb")))

    def log_params(self, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        flat = {
            k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
            for k, v in flatten_config(config).items()
        }
        for summary in hparams(flat, {}):
            self.writer.file_writer.add_summary(summary)
        text = yaml.safe_dump(config, sort_keys=False)
        self.writer.add_text("config", "".join(f"    {line}\n" for line in text.splitlines()))

    def log_metrics(self, kind: str, step: int, values: dict[str, Any]) -> None:
        for key, value in _scalars(values).items():
            self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def mlflow_key(name: str) -> str:
    """A metric/param name MLflow accepts (letters, digits, ``_-. :``; ``/`` separates the kind):
    ``@`` becomes ``_at_``, ``/`` ``.`` (a file store makes ``a/b`` a directory, and ``hr@5`` and
    ``hr@5/nonempty`` would collide), anything else ``_``: ``ndcg_purchase@10/nonempty`` →
    ``ndcg_purchase_at_10.nonempty``."""
    return re.sub(r"[^\w.\- :]", "_", name.replace("@", "_at_").replace("/", "."))


class MLflowTracker(TrackerAdapter):
    """Metrics ``<kind>/<key>`` (key: :func:`mlflow_key`) and the flattened config as params of one
    MLflow run.

    Through :class:`mlflow.tracking.MlflowClient` (no global "active run"). A ``file:`` URI is
    MLflow's file store, which MLflow 3 keeps only behind ``MLFLOW_ALLOW_FILE_STORE``: rlrec sets
    it to ``true`` unless it is set already. ``run_id`` reattaches
    a resumed run; params cannot change in MLflow, so a value changed on resume (an extended
    budget) is set as the tag ``resumed.<key>``.
    """

    def __init__(self, uri: str, experiment: str, run_name: str, run_id: str | None) -> None:
        _require("mlflow")
        from mlflow.tracking import MlflowClient

        if uri.startswith("file:"):  # MLflow 3 refuses its file store unless opted in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id: str = run_id

    def log_params(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        logged = self.client.get_run(self.run_id).data.params
        flat = {
            mlflow_key(k): v if isinstance(v, str) else json.dumps(v)
            for k, v in flatten_config(config).items()
        }
        new = [Param(k, v) for k, v in flat.items() if k not in logged]
        changed = [RunTag(f"resumed.{k}", v) for k, v in flat.items() if logged.get(k, v) != v]
        for i in range(0, max(len(new), len(changed)), MLFLOW_BATCH):
            self.client.log_batch(
                self.run_id,
                params=new[i : i + MLFLOW_BATCH],
                tags=changed[i : i + MLFLOW_BATCH],
            )

    def log_metrics(self, kind: str, step: int, values: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{kind}/{mlflow_key(k)}", v, now, step) for k, v in _scalars(values).items()
        ]
        for i in range(0, len(metrics), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MLFLOW_BATCH])

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


class WandbTracker(TrackerAdapter):
    """Metrics ``<kind>/<key>`` at ``step`` and the config of one W&B run, its files under
    ``wandb/`` in the run directory (``WANDB_MODE=offline`` keeps them there, for ``wandb
    sync``). ``run_id`` resumes a run; W&B ignores records at steps below the last one it has, so
    the steps a resumed run replays keep their first values there."""

    def __init__(self, run_dir: Path, project: str, run_name: str, run_id: str | None) -> None:
        wandb = _require("wandb")
        self.run = wandb.init(
            project=project,
            name=run_name,
            dir=str(run_dir),
            id=run_id,
            resume="allow" if run_id else None,
            reinit="create_new",
            # the progress display stays rlrec's: W&B neither captures nor prints to the console
            settings=wandb.Settings(console="off", quiet=True),
        )
        self.run_id: str = self.run.id

    def log_params(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_metrics(self, kind: str, step: int, values: dict[str, Any]) -> None:
        scalars = _scalars(values)
        if scalars:
            self.run.log({f"{kind}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)
