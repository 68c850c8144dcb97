"""``rlrec demo``: the quick start end to end, from the installed package alone.

Synthetic sessions → a prepared dataset → supervised SASRec and SA2C-SASRec (the two configs beside
this module, shipped in the wheel) → their test metrics side by side → a recommendation for a logged
session. Every step is the ``rlrec`` command of the same name (``data synth``, ``data prepare``,
``data stats``, ``train``, ``compare``, ``recommend``) with the paths under ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rlrec.cli_common import OverwriteOpt

CONFIGS = Path(__file__).resolve().parent
"""``supervised_sasrec.yaml`` and ``sa2c_sasrec.yaml``: the demo's two training configs."""
RUNS = ("supervised_sasrec", "sa2c_sasrec")
SESSION = "4999"
"""The logged session the demo recommends for (one of the synthetic data's test sessions)."""


def demo_command(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for the demo's data and runs.")
    ] = Path("runs/demo"),
    overwrite: OverwriteOpt = False,
) -> None:
    """Run the quick start: synthetic data → dataset → SASRec and SA2C-SASRec → test table → a
    recommendation (about a minute on 2 CPU cores)."""
    from rlrec import cli

    raw, data = out_dir / "raw", out_dir / "data"
    cli.data_synth(out_dir=raw, config=None, set_=None, overwrite=overwrite)
    cli.data_prepare(
        source="synthetic",
        out_dir=data,
        raw=raw,
        config=None,
        set_=None,
        overwrite=overwrite,
        memory_limit=None,
    )
    cli.data_stats(dataset=data, as_json=False)
    for name in RUNS:
        # JSON strings are YAML strings: any path stays a path (never a number or a mapping)
        paths = [f"data={json.dumps(str(data))}", f"out={json.dumps(str(out_dir / name))}"]
        cli.train(config=CONFIGS / f"{name}.yaml", set_=paths, resume=False, overwrite=overwrite)
    cli.compare(runs=[out_dir / name for name in RUNS])
    cli.recommend(
        run_dir=out_dir / RUNS[-1],
        history=None,
        sessions=None,
        out_file=None,
        session=SESSION,
        k=10,
        exclude_history=False,
        checkpoint="best",
        index="auto",
        index_threshold=100_000,
        overwrite=False,
    )
