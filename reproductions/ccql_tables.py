"""Reproduce a table of P-CCQL (SASRec-CO / SASRec-CCQL) from the raw files, beside the paper's.

    python reproductions/ccql_tables.py --table 4 --raw-rc15 PATH/TO/yoochoose-data
    python reproductions/ccql_tables.py --table 3 --raw-retailrocket PATH/TO/events.csv
    python reproductions/ccql_tables.py --table 1 --raw-rc15 ... --raw-retailrocket ... --jobs 4

Each row's configs are in ``configs/ccql/<dataset>/`` (written by ``make_ccql_configs.py``): the
paper's method and, where the authors' code differs, its literal ``*_legacy`` form. Every config runs
for each ``--seeds`` seed as its own process (``rlrec sweep``; finished runs are reused). Each of our
rows is printed under two protocols (P-CCQL §4.1): ``per_metric_top_k`` — the paper's "mean of
the top-5 checkpoints", each column choosing its own checkpoints by validation (optimistic) — and
``best`` — rlrec's single best-validation checkpoint; both on the **test** split, mean ± std over seeds.
``--max-steps`` shortens every run (a smoke test, not a reproduction).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, prepare_dataset, table_parser

from rlrec.experiments.results import Group, Protocol, find_runs, group_runs
from rlrec.experiments.sweep import SweepConfig, run_sweep

PAPER = yaml.safe_load((Path(__file__).parent / "paper_ccql.yaml").read_text())
PROTOCOLS: tuple[Protocol, ...] = ("per_metric_top_k", "best")


def run_config(
    name: str, data: Path, work: Path, seeds: list[int], jobs: int | None, max_steps: int | None
) -> Group:
    """All seeds of ``configs/ccql/<name>.yaml`` on ``data`` (one process per run), as one group."""
    overrides: dict[str, Any] = {"data": str(data)}
    if max_steps:
        overrides |= {"train.max_steps": max_steps, "train.eval_every": max(1, max_steps // 2)}
    sweep = SweepConfig(
        base=ROOT / "configs" / "ccql" / f"{name}.yaml",
        out=work / "runs" / "ccql" / name,
        seeds=seeds,
        overrides=overrides,
        jobs=jobs,
    )
    run_sweep(sweep)
    (group,) = group_runs(find_runs([sweep.out]))
    return group


def format_table(table: int, groups: dict[str, Group], k: int = 5) -> str:
    """Markdown: the paper's row, then each of our configs under each protocol (mean ± std)."""
    spec = PAPER["tables"][table]
    columns = spec["columns"]
    lines = [f"### {spec['title']}", "", "| model | " + " | ".join(columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for row in spec["rows"]:
        paper = [
            f"{v:,.0f}" if c.startswith("reward") else f"{v:.3f}"
            for c, v in zip(columns, row["paper"], strict=True)
        ]
        lines.append(f"| {row['label']} (paper) | " + " | ".join(paper) + " |")
        for name in row["configs"]:
            group = groups.get(name)
            if group is None:
                continue
            for protocol in PROTOCOLS:
                cells = []
                for c in columns:
                    stats = group.stats(protocol, c, k)
                    if stats is None:
                        cells.append("–")
                    elif c.startswith("reward"):
                        cells.append(f"{stats[0]:,.0f} ± {stats[1]:,.0f}")
                    else:
                        cells.append(f"{stats[0]:.3f} ± {stats[1]:.3f}")
                label = f"{row['label']} — rlrec `{name}`, {protocol}, {len(group.runs)} seeds"
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The runner's command line: the shared table options and ``--jobs``."""
    parser = table_parser(__doc__, PAPER["tables"])
    parser.add_argument("--jobs", type=int, help="runs at a time (default: cores // 2)")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    raw = {"rc15": args.raw_rc15, "retailrocket": args.raw_retailrocket}
    groups: dict[str, Group] = {}
    for row in PAPER["tables"][args.table]["rows"]:
        for name in row["configs"]:
            dataset = name.split("/")[0]
            if raw[dataset] is None:
                parser.error(f"table {args.table} needs --raw-{dataset}")
            if name not in groups:
                data = prepare_dataset(dataset, raw[dataset], args.work)
                groups[name] = run_config(
                    name, data, args.work, args.seeds, args.jobs, args.max_steps
                )
    print(format_table(args.table, groups))


if __name__ == "__main__":
    main()
