"""Seeded synthetic list logs whose ground truth is a user-response model (the embedded default).

The generative process (every draw derived from the prepare seed):

* users ``0..U-1`` and items ``1..N`` get random feature codes (:func:`rlrec.sim.features.random_codes`);
* the **planted URM** — a :class:`~rlrec.sim.urm.URM` with ``planted`` architecture, seeded
  initialisation, and its output layer rescaled so the logits of random (user, item) pairs have
  standard deviation ``logit_std`` — is the users' true response model;
* each user sees ``n_lists ~ min_lists + Poisson(mean_lists - min_lists)`` (≤ ``max_lists``) lists of
  ``slate_size`` distinct items from a popularity-biased logging policy (Zipf weights over a random
  item ranking, sampled without replacement by Gumbel top-k), at exponential gaps (mean 1 h) after a
  uniform start in 30 days;
* each shown item is clicked with the planted probability given the user's history of earlier
  positives (window ``planted.max_history``); histories therefore carry signal.

A URM trained on these logs can be compared with the planted one, and the default simulator
(``gymnasium.make_vec("rlrec/ListRec-v0")`` without a dataset) simulates users with the planted URM.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import torch
from pydantic import Field, model_validator

from rlrec.seeding import derive_seed
from rlrec.sim import functional as Fn
from rlrec.sim.features import features_column, random_codes
from rlrec.sim.lists import attach_histories
from rlrec.sim.loaders.base import ListSourceConfig, Progress, quiet
from rlrec.sim.schema import EXPOSURE, ITEM, LABELS, RAW, SEQ, TIME, USER, ListTables, records_frame
from rlrec.sim.urm import URM, URMConfig

HOUR_MS = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


class SyntheticListSource(ListSourceConfig):
    """Parameters of the synthetic list-log generator (see the module docstring)."""

    kind: Literal["synthetic"] = "synthetic"
    n_users: int = Field(1000, ge=1)
    n_items: int = Field(1000, ge=2)
    slate_size: int = Field(10, ge=1)
    mean_lists: float = Field(20.0, gt=0)
    min_lists: int = Field(2, ge=1)
    max_lists: int = Field(60, ge=1)
    user_dim: int = Field(8, ge=1)
    item_dim: int = Field(32, ge=1)
    zipf_exponent: float = Field(1.0, ge=0.0)
    logit_std: float = Field(2.0, gt=0)
    planted: URMConfig = URMConfig(hidden_dims=[64], dropout=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticListSource:
        if self.slate_size > self.n_items:
            raise ValueError("slate_size must not exceed n_items")
        if not self.min_lists <= self.max_lists:
            raise ValueError("min_lists must not exceed max_lists")
        if self.mean_lists < self.min_lists:
            raise ValueError("mean_lists must be at least min_lists")
        return self

    def input_files(self) -> list:
        return []

    def load(self, seed: int, say: Progress = quiet) -> ListTables:
        say("generating synthetic lists")
        user_x = random_codes(self.n_users, self.user_dim, seed, "users")
        item_x = random_codes(self.n_items, self.item_dim, seed, "items")
        items_t = torch.from_numpy(np.vstack([np.zeros((1, self.item_dim), np.float32), item_x]))
        users_t = torch.from_numpy(user_x)
        model = planted_urm(self, users_t, items_t, seed)
        records = self._simulate_logs(model, users_t, items_t, seed)
        users = pl.DataFrame(
            {USER: np.arange(self.n_users, dtype=np.int64), RAW: np.arange(self.n_users) + 1}
        ).with_columns(features_column(user_x))
        items = pl.DataFrame(
            {
                ITEM: np.arange(1, self.n_items + 1, dtype=np.int32),
                RAW: np.arange(1, self.n_items + 1),
            }
        ).with_columns(features_column(item_x))
        return ListTables(
            records=records,
            users=users,
            items=items,
            notes={"planted_logit_std": self.logit_std},
            extras={"planted_urm": (model, self.planted)},
        )

    @torch.no_grad()
    def _simulate_logs(
        self, model: URM, users_x: torch.Tensor, items_x: torch.Tensor, seed: int
    ) -> pl.DataFrame:
        rng = np.random.default_rng(derive_seed(seed, "synthetic_lists"))
        u, n, k, h = self.n_users, self.n_items, self.slate_size, self.planted.max_history
        n_lists = np.minimum(
            self.min_lists + rng.poisson(self.mean_lists - self.min_lists, u), self.max_lists
        )
        log_w = -self.zipf_exponent * np.log(rng.permutation(n) + 1.0)
        start = START_MS + (rng.random(u) * 30 * 24 * HOUR_MS).astype(np.int64)
        gaps = np.maximum(1, rng.exponential(HOUR_MS, (u, int(n_lists.max())))).astype(np.int64)
        times = start[:, None] + np.cumsum(gaps, axis=1)
        emb, qkv_table = model.item_tables(items_x)
        e_user = model.user_encoder(users_x)
        query = model.cross_query(e_user)
        hist = torch.zeros((u, h), dtype=torch.long)
        mask = torch.zeros((u, h), dtype=torch.bool)
        rows = []
        for j in range(int(n_lists.max())):
            active = np.flatnonzero(n_lists > j)
            slate = _gumbel_top_k(log_w, k, len(active), rng) + 1
            idx = torch.from_numpy(active)
            z = model.interest(e_user[idx], query[idx], qkv_table[hist[idx]], mask[idx])
            slate_t = torch.from_numpy(slate.astype(np.int64))
            probs = torch.sigmoid(Fn.slate_logits(emb[slate_t], z)).numpy()
            labels = (rng.random(probs.shape) < probs).astype(np.int8)
            new_h, new_m = Fn.append_positives(
                hist[idx], mask[idx], slate_t, torch.from_numpy(labels)
            )
            hist[idx], mask[idx] = new_h, new_m
            rows.append(
                pl.DataFrame(
                    {
                        USER: active.astype(np.int64),
                        SEQ: np.full(len(active), j, dtype=np.int32),
                        TIME: times[active, j],
                        EXPOSURE: pl.Series(slate.astype(np.int32)).cast(pl.List(pl.Int32)),
                        LABELS: pl.Series(labels).cast(pl.List(pl.Int8)),
                    }
                )
            )
        recs = pl.concat(rows).sort([USER, SEQ])
        return records_frame(attach_histories(recs))


def _gumbel_top_k(log_w: np.ndarray, k: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """``(rows, k)`` item indices drawn without replacement with probabilities ∝ ``exp(log_w)``,
    in draw order (Gumbel top-k: the k largest of ``log_w + Gumbel noise``, sorted)."""
    keys = log_w - np.log(-np.log(rng.random((rows, len(log_w)))))
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def planted_urm(
    src: SyntheticListSource, users_x: torch.Tensor, items_x: torch.Tensor, seed: int
) -> URM:
    """The ground-truth URM: seeded init, output rescaled to logits of std ``src.logit_std``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "planted_urm"))
        model = URM(src.planted, users_x.shape[1], items_x.shape[1], items_x.shape[0] - 1).eval()
        g = torch.Generator().manual_seed(derive_seed(seed, "planted_probe"))
        m = min(512, users_x.shape[0])
        users = torch.randint(0, users_x.shape[0], (m,), generator=g)
        hist = torch.randint(1, items_x.shape[0], (m, src.planted.max_history), generator=g)
        mask = torch.rand((m, src.planted.max_history), generator=g) < 0.5
        slate = torch.randint(1, items_x.shape[0], (m, 16), generator=g)
        with torch.no_grad():
            logits = model(users_x[users], items_x[hist], mask, items_x[slate], hist, slate)
            scale = src.logit_std / float(logits.std().clamp_min(1e-6))
            out = model.fuse if model.fuse is not None else model.cross_attn.out_proj
            out.weight.mul_(scale)
            out.bias.mul_(scale)
    return model
