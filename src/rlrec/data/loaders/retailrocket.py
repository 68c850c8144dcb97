"""RetailRocket (Kaggle "retailrocket/ecommerce-dataset") ``events.csv``.

Raw format (docs/data.md): header ``timestamp,visitorid,event,itemid,transactionid``; timestamp in
Unix milliseconds; ``event`` ∈ {view, addtocart, transaction}; ``transactionid`` empty except on
transaction rows.

Pipeline of Xin et al. (WSDM'22 §4.1.1): the *visitor* is the session (a whole multi-month history,
no time-gap sessionisation); ``view`` = click and ``addtocart`` = purchase; **transaction rows are
dropped** (the reference keeps rows with an empty ``transactionid``), so the papers' "purchases" are
add-to-cart events. ``purchase_event: transaction`` gives the true-purchase variant instead: views are
clicks, transactions are purchases, add-to-carts are dropped. The reference filters (visitors with ≥ 3
events, then items with ≥ 3 events, one pass) are this source's default ``filters``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from rlrec.data.filters import FilterConfig
from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import MAX_EPOCH_MS, Field, find_file, read_delimited
from rlrec.data.schema import IS_BUY, ITEM, SESSION, TIMESTAMP

EVENTS_FILE = "events.csv"
HEADER = ("timestamp", "visitorid", "event", "itemid", "transactionid")
FIELDS = (
    Field(TIMESTAMP, "int", max_abs=MAX_EPOCH_MS),
    Field(SESSION, "int"),
    Field("event", "str", choices=("view", "addtocart", "transaction")),
    Field(ITEM, "int"),
    Field("transactionid", "any"),
)


class RetailRocketSource(SourceConfig):
    """RetailRocket from ``events.csv``. ``path``: the file or the directory holding it."""

    kind: Literal["retailrocket"] = "retailrocket"
    purchase_event: Literal["addtocart", "transaction"] = "addtocart"

    def input_files(self) -> list[Path]:
        return [find_file(self.path, [EVENTS_FILE], f"RetailRocket {EVENTS_FILE}")]

    def default_filters(self) -> FilterConfig:
        return FilterConfig(min_session_events=3, min_item_events=3, iterate=False)

    def load(self, seed: int) -> pl.DataFrame:
        (path,) = self.input_files()
        df = read_delimited(
            path, FIELDS, separator=",", header=HEADER, what="RetailRocket events file"
        )
        dropped = "transaction" if self.purchase_event == "addtocart" else "addtocart"
        return df.filter(pl.col("event") != dropped).select(
            SESSION,
            ITEM,
            TIMESTAMP,
            (pl.col("event") == self.purchase_event).cast(pl.Int8).alias(IS_BUY),
        )
