"""What the table runners share: preparing a paper's dataset from the user's raw files."""

from __future__ import annotations

from pathlib import Path

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
