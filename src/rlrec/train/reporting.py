"""How a training run reports itself: the metric trackers it writes to and the progress it shows.

Shared by ``rlrec train`` and ``rlrec sim train`` (each run config's ``train`` section inherits
:class:`ReportingOptions`); the trackers are :mod:`.tracking`, the progress display
:mod:`.progress`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlrec.config import StrictModel

TrackerName = Literal["files", "tensorboard", "mlflow", "wandb"]
ProgressMode = Literal["auto", "bar", "lines", "none"]
PROGRESS_KEYS = ("progress", "progress_every")  # presentation only: free to change on resume


class ReportingOptions(StrictModel):
    """Trackers and progress of a training loop (docs/offline.md, Progress and tracking).

    ``trackers`` lists where metrics go besides the run directory's own files (``files``:
    ``metrics.jsonl`` and one CSV per kind, always written — reports and ``--resume`` read them):
    ``tensorboard`` (``pip install rlrec[track]``), ``mlflow`` (``rlrec[mlflow]``; a local file
    store ``mlruns/`` in the run directory unless ``mlflow_uri`` names another tracking URI) and
    ``wandb`` (``rlrec[wandb]``; its files under ``wandb/`` in the run directory; offline with
    ``WANDB_MODE=offline``). Left unset, it is ``files`` plus TensorBoard when ``tensorboard`` is
    true and TensorBoard is installed (the behaviour before ``trackers`` existed); a tracker listed
    explicitly whose package is missing is an error naming the extra.

    ``progress``: ``bar`` (a live bar; in a notebook its widget), ``lines`` (one plain line every
    ``progress_every`` steps, default ``log_every``: for logs of batch jobs), ``none``, or ``auto``
    (a bar on a terminal or in a notebook, else lines).
    """

    trackers: list[TrackerName] | None = Field(
        None, description="metric trackers (default: files, + tensorboard per `tensorboard`)"
    )
    tensorboard: bool = Field(
        True, description="with trackers unset: also TensorBoard, when it is installed"
    )
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI (default: file store mlruns/ in the run directory)"
    )
    tracker_project: str = Field("rlrec", description="MLflow experiment and W&B project")
    progress: ProgressMode = "auto"
    progress_every: int | None = Field(
        None, ge=1, description="steps between progress lines (default: log_every)"
    )

    @model_validator(mode="after")
    def _tensorboard_agrees(self) -> ReportingOptions:
        if (
            self.trackers is not None
            and "tensorboard" in self.trackers
            and "tensorboard" in self.model_fields_set
            and not self.tensorboard
        ):
            raise ValueError("tensorboard: false contradicts trackers listing tensorboard")
        return self

    def tracker_names(self) -> list[str]:
        """The trackers to open, ``files`` first; ``tensorboard`` from the legacy flag is
        ``tensorboard?`` (opened only when installed)."""
        if self.trackers is None:
            return ["files", "tensorboard?"] if self.tensorboard else ["files"]
        return ["files", *dict.fromkeys(t for t in self.trackers if t != "files")]
