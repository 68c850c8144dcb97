"""The two kinds of runs that ``rlrec sweep`` launches and ``rlrec report`` reads.

* ``train`` — ``rlrec train``: an offline objective on a prepared session dataset; validation logs
  HR/NDCG@k, the checkpoint with the best ``train.select_metric`` is tested
  (``summary.json["test"]``);
* ``sim`` — ``rlrec sim train``: an online agent in the simulator; validation on held-out users logs
  total reward, depth, reward variance and coverage, the checkpoint with the best validation total
  reward is evaluated in the evaluation environment (``summary.json["eval"]["best"]``, P-HAC §3.1.4).

A sweep's ``base`` config is one or the other (:func:`detect`); each kind checks a run's resolved
config cheaply — the config itself, the device, the data and URM directories' manifests, never their
arrays — so that a sweep fails before it starts any process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlrec.config import build_config, read_yaml
from rlrec.device import resolve_device
from rlrec.errors import ConfigError
from rlrec.fsutil import read_json

# Top-level config keys only one of the two configs has (both are strict models).
SIM_KEYS = frozenset({"agent", "urm", "eval_urm", "env", "preset"})
TRAIN_KEYS = frozenset({"objective", "encoder", "state_size", "head_init", "eval_network"})
SIM_SELECT = "total_reward_mean"  # what rlrec sim train selects its best checkpoint on (max)
SIM_VAL_METRICS = (
    "total_reward_mean",
    "depth_mean",
    "total_reward_var",
    "total_reward_std",
    "reward_per_step",
    "coverage",
)


@dataclass(frozen=True)
class RunKind:
    """What differs between the two kinds of runs (the module doc)."""

    name: str  # "train" | "sim"
    command: tuple[str, ...]  # rlrec's subcommand

    @property
    def config_class(self) -> type[BaseModel]:
        if self.name == "sim":
            from rlrec.online.config import OnlineTrainConfig

            return OnlineTrainConfig
        from rlrec.train.config import TrainConfig

        return TrainConfig

    def build(self, base: Path, overrides: list[str]) -> Any:
        """A run's resolved config: ``base`` ← ``--set`` ``overrides``."""
        return build_config(self.config_class, path=base, overrides=overrides)

    def check(self, cfg: Any, checked: set[tuple[str, ...]]) -> None:
        """Cheap checks of a resolved run config that its process would fail on; input directories
        already in ``checked`` are not read again."""
        resolve_device(cfg.device)
        if self.name == "train":
            from rlrec.data.dataset import PreparedDataset
            from rlrec.train.trainer import check_select_metric

            if ("data", str(cfg.data)) not in checked:
                PreparedDataset.load(cfg.data, verify=False)
                checked.add(("data", str(cfg.data)))
            check_select_metric(cfg)
            return
        from rlrec.sim.build import urm_path
        from rlrec.sim.dataset import ListDataset
        from rlrec.sim.urm_store import check_catalogue, read_urm_meta

        key = ("sim", str(cfg.data), str(cfg.urm), str(cfg.eval_urm))
        if key in checked:
            return
        ds = ListDataset.load(cfg.data, verify=False)
        for urm in {urm_path(ds, cfg.urm), urm_path(ds, cfg.eval_urm or cfg.urm)}:
            check_catalogue(read_urm_meta(urm), urm, ds.path, ds.manifest)
        checked.add(key)

    def select_metric(self, cfg: Any) -> str:
        """The validation metric a run selects its best checkpoint on (maximised)."""
        return cfg.train.select_metric if self.name == "train" else SIM_SELECT

    def check_val_metric(self, cfg: Any, metric: str, where: str) -> None:
        """``metric`` must be one that this kind's validation logs (``where`` names the field)."""
        if self.name == "train":
            from rlrec.train.trainer import check_select_metric

            probe = cfg.model_copy(
                update={"train": cfg.train.model_copy(update={"select_metric": metric})}
            )
            try:
                check_select_metric(probe)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("train.select_metric", where)) from None
            return
        if cfg.eval.val_users == 0:
            raise ConfigError(f"{where}: the runs do not validate (eval.val_users is 0)")
        if metric not in SIM_VAL_METRICS:
            raise ConfigError(
                f"{where} '{metric}' is not a validation metric of rlrec sim train "
                f"(have: {', '.join(SIM_VAL_METRICS)})"
            )

    @staticmethod
    def final_metrics(summary: dict[str, Any]) -> dict[str, Any] | None:
        """A finished run's reported metrics: test (``train``) or evaluation (``sim``) metrics of
        its selected checkpoint; ``None`` when the summary has neither."""
        if isinstance(summary.get("test"), dict):
            return summary["test"]
        evaluation = summary.get("eval")
        if isinstance(evaluation, dict) and isinstance(evaluation.get("best"), dict):
            return evaluation["best"]
        return None


TRAIN = RunKind("train", ("train",))
SIM = RunKind("sim", ("sim", "train"))


def detect(base: Path) -> RunKind:
    """The kind of a sweep's ``base`` config: by its top-level keys, else by the format of its
    ``data`` directory's manifest (``rlrec sim prepare`` writes list datasets)."""
    data = read_yaml(base)
    if SIM_KEYS & set(data):
        return SIM
    if TRAIN_KEYS & set(data):
        return TRAIN
    manifest = Path(str(data.get("data", ""))) / "manifest.json"
    if manifest.is_file():
        from rlrec.sim.prepare import FORMAT as LIST_FORMAT

        found = read_json(manifest, "dataset manifest")
        if isinstance(found, dict) and found.get("format") == LIST_FORMAT:
            return SIM
    return TRAIN


def run_kind(summary: dict[str, Any]) -> RunKind:
    """The kind of a finished run, from its ``summary.json``."""
    return TRAIN if isinstance(summary.get("test"), dict) else SIM
