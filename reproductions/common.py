"""What the table runners share: preparing a paper's dataset from the user's raw files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlrec.config import build_config
from rlrec.data.prepare import PrepareConfig, prepare

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"rc15": "yoochoose", "retailrocket": "retailrocket"}


def prepare_dataset(dataset: str, raw: Path, work: Path) -> Path:
    """``work/data/<dataset>`` prepared with ``configs/data/<dataset>.yaml`` (once)."""
    out = work / "data" / dataset
    if not (out / "manifest.json").exists():
        cfg = build_config(
            PrepareConfig,
            path=ROOT / "configs" / "data" / f"{dataset}.yaml",
            cli={"source": {"kind": SOURCES[dataset], "path": str(raw)}},
        )
        prepare(cfg, out)
    return out


def table_parser(doc: str, tables: dict[int, Any]) -> argparse.ArgumentParser:
    """The command line both table runners take: which table, the raw files, seeds, work dir."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--table", type=int, choices=sorted(tables), required=True, help="paper table to reproduce"
    )
    parser.add_argument(
        "--raw-rc15", type=Path, help="RecSys Challenge 2015 (YooChoose) raw files, for rc15 rows"
    )
    parser.add_argument(
        "--raw-retailrocket", type=Path, help="RetailRocket raw files, for retailrocket rows"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of every run"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "runs" / "reproductions",
        help="where the prepared data and the runs go",
    )
    parser.add_argument("--max-steps", type=int, help="shorten every run (a smoke test)")
    return parser
