"""Rows of a trainable table at item ids, with a backward that sums in a fixed order.

``table[ids]`` (advanced indexing) gathers the same rows, but its backward (``index_put_`` with
accumulation) adds the gradients of repeated ids with atomic additions across threads on CPU once
the gather has 32,768 elements or more: the order of the sums, and so the trained weights, changed
from run to run with the same seed. The embedding lookup's backward and ``index_select``'s
(``index_add_``) add each row's gradients in the order of the ids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def table_rows(table: torch.Tensor, ids: torch.Tensor, sparse: bool = False) -> torch.Tensor:
    """``table[ids]``: a ``(N, d)`` table → ``(*ids.shape, d)``, a ``(N,)`` table → ``ids.shape``.

    ``sparse`` (2-D tables only): the table's gradient is row-sparse (only the rows looked up)."""
    if table.dim() == 1:
        return table.index_select(0, ids.reshape(-1)).view(ids.shape)
    return F.embedding(ids, table, sparse=sparse)
