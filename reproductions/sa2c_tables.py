"""Reproduce a table of Xin et al. (WSDM'22) from the raw files and print it beside the paper's.

    python reproductions/sa2c_tables.py --table 2 --raw-rc15 PATH/TO/yoochoose-data
    python reproductions/sa2c_tables.py --table 3 --raw-retailrocket PATH/TO/events.csv
    python reproductions/sa2c_tables.py --table 4 --raw-rc15 ... --raw-retailrocket ...

Each cell's config is in ``configs/<dataset>/`` (written by ``make_sa2c_configs.py``); the data are
prepared with ``configs/data/<dataset>.yaml``. Every config runs for each ``--seeds`` seed (the paper
averages 5 runs), the checkpoint is selected on validation purchase NDCG@10, and the table shows
mean ± std of its **test** metrics with the paper's number under it (docs/offline.md).
``--max-steps`` shortens every run (a smoke test, not a reproduction).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, prepare_dataset, table_parser

from rlrec.config import build_config
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer

PAPER = yaml.safe_load((Path(__file__).parent / "paper_sa2c.yaml").read_text())


def run_cell(name: str, data: Path, work: Path, seed: int, max_steps: int | None) -> dict[str, Any]:
    out = work / "runs" / name / f"seed{seed}"
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    overrides = [f"data={data}", f"out={out}", f"seed={seed}"]
    if max_steps:
        overrides += [f"train.max_steps={max_steps}", f"train.eval_every={max(1, max_steps // 2)}"]
    cfg = build_config(TrainConfig, path=ROOT / "configs" / f"{name}.yaml", overrides=overrides)
    return Trainer(cfg, overwrite=True).fit()


def format_table(table: int, results: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: one row per cell with ours (mean ± std over seeds) and the paper's value."""
    rows = PAPER["tables"][table]["rows"]
    columns = [c for c in next(iter(rows.values())) if c != "label"]
    lines = [
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, paper in rows.items():
        runs = results.get(name, [])
        ours = []
        for c in columns:
            vals = [r["test"][c] for r in runs if r["test"].get(c) is not None]
            if not vals:
                ours.append("–")
            elif len(vals) == 1:
                ours.append(f"{vals[0]:.4f}")
            else:
                ours.append(f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}")
        lines.append(f"| {paper['label']} (rlrec, {len(runs)} seeds) | " + " | ".join(ours) + " |")
        lines.append(
            f"| {paper['label']} (paper) | " + " | ".join(f"{paper[c]:.4f}" for c in columns) + " |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The runner's command line (the shared table options)."""
    return table_parser(__doc__, PAPER["tables"])


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    raw = {"rc15": args.raw_rc15, "retailrocket": args.raw_retailrocket}
    results: dict[str, list[dict[str, Any]]] = {}
    for name in PAPER["tables"][args.table]["rows"]:
        dataset = name.split("/")[0]
        if raw[dataset] is None:
            parser.error(f"table {args.table} needs --raw-{dataset}")
        data = prepare_dataset(dataset, raw[dataset], args.work)
        results[name] = [run_cell(name, data, args.work, s, args.max_steps) for s in args.seeds]
    print(format_table(args.table, results))


if __name__ == "__main__":
    main()
