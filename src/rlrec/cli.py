"""The ``rlrec`` command line (typer).

``rlrec data synth|prepare|stats`` today; ``train``, ``evaluate``, ``recommend``, ``sim`` and ``report``
join as their issues land. User errors (:class:`rlrec.errors.RlrecError`) print one line and exit 2.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rlrec.config import build_config
from rlrec.errors import RlrecError

app = typer.Typer(
    help="Reinforcement-learning recommender systems: data, training, evaluation, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare raw logs and synthetic data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file.", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config key: --set a.b=value (YAML value).",
        show_default=False,
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace an existing output (only once the new one is complete)."
    ),
]


@contextmanager
def stages(title: str) -> Iterator[Any]:
    """A spinner naming the current stage; each finished stage is printed with its duration."""
    state = {"name": None, "t": time.perf_counter()}

    with err.status(title) as status:

        def advance(name: str) -> None:
            now = time.perf_counter()
            if state["name"] is not None:
                err.print(f"  [green]✓[/] {state['name']} ({now - state['t']:.1f} s)")
            state.update(name=name, t=now)
            status.update(f"{name} …")

        yield advance
        advance("")


@data_app.command("synth")
def data_synth(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Generate seeded synthetic sessions with a planted structure (the embedded default data)."""
    from rlrec.data.synthetic import SynthConfig, write_synthetic

    cfg = build_config(SynthConfig, path=config, overrides=set_)
    with stages("generating"):
        events = write_synthetic(cfg, out_dir, overwrite=overwrite)
    buys = int(events.get_column("is_buy").sum())
    out.print(
        f"wrote {out_dir}: {cfg.n_sessions} sessions, {events.height} events "
        f"({events.height - buys} clicks, {buys} purchases), {cfg.n_items} items, seed {cfg.seed}"
    )


@data_app.command("prepare")
def data_prepare(
    source: Annotated[
        str,
        typer.Argument(help="yoochoose | retailrocket | movielens | recbole | generic | synthetic"),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")],
    raw: Annotated[
        Path | None,
        typer.Option(
            "--raw", "-r", help="Raw file or directory (source.path).", show_default=False
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Turn a raw log into a prepared dataset (Parquet + manifest.json), atomically."""
    from rlrec.data.prepare import PrepareConfig, prepare

    cli: dict[str, Any] = {"source": {"kind": source}}
    if raw is not None:
        cli["source"]["path"] = str(raw)
    cfg = build_config(PrepareConfig, path=config, overrides=set_, cli=cli)
    with stages("preparing") as advance:
        manifest = prepare(cfg, out_dir, overwrite=overwrite, progress=advance)
    c = manifest["counts"]
    sizes = " / ".join(str(manifest["splits"][s]["sessions"]) for s in ("train", "val", "test"))
    out.print(
        f"wrote {out_dir}: {c['sessions']} sessions ({sizes} train/val/test), "
        f"{manifest['n_items']} items, {c['clicks']} clicks, {c['purchases']} purchases"
    )


@data_app.command("stats")
def data_stats(
    dataset: Annotated[Path, typer.Argument(help="Prepared dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the statistics table of a prepared dataset (spec-offline §A.8) and diagnostics."""
    from rlrec.data.dataset import PreparedDataset
    from rlrec.data.stats import dataset_stats

    ds = PreparedDataset.load(dataset)
    stats = dataset_stats(ds)
    if as_json:
        out.print_json(json.dumps(stats, default=_json_number))
        return
    table = Table(title=f"{dataset} ({ds.manifest.get('source', '?')})")
    columns = ("train", "val", "test", "all")
    table.add_column("")
    for col in columns:
        table.add_column(col, justify="right")
    rows = [
        ("sequences", "{:,}"),
        ("items", "{:,}"),
        ("clicks", "{:,}"),
        ("purchases", "{:,}"),
        ("events", "{:,}"),
        ("mean_length", "{:.2f}"),
        ("purchase_in_window", "{:.1%}"),
    ]
    for key, fmt in rows:
        table.add_row(key.replace("_", " "), *(_fmt(fmt, stats[c][key]) for c in columns))
    out.print(table)
    tr = stats["training"]
    out.print(
        f"training: {tr['transitions']:,} transitions, {tr['batches_per_epoch']:,} batches of "
        f"{tr['batch_size']} per epoch; state window {tr['state_size']}, pad id {tr['pad_id']}. "
        f"'purchase in window': share of purchases whose item is among the previous "
        f"{tr['state_size']} events."
    )


def _fmt(fmt: str, value: float) -> str:
    return "–" if isinstance(value, float) and math.isnan(value) else fmt.format(value)


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except RlrecError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(2)
