"""Training a user-response model on list records (P-HAC A.2): config → ``URMTrainer.fit``.

Loss: mean per-item BCE over the ``B·K`` items of a batch plus ``l2_coef · Σ_P mean(P²)`` over the
user encoder, item embedding and both attentions; Adam without weight decay, shuffled batches of 128.
``urm_legacy_double_sigmoid`` restores the reference's BCE on ``σ(s)`` (docs/online.md).

Every epoch the model is validated **in eval mode** (the reference keeps dropout on): pooled AUC,
per-position macro AUC, log-loss, mean probability vs positive rate and ECE. The best-AUC epoch is
kept (``keep: last`` keeps the last, as the reference's overwrite does; ``keep: best_log_loss`` the
lowest validation log-loss — the choice for very sparse labels, where AUC rests on a handful of
positives and may select an uncalibrated epoch whose sampled responses are far too frequent). The output directory
(:mod:`rlrec.sim.urm_store` format plus ``config.yaml`` and ``metrics.jsonl``) is written atomically.

Beside the URM, the simple response models of :mod:`rlrec.sim.baselines` (global rate, item rate,
user + item biases, logistic MF) are fitted on the same records and reported on the same validation
split (``baselines`` in ``urm.json``), so a URM that knows no more than item popularity shows.

``role``: ``train`` fits the training environment's URM on the ``train`` split; ``eval`` fits the
evaluation environment's URM on ``all`` records (paper). Validation defaults to the ``test`` split,
which is held out for ``train`` and in-sample for ``eval``. ``holdout_users: f`` checks a URM on
users it has never seen: a seeded fraction ``f`` of the users is left out of the fit, and
validation reads only their records of ``val_split`` (for an evaluation URM, whose own validation
is in-sample).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from rlrec.config import StrictModel, dump_config
from rlrec.device import keep_freed_memory, resolve_device, set_threads
from rlrec.errors import ConfigError
from rlrec.fsutil import atomic_write_bytes
from rlrec.outputs import check_output, new_output
from rlrec.seeding import generator, seed_everything
from rlrec.sim import functional as Fn
from rlrec.sim.baselines import baseline_reports
from rlrec.sim.dataset import ListDataset, ListTensors
from rlrec.sim.metrics import response_report
from rlrec.sim.urm import URM, URMConfig
from rlrec.sim.urm_store import save_urm

EpochLog = Callable[[int, int, dict[str, float]], None]


class URMTrainConfig(StrictModel):
    """``rlrec sim train-urm`` settings (reference RL4RS grid choice: lr 1e-3, λ 3e-4, 2 epochs).

    ``patience``: stop when the kept metric (``keep``: validation AUC or log-loss) has not improved
    for that many epochs (early stopping; ``None`` trains all ``epochs``; ignored for ``keep:
    last``). ``weight_decay`` > 0 trains with AdamW's decoupled decay of every parameter, a
    regulariser that, unlike ``l2_coef``'s mean of squares per tensor, does not weaken with the
    size of an embedding table. ``lr_decay`` multiplies the learning rate after every epoch
    (1: constant), which steadies the late epochs' validation metrics."""

    data: Path
    out: Path
    role: Literal["train", "eval"] = "train"
    val_split: Literal["test", "train", "all"] = "test"
    urm: URMConfig = URMConfig()
    lr: float = Field(1e-3, gt=0)
    l2_coef: float = Field(3e-4, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    lr_decay: float = Field(1.0, gt=0, le=1)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(2, ge=1)
    keep: Literal["best", "best_log_loss", "last"] = "best"
    holdout_users: float = Field(0.0, ge=0.0, lt=1.0)
    patience: int | None = Field(None, ge=1)
    urm_legacy_double_sigmoid: bool = False
    baselines: bool = True
    eval_batch_size: int = Field(2048, ge=1)
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1)


def urm_loss(
    model: URM,
    batch: ListTensors,
    item_x: torch.Tensor,
    user_x: torch.Tensor,
    l2_coef: float,
    legacy_double_sigmoid: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total loss, logits (B, K))`` of one batch: BCE + ``l2_coef``·Ω."""
    logits = model(
        user_x[batch.user],
        item_x[batch.history],
        batch.history_mask,
        item_x[batch.exposure],
        batch.history,
        batch.exposure,
        batch.user,
        batch.seen,
        batch.positives,
    )
    loss = Fn.urm_bce(logits, batch.labels, legacy_double_sigmoid)
    if l2_coef:
        loss = loss + l2_coef * Fn.mean_square_sum(model.regularised())
    return loss, logits


def held_out_users(n_users: int, fraction: float, seed: int) -> torch.Tensor:
    """``(U,)`` bool: a seeded ``fraction`` of the users (at least one), for ``holdout_users``."""
    n = max(1, round(fraction * n_users))
    order = torch.randperm(n_users, generator=generator(seed, "holdout_users"))
    held = torch.zeros(n_users, dtype=torch.bool)
    held[order[:n]] = True
    return held


@torch.no_grad()
def predict_logits(
    model: URM, data: ListTensors, item_x: torch.Tensor, user_x: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Logits ``(R, K)`` for every record, in eval mode (the model's mode is restored after)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        b = data.index(torch.arange(start, min(start + batch_size, len(data))))
        x_h, x_a = item_x[b.history], item_x[b.exposure]
        ids = (b.history, b.exposure, b.user, b.seen, b.positives)
        out.append(model(user_x[b.user], x_h, b.history_mask, x_a, *ids).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def check_urm(urm: Path, data: Path, split: str = "test", seed: int = 0) -> dict[str, float]:
    """Quality of a saved URM on a dataset split (what the reference's ``eval_env.py`` checks):
    AUC, log-loss, calibration, and the mean number of positives per list in one Bernoulli draw
    next to the logged one. Refuses a dataset of another item catalogue."""
    from rlrec.sim.urm_store import check_catalogue, load_urm

    loaded = load_urm(urm)
    dataset = ListDataset.load(data)
    check_catalogue(loaded.meta, loaded.path, dataset.path, dataset.manifest)
    records = dataset.tensors(split, loaded.model.cfg.max_history)
    logits = predict_logits(
        loaded.model, records, loaded.item_features, dataset.user_features(), 2048
    )
    report = response_report(logits, records.labels)
    draw = torch.rand(logits.shape, generator=generator(seed, "check_urm")) < torch.sigmoid(logits)
    report["sampled_positives_per_list"] = float(draw.sum(1).double().mean())
    report["logged_positives_per_list"] = float(records.labels.sum(1).double().mean())
    return report


class URMTrainer:
    """Fits a URM: ``URMTrainer(cfg, overwrite=...).fit()`` → summary (also in ``urm.json``)."""

    def __init__(
        self, cfg: URMTrainConfig, *, overwrite: bool = False, on_epoch: EpochLog | None = None
    ) -> None:
        self.cfg = cfg
        self.overwrite = overwrite
        self.on_epoch = on_epoch or (lambda _e, _n, _m: None)
        check_output(cfg.out, "urm", overwrite=overwrite, inputs=[cfg.data])
        self.device = resolve_device(cfg.device)
        set_threads(cfg.num_threads)
        keep_freed_memory()
        self.dataset = ListDataset.load(cfg.data)
        fit_split = "train" if cfg.role == "train" else "all"
        h = cfg.urm.max_history
        train, val = self.dataset.tensors(fit_split, h), self.dataset.tensors(cfg.val_split, h)
        if cfg.holdout_users:
            held = held_out_users(self.dataset.n_users, cfg.holdout_users, cfg.seed)
            train, val = train.index(~held[train.user]), val.index(held[val.user])
        self.train_data, self.val_data = train.to(self.device), val.to(self.device)
        if len(self.train_data) == 0:
            raise ConfigError(f"{cfg.data}: the '{fit_split}' split has no records to fit")
        self.item_x = self.dataset.item_features().to(self.device)
        self.user_x = self.dataset.user_features().to(self.device)
        seed_everything(cfg.seed)
        self.model = URM(
            cfg.urm,
            self.user_x.shape[1],
            self.item_x.shape[1],
            self.dataset.n_items,
            self.dataset.n_users,
        ).to(self.device)
        if cfg.urm.engagement:
            self.model.prior_rate.fill_(float(self.train_data.labels.double().mean()))

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        params, lr = self.model.parameters(), cfg.lr
        opt = (
            torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
            if cfg.weight_decay
            else torch.optim.Adam(params, lr=lr)
        )
        schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
        history: list[dict[str, Any]] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        n = len(self.train_data)
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            self.model.train()
            order = torch.randperm(n, generator=generator(cfg.seed, "urm_shuffle", epoch))
            total, batches = 0.0, 0
            for start in range(0, n, cfg.batch_size):
                batch = self.train_data.index(order[start : start + cfg.batch_size].to(self.device))
                loss, _ = urm_loss(
                    self.model,
                    batch,
                    self.item_x,
                    self.user_x,
                    cfg.l2_coef,
                    cfg.urm_legacy_double_sigmoid,
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
                batches += 1
            metrics: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": total / max(batches, 1),
                "lr": schedule.get_last_lr()[0],
            }
            schedule.step()
            if len(self.val_data):
                logits = predict_logits(
                    self.model, self.val_data, self.item_x, self.user_x, cfg.eval_batch_size
                )
                metrics.update(
                    {
                        f"val_{k}": v
                        for k, v in response_report(logits, self.val_data.labels.cpu()).items()
                    }
                )
            metrics["seconds"] = time.perf_counter() - t0
            history.append(metrics)
            self.on_epoch(epoch, cfg.epochs, metrics)
            key, sign = ("val_log_loss", -1.0) if cfg.keep == "best_log_loss" else ("val_auc", 1.0)
            value = metrics.get(key, float("nan"))
            score = -math.inf if value != value else sign * value
            if best is None or cfg.keep == "last" or score > best[0]:
                best = (score, epoch, copy.deepcopy(self.model.state_dict()))
            elif cfg.patience is not None and epoch - best[1] >= cfg.patience:
                break
        assert best is not None
        self.model.load_state_dict(best[2])
        self.model.eval()
        selected = history[best[1] - 1]
        summary = {
            "role": cfg.role,
            "fit_split": "train" if cfg.role == "train" else "all",
            "val_split": cfg.val_split,
            "holdout_users": cfg.holdout_users,
            "selected_epoch": best[1],
            "epochs_run": len(history),
            "selected": selected,
            "history": history,
            "dataset_content_hash": self.dataset.content_hash,
            "dataset": str(cfg.data),
            "urm_legacy_double_sigmoid": cfg.urm_legacy_double_sigmoid,
        }
        if cfg.baselines:
            train, val = self.train_data.to("cpu"), self.val_data.to("cpu")
            n_users, n_items = self.dataset.n_users, self.dataset.n_items
            summary["baselines"] = baseline_reports(train, val, n_users, n_items, cfg.seed)
        with new_output(cfg.out, "urm", overwrite=self.overwrite, inputs=[cfg.data]) as tmp:
            save_urm(
                tmp,
                self.model,
                cfg.urm,
                summary,
                self.dataset.manifest,
                self.item_x,
                self.user_x,
            )
            dump_config(cfg, tmp / "config.yaml")
            lines = "".join(json.dumps(m, sort_keys=True) + "\n" for m in history)
            atomic_write_bytes(tmp / "metrics.jsonl", lines.encode())
        return summary
