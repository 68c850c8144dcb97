"""Raw user/item feature vectors (docs/online.md, List data).

``random_codes`` reproduces the reference: every item and user gets a fixed i.i.d. standard-normal
code (the shipped KuaiRand ``iEmb.npy``/``uEmb.npy`` are exactly such codes), drawn from a generator
derived from the prepare seed, so the same seed gives the same codes on every platform. Side
information (genres, ages, categorical hashes ...) is turned into one-hot / multi-hot / standardised
columns by the helpers below. The padding item 0 always has the zero vector (added at load time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import cast

import numpy as np
import polars as pl

from rlrec.seeding import derive_seed
from rlrec.sim.schema import FEATURES, RAW


def random_codes(n: int, dim: int, seed: int, purpose: str) -> np.ndarray:
    """``(n, dim)`` float32 i.i.d. N(0, 1) codes from ``derive_seed(seed, purpose)`` (NumPy PCG64)."""
    rng = np.random.default_rng(derive_seed(seed, "features", purpose))
    return rng.standard_normal((n, dim)).astype(np.float32)


def one_hot(values: Sequence[object]) -> np.ndarray:
    """``(n, c)`` one-hot of categorical values; categories in sorted order of their text."""
    text = [str(v) for v in values]
    cats = sorted(set(text))
    index = {c: i for i, c in enumerate(cats)}
    out = np.zeros((len(text), len(cats)), dtype=np.float32)
    out[np.arange(len(text)), [index[t] for t in text]] = 1.0
    return out


def multi_hot(lists: Sequence[Sequence[str]]) -> np.ndarray:
    """``(n, c)`` multi-hot of token lists (e.g. genres); tokens in sorted order."""
    cats = sorted({t for tokens in lists for t in tokens})
    index = {c: i for i, c in enumerate(cats)}
    out = np.zeros((len(lists), len(cats)), dtype=np.float32)
    for row, tokens in enumerate(lists):
        for t in tokens:
            out[row, index[t]] = 1.0
    return out


def standardize(values: np.ndarray) -> np.ndarray:
    """``(n, 1)`` z-scores; missing values (NaN) become 0, a constant column becomes all zeros."""
    x = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(x)
    out = np.zeros(len(x), dtype=np.float64)
    if ok.any():
        mean, std = x[ok].mean(), x[ok].std()
        out[ok] = (x[ok] - mean) / std if std > 0 else 0.0
    return out.astype(np.float32)[:, None]


def features_column(matrix: np.ndarray) -> pl.Series:
    """A ``features`` column (List(Float32)) from an ``(n, d)`` matrix."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    return pl.Series(FEATURES, m).cast(pl.List(pl.Float32))


def features_matrix(table: pl.DataFrame) -> np.ndarray:
    """The ``(n, d)`` float32 matrix of a table's ``features`` column."""
    col = table.get_column(FEATURES)
    if table.height == 0:
        return np.zeros((0, 0), dtype=np.float32)
    dim = col.list.len().max()
    return col.explode().to_numpy().astype(np.float32).reshape(table.height, int(cast(int, dim)))


def catalogue_hash(items: pl.DataFrame) -> str:
    """SHA-256 over the item catalogue: raw ids in dense order and the feature bytes.

    Two datasets share a catalogue iff this hash is equal; a URM trained on one refuses the other.
    """
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, items.get_column(RAW).to_list())).encode())
    digest.update(features_matrix(items).astype("<f4").tobytes())
    return digest.hexdigest()
