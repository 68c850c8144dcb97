"""Top-k recommendations from a saved run, in the user's raw item ids.

``Recommender.from_run(RUN_DIR)`` rebuilds the network from the run's ``config.yaml`` and ``run.json``
and loads the evaluated network's weights from a checkpoint (``best`` by default) — safetensors only,
no pickle, and the run directory is self-contained (``items.parquet`` maps item indices to raw ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import torch

from rlrec.config import build_config
from rlrec.data.transitions import history_window
from rlrec.device import resolve_device
from rlrec.errors import DataFormatError, RlrecError
from rlrec.eval.lists import in_total_order, ranked_top
from rlrec.fsutil import read_json
from rlrec.models.network import QNetwork
from rlrec.train.checkpoint import latest_checkpoint, load_checkpoint, load_modules
from rlrec.train.config import TrainConfig
from rlrec.train.rundir import RUN_META
from rlrec.train.trainer import BEST, CHECKPOINTS, ITEMS, build_network

if TYPE_CHECKING:
    from rlrec.serve.ann import ItemIndex


def resolve_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    """``best``, ``latest`` or a checkpoint directory path."""
    if checkpoint == "best":
        path = run_dir / BEST
    elif checkpoint == "latest":
        found = latest_checkpoint(run_dir / CHECKPOINTS)
        if found is None:
            raise DataFormatError(run_dir, "the run has no checkpoint yet")
        path = found
    else:
        path = Path(checkpoint)
    if not path.is_dir():
        raise DataFormatError(path, "checkpoint not found")
    return path


def load_run(
    run_dir: Path, checkpoint: str = "best", device: str = "auto"
) -> tuple[TrainConfig, QNetwork, dict[str, Any]]:
    """``(config, evaluated network in eval mode, run.json)`` of a run directory; ``run.json`` gains
    ``checkpoint``: the loaded checkpoint's path, step and validation metrics."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise DataFormatError(run_dir, "not an rlrec run directory (no config.yaml)")
    cfg = build_config(TrainConfig, path=run_dir / "config.yaml")
    meta = read_run_meta(run_dir)
    net = build_network(cfg, meta["n_items"], meta["state_size"])
    path = resolve_checkpoint(run_dir, checkpoint)
    tensors, _, state = load_checkpoint(path)
    meta["checkpoint"] = {"path": str(path), "step": state.get("step"), "val": state.get("val")}
    name = (
        f"net{cfg.eval_network}"
        if any(k.startswith(f"net{cfg.eval_network}.") for k in tensors)
        else "net0"
    )
    load_modules({name: net}, tensors, path)
    net.to(resolve_device(device)).eval()
    return cfg, net, meta


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of an offline run, with the fields serving needs checked."""
    path = Path(run_dir) / RUN_META
    meta = read_json(path, "run metadata")
    if not isinstance(meta, dict):
        raise DataFormatError(path, "expected a JSON object")
    for key in ("n_items", "state_size", "pad_id"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataFormatError(path, f"field '{key}' must be a positive integer, got {value!r}")
    return meta


def read_items(run_dir: Path, n_items: int) -> pl.DataFrame:
    """``items.parquet`` of a run: item indices ``0..n_items-1`` and their raw ids."""
    path = Path(run_dir) / ITEMS
    if not path.is_file():
        raise DataFormatError(path, "missing: the run's item map (index → raw item id)")
    try:
        items = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from None
    if not {"item", "item_id"} <= set(items.columns):
        raise DataFormatError(path, f"needs columns item, item_id; has {', '.join(items.columns)}")
    index = items.get_column("item")
    if items.height != n_items or sorted(index.to_list()) != list(range(n_items)):
        raise DataFormatError(
            path, f"must map each of the run's {n_items} item indices once; has {items.height} rows"
        )
    if (
        items.get_column("item_id").null_count()
        or items.get_column("item_id").n_unique() != n_items
    ):
        raise DataFormatError(path, "raw item ids must be present and distinct")
    return items


def history_states(
    histories: Sequence[Sequence[int]],
    state_size: int,
    pad_id: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Item-index histories (oldest first) → the network's input ``(state [B, state_size],
    len_state [B])`` int64, cut by :func:`rlrec.data.transitions.history_window` as in training:
    the last ``state_size`` items, right-padded with ``pad_id``; ``len_state`` 1 when empty."""
    # one trailing pad keeps the gather valid when every history is empty
    flat = torch.tensor(
        [i for h in histories for i in h] + [pad_id], dtype=torch.long, device=device
    )
    lengths = torch.tensor([len(h) for h in histories], dtype=torch.long, device=device)
    ends = torch.cumsum(lengths, 0)
    return history_window(flat, ends - lengths, ends, state_size, pad_id)


@dataclass(frozen=True)
class Query:
    """One request to rank: the history as item indices (oldest first), how many items, and
    whether the history's own items may be returned."""

    history: list[int]
    k: int
    exclude_history: bool = False


class Recommender:
    """Scores the full catalogue for histories of raw item ids and returns the top k."""

    def __init__(
        self, cfg: TrainConfig, net: QNetwork, items: pl.DataFrame, state_size: int
    ) -> None:
        self.cfg = cfg
        self.net = net
        self.state_size = state_size
        self.raw_ids = items.sort("item").get_column("item_id")
        self.ids: list[Any] = self.raw_ids.to_list()
        self.index = {raw: i for i, raw in enumerate(self.ids)}
        self.device = next(net.parameters()).device
        self.meta: dict[str, Any] = {}
        self.ann: ItemIndex | None = None  # approximate top-k (use_index)
        self.index_recall: float | None = None

    @classmethod
    def from_run(cls, run_dir: Path, checkpoint: str = "best", device: str = "auto") -> Recommender:
        cfg, net, meta = load_run(Path(run_dir), checkpoint, device)
        items = read_items(run_dir, meta["n_items"])
        rec = cls(cfg, net, items, meta["state_size"])
        rec.meta = meta
        return rec

    def parse_ids(self, text: str) -> list[Any]:
        """``"12,5,77"`` → raw ids of the catalogue's type (ints when the ids are integers)."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if self.raw_ids.dtype == pl.Int64:
            bad = [p for p in parts if not p.lstrip("+-").isdigit()]
            if bad:
                raise RlrecError(f"history: item ids must be integers, found {', '.join(bad[:5])}")
            return [int(p) for p in parts]
        return parts

    def lookup(
        self, history: Sequence[Any], unknown: Literal["error", "skip"] = "error"
    ) -> tuple[list[int], list[Any]]:
        """Item indices of a history of raw ids and the ids the catalogue does not know.

        ``unknown="error"`` raises :class:`RlrecError` naming them; ``"skip"`` leaves them out of
        the history (the model sees the known items in their order) and returns them."""
        missing = [h for h in history if h not in self.index]
        if missing and unknown == "error":
            shown = ", ".join(map(str, missing[:5]))
            raise RlrecError(
                f"history: {len(missing)} item id(s) not in the trained catalogue ({shown}); "
                f"the model knows {len(self.index)} items"
            )
        return [self.index[h] for h in history if h in self.index], missing

    def encode(self, history: Sequence[Any]) -> list[int]:
        """Item indices of a history of raw ids; an unknown id is an error."""
        return self.lookup(history)[0]

    @torch.inference_mode()
    def score(self, encoded: Sequence[Sequence[int]]) -> torch.Tensor:
        """Catalogue scores ``(B, n_items)`` (float32, higher is better) of encoded histories
        (item indices, oldest first; the network reads the last ``state_size``)."""
        return self.net.head(self.cfg.objective.eval_head, self.states(encoded)).float()

    @torch.inference_mode()
    def rank(self, scores: torch.Tensor, queries: Sequence[Query]) -> list[list[tuple[Any, float]]]:
        """The top ``query.k`` raw ids and scores of each row of ``scores`` ``(B, n_items)``.

        One selection at the largest ``k`` of the batch serves every row, so a request gets the
        same list alone or batched with others; items of equal score are ordered by item index
        (:func:`ranked_top`), a NaN score ranks last. With
        ``exclude_history`` no item of the history is returned: the list is shorter than ``k``
        when fewer than ``k`` other items remain."""
        scores = torch.nan_to_num(scores, nan=-torch.inf)  # a NaN score ranks last
        for row, q in enumerate(queries):
            if q.exclude_history and q.history:
                scores[row, torch.tensor(q.history, device=scores.device)] = -torch.inf
        return self._lists(*ranked_top(scores, max(q.k for q in queries)), queries)

    def _lists(
        self, values: torch.Tensor, indices: torch.Tensor, queries: Sequence[Query]
    ) -> list[list[tuple[Any, float]]]:
        """Ranked ``(values, indices)`` ``(B, m)`` → each query's first ``k`` raw ids with scores
        (its history's items left out under ``exclude_history``)."""
        ids, out = self.ids, []
        for q, idx, val in zip(queries, indices.tolist(), values.tolist(), strict=True):
            seen = set(q.history) if q.exclude_history else set()
            ranked = [(ids[i], v) for i, v in zip(idx, val, strict=True) if i not in seen]
            out.append(ranked[: q.k])
        return out

    def use_index(self, threshold: int = 100_000, *, samples: int = 256, seed: int = 0) -> bool:
        """Answer from an approximate FAISS index (:mod:`rlrec.serve.ann`) when the catalogue has
        at least ``threshold`` items (``0``: always); returns whether it does. Its search breadth
        is the smallest that reaches recall@10 ≥ 0.95 against the exact top 10 on ``samples``
        random histories (:meth:`~rlrec.serve.ann.ItemIndex.calibrate`); the recall goes to
        ``self.index_recall``."""
        if len(self.raw_ids) < threshold:
            return False
        from rlrec.serve.ann import ItemIndex

        head = self.net.head_layer(self.cfg.objective.eval_head)
        self.ann = ItemIndex(head.weight, head.bias)
        g = torch.Generator().manual_seed(seed)
        n = len(self.raw_ids)
        histories = [
            torch.randint(
                0, n, (int(torch.randint(0, self.state_size + 1, (1,), generator=g)),), generator=g
            ).tolist()
            for _ in range(samples)
        ]
        self.index_recall = self.ann.calibrate(self.states(histories), 10, 0.95)
        return True

    def choose_index(
        self, mode: Literal["auto", "exact", "faiss"], threshold: int = 100_000
    ) -> str | None:
        """Apply the ``--index`` option: ``exact`` ranks the full catalogue; ``faiss`` always uses
        the approximate index; ``auto`` uses it from ``threshold`` items on when the ``faiss``
        extra is installed and its calibrated recall@10 reaches 0.95 (else the exact ranking).
        Returns a line describing what was chosen (with the recall), or ``None``."""
        if mode == "exact":
            return None
        if mode == "auto":
            import importlib.util

            if importlib.util.find_spec("faiss") is None:
                return None
        if not self.use_index(0 if mode == "faiss" else threshold):
            return None
        recall = (
            f"recall@10 {self.index_recall:.3f} against the exact ranking on 256 random histories"
        )
        if mode == "auto" and (self.index_recall or 0.0) < 0.95:
            self.ann = None  # an index that misses this often is not worth its speed
            return f"a FAISS index reached only {recall}: ranking the full catalogue instead"
        return f"approximate top-k: FAISS HNSW index over {len(self.raw_ids):,} items, {recall}"

    @torch.inference_mode()
    def states(self, encoded: Sequence[Sequence[int]]) -> torch.Tensor:
        """The network's encoded states ``(B, H)`` of encoded histories."""
        state, len_state = history_states(encoded, self.state_size, len(self.raw_ids), self.device)
        return self.net(state, len_state)

    @torch.inference_mode()
    def top(self, queries: Sequence[Query]) -> list[list[tuple[Any, float]]]:
        """Each query's list: :meth:`rank` over the full catalogue, or, with an index
        (:meth:`use_index`), the same ordering over the index's candidates (``k`` plus the
        history's length when it is excluded); no queries, no lists."""
        if not queries:
            return []
        if self.ann is None:
            return self.rank(self.score([q.history for q in queries]), queries)
        want = max(q.k + (len(set(q.history)) if q.exclude_history else 0) for q in queries)
        values, indices = self.ann.search(self.states([q.history for q in queries]), want)
        values = torch.nan_to_num(values, nan=-torch.inf)
        return self._lists(*in_total_order(values, indices), queries)

    def recommend(
        self,
        histories: Sequence[Sequence[Any]] | Mapping[Any, Sequence[Any]],
        k: int = 10,
        exclude_history: bool = False,
        *,
        as_frame: bool = False,
    ) -> list[list[tuple[Any, float]]] | pl.DataFrame:
        """For each history of raw ids (oldest first) the ``k`` best raw item ids with their
        scores (see :meth:`rank`); an unknown id is an error.

        ``histories``: a sequence of histories, or a mapping from a user or session id to its
        history. The default result is one list of ``(item_id, score)`` per history, in order.
        ``as_frame=True`` returns a polars DataFrame instead, one row per recommended item, best
        first within each history: ``session`` (the mapping's key, or the history's position
        ``0, 1, …`` in the sequence), ``rank`` (1 = best), ``item_id`` (raw id) and ``score``."""
        keys = list(histories) if isinstance(histories, Mapping) else None
        lists = histories.values() if isinstance(histories, Mapping) else histories
        self.check_k(k)
        queries = [Query(self.encode(h), k, exclude_history) for h in lists]
        top = self.top(queries)
        if not as_frame:
            return top
        session = pl.Series("session", keys if keys is not None else range(len(top)))
        lengths = [len(recs) for recs in top]
        return pl.DataFrame(
            {
                "session": session.gather([i for i, n in enumerate(lengths) for _ in range(n)]),
                "rank": pl.Series([r for n in lengths for r in range(1, n + 1)], dtype=pl.Int64),
                "item_id": pl.Series(
                    [i for recs in top for i, _ in recs], dtype=self.raw_ids.dtype
                ),
                "score": pl.Series([v for recs in top for _, v in recs], dtype=pl.Float64),
            }
        )

    def check_k(self, k: int) -> None:
        """``k`` must be in ``1..n_items``."""
        if not 1 <= k <= len(self.raw_ids):
            raise RlrecError(f"k must be between 1 and {len(self.raw_ids)}, got {k}")
