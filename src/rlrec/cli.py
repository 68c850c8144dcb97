"""The ``rlrec`` command line (typer).

``data synth|prepare|stats|verify``, ``train``, ``evaluate``, ``recommend``, ``serve``, ``export``,
``compare``, ``sweep``, ``report``, ``demo`` and ``sim prepare|train-urm|train|evaluate``. User errors (:class:`rlrec.errors.RlrecError`) print one line and exit 2.
"""

from __future__ import annotations

import errno
import json
import math
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from rlrec import __version__, errors
from rlrec.cli_common import (
    ConfigOpt,
    IndexOpt,
    IndexThresholdOpt,
    OutDirOpt,
    OverwriteOpt,
    RawOpt,
    SetOpt,
    check_index,
    err,
    given,
    new_app,
    out,
    source_section,
    stages,
)
from rlrec.config import build_config
from rlrec.demo import demo_command
from rlrec.errors import RlrecError
from rlrec.fsutil import read_json
from rlrec.serve.export import export_command
from rlrec.serve.server import serve_command
from rlrec.sim.cli import sim_app

app = new_app("Reinforcement-learning recommender systems: data, training, evaluation, serving.")
data_app = typer.Typer(help="Prepare raw logs and synthetic data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(sim_app, name="sim")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"rlrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print rlrec's version and exit.",
        ),
    ] = False,
) -> None:
    """The root's own options (``--version``); its help text is the app's."""


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
    out_dir: OutDirOpt,
    raw: RawOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            help="Prepare out of core in parts sized for this much memory, e.g. 6GB or 512MB "
            "(yoochoose, synthetic, generic Parquet); the dataset is byte-identical. "
            "'auto': only when the raw files are large for this machine's free memory.",
        ),
    ] = None,
) -> None:
    """Turn a raw log into a prepared dataset (Parquet + manifest.json), atomically."""
    from rlrec.data.prepare import PrepareConfig, auto_memory_limit, parse_size, prepare

    cli = source_section(source, raw)
    cfg = build_config(PrepareConfig, path=config, overrides=set_, cli=cli)
    limit = (
        auto_memory_limit(cfg.source)
        if memory_limit == "auto"
        else None
        if memory_limit is None
        else parse_size(memory_limit, "--memory-limit")
    )
    with stages("preparing") as advance:
        manifest = prepare(cfg, out_dir, overwrite=overwrite, progress=advance, memory_limit=limit)
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
    """Print the statistics table of a prepared dataset (P-SA2C Table 1) and diagnostics."""
    from rlrec.data.dataset import PreparedDataset
    from rlrec.data.stats import dataset_stats

    ds = PreparedDataset.load(dataset)
    stats = dataset_stats(ds)
    if as_json:
        out.print_json(json.dumps(stats, default=_json_number))
        return
    table = Table(title=Text(f"{dataset} ({ds.manifest.get('source', '?')})"))
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


class _ListsDataSets(TyperCommand):
    """A command whose help ends with the registered data sets. They are read from the registry
    when the help is shown, not when the CLI starts: the registry imports the loaders (polars,
    torch), which every other command would otherwise pay for."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # typer's vendored click types
        from rlrec.data.registry import DATASETS

        self.epilog = "Registered data sets (--dataset): " + "; ".join(
            f"{ds.key}: {ds.title}" for ds in DATASETS
        )
        super().format_help(ctx, formatter)


@data_app.command("verify", cls=_ListsDataSets)
def data_verify(
    path: Annotated[
        Path,
        typer.Argument(help="Raw data folder, or the .whl/.zip archive that ships the data set."),
    ],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Registered data set to check against (listed below); default: the one with "
            "the most of its files present.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Check raw data files against the official distribution recorded by rlrec: names, sizes and
    SHA-256. Exits 2 naming every file that differs or is missing."""
    from rlrec.data.verify import verify

    report = verify(path, dataset)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        ds = report.dataset
        table = Table(
            title=Text(
                f"{ds.title} ({ds.key}): {report.location}\n"
                f"source: {ds.source}\nterms: {ds.terms}\nread by: {', '.join(ds.commands)}"
            ),
            title_justify="left",
        )
        table.add_column("file", overflow="fold")  # a long path wraps, never loses its end
        table.add_column("bytes", justify="right")
        table.add_column("sha256", no_wrap=True)
        table.add_column("status")
        for check in report.files:
            optional = check.status == "missing" and check.expected.need != "required"
            table.add_row(
                check.path,
                "–" if check.bytes is None else f"{check.bytes:,}",
                "–" if check.sha256 is None else check.sha256[:12],
                f"{check.status} ({check.expected.need})" if optional else check.status,
            )
        out.print(table)
        if any(check.status == "unchecked" for check in report.files):
            out.print("unchecked: rlrec records no hash for this file (its measured hash is shown)")
        out.print(report.summary())
    report.raise_if_failed()


def _fmt(fmt: str, value: float) -> str:
    return "–" if isinstance(value, float) and math.isnan(value) else fmt.format(value)


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------------------- training and serving


@app.command("train")
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run from its last checkpoint.")
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train an offline objective on a prepared dataset (config: data, out, encoder, objective, train, eval).

    Progress goes to stderr: a live bar on a terminal, one line every train.progress_every steps
    otherwise (train.progress: auto, bar, lines or none).
    """
    from rlrec.train.config import TrainConfig
    from rlrec.train.trainer import Trainer

    cfg = build_config(TrainConfig, path=config, overrides=set_)
    summary = Trainer(cfg, resume=resume, overwrite=overwrite).fit()
    if summary:
        _print_metrics(
            f"{cfg.out}: test metrics of the best validation checkpoint (step {summary['best_step']})",
            summary["test"],
            cfg.eval.protocol,
        )


@app.command("evaluate")
def evaluate_run(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by rlrec train.")],
    split: Annotated[str, typer.Option("--split", help="val or test")] = "test",
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best, latest or a checkpoint directory")
    ] = "best",
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset directory (default: the run's).", show_default=False),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the metrics as JSON here.", show_default=False),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="Change an eval.* setting of the run's config, e.g. --set eval.protocol=uni100 "
            "or --set eval.list_metrics=[coverage,novelty].",
            show_default=False,
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Evaluate a run's checkpoint on a split (HR/NDCG/MRR@k for clicks and purchases, reward,
    NG_off; eval.list_metrics; full ranking unless eval.protocol says otherwise)."""
    from rlrec.config import deep_merge, parse_overrides
    from rlrec.data.dataset import PreparedDataset
    from rlrec.data.transitions import Transitions
    from rlrec.eval.metrics import degenerate_warning
    from rlrec.fsutil import atomic_write_json
    from rlrec.outputs import check_output_file
    from rlrec.serve.inference import load_run
    from rlrec.train.config import TrainConfig
    from rlrec.train.trainer import eval_popularity, evaluate_network, ng_off_beta

    if split not in ("val", "test"):
        raise RlrecError(f"--split must be val or test, got '{split}'")
    if out_file is not None:
        check_output_file(out_file, overwrite=overwrite, inputs=[run_dir, data])
    cfg, net, meta = load_run(run_dir, checkpoint)
    if set_:
        tree = parse_overrides(set_)
        if set(tree) != {"eval"}:
            raise RlrecError("--set: rlrec evaluate changes eval.* settings only")
        cfg = build_config(TrainConfig, cli=deep_merge(cfg.model_dump(mode="json"), tree))
    ds = PreparedDataset.load(data or cfg.data)
    if ds.manifest.get("content_hash") != meta.get("dataset_content_hash"):
        raise RlrecError(
            f"{ds.path}: not the dataset this run was trained on (content hash differs)"
        )
    device = next(net.parameters()).device
    transitions = Transitions(ds.split(split), meta["state_size"], ds.pad_id, device=device)
    beta = ng_off_beta(ds, cfg)
    t0 = time.perf_counter()
    metrics = evaluate_network(net, cfg, transitions, beta, eval_popularity(ds))
    seconds = time.perf_counter() - t0
    protocol = cfg.eval.protocol
    _print_metrics(f"{run_dir} [{checkpoint}] on {split}", metrics, protocol)
    events = int(metrics.get("n_events", len(transitions)))
    out.print(f"scored {events:,} events in {seconds:.2f} s ({events / seconds:,.0f} events/s)")
    degenerate = degenerate_warning(metrics)
    if degenerate is not None:
        err.print(Text.assemble(("warning: ", "yellow"), degenerate))
    if out_file is not None:
        atomic_write_json(
            out_file,
            {
                "run": str(run_dir),
                "checkpoint": checkpoint,
                "split": split,
                "eval_protocol": protocol,
                **({"sample_seed": cfg.eval.sample_seed} if protocol != "full" else {}),
                "metrics": {k: _json_number(v) for k, v in metrics.items()},
                "degenerate_scores": degenerate,
                "seconds": seconds,
                "events_per_s": events / seconds,
            },
        )


@app.command("recommend")
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by rlrec train.")],
    history: Annotated[
        str | None,
        typer.Option(
            "--history", help="Comma-separated raw item ids, oldest first.", show_default=False
        ),
    ] = None,
    sessions: Annotated[
        Path | None,
        typer.Option(
            "--sessions",
            help="CSV with session_id,item_id rows (in order) for batch mode.",
            show_default=False,
        ),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Batch mode: write session_id,rank,item_id,score CSV here.",
            show_default=False,
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help="A logged session of the run's dataset: recommend its last event from the ones before.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
    exclude_history: Annotated[
        bool,
        typer.Option("--exclude-history", help="Never recommend items already in the history."),
    ] = False,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best, latest or a checkpoint directory")
    ] = "best",
    index: IndexOpt = "auto",
    index_threshold: IndexThresholdOpt = 100_000,
    overwrite: OverwriteOpt = False,
) -> None:
    """Top-k for one history (--history), one logged session (--session) or a file (--sessions)."""
    import polars as pl

    from rlrec.fsutil import atomic_write_bytes
    from rlrec.outputs import check_output_file
    from rlrec.serve.inference import Recommender

    if sum(x is not None for x in (history, sessions, session)) != 1:
        raise RlrecError("give exactly one of --history, --sessions or --session")
    if out_file is not None:
        check_output_file(out_file, overwrite=overwrite, inputs=[run_dir, sessions])
    rec = Recommender.from_run(run_dir, checkpoint)
    if (note := rec.choose_index(check_index(index), index_threshold)) is not None:
        err.print(note)
    target = None
    if session is not None:
        history, target = _logged_session(run_dir, session)
    if history is not None:
        table = Table(title=Text(f"top {k} for history {history}"))
        for col in ("rank", "item_id", "score"):
            table.add_column(col, justify="right")
        lists = rec.recommend([rec.parse_ids(history)], k, exclude_history)
        assert isinstance(lists, list)
        recs = lists[0]
        for rank, (item, score) in enumerate(recs, 1):
            table.add_row(str(rank), str(item), f"{score:.4f}")
        out.print(table)
        if len(recs) < k:
            err.print(f"only {len(recs)} items are not in the history (--exclude-history)")
        if target is not None:
            top = [item for item, _ in recs]
            where = f"at rank {top.index(target) + 1}" if target in top else f"not in the top {k}"
            out.print(f"session {session}: the logged next item {target} is {where}")
        return
    assert sessions is not None
    from rlrec.data.loaders.delimited import check_file

    check_file(sessions, "sessions file")
    try:
        df = pl.read_csv(sessions, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise RlrecError(f"{sessions}: could not be read as CSV ({exc})") from None
    if not {"session_id", "item_id"} <= set(df.columns):
        raise RlrecError(
            f"{sessions}: needs columns session_id,item_id; found {','.join(df.columns)}"
        )
    groups = df.group_by("session_id", maintain_order=True).agg(pl.col("item_id"))
    histories = {
        sid: rec.parse_ids(",".join(items))
        for sid, items in zip(
            *(groups.get_column(c).to_list() for c in groups.columns), strict=True
        )
    }
    frame = rec.recommend(histories, k, exclude_history, as_frame=True)
    assert isinstance(frame, pl.DataFrame)
    short = int((frame.group_by("session").len().get_column("len") < k).sum())
    short += len(histories) - frame.get_column("session").n_unique()  # sessions with no item left
    if short:
        err.print(f"{short} session(s) got fewer than {k} items: the rest are in their history")
    csv_text = frame.rename({"session": "session_id"}).write_csv()
    if out_file is None:
        sys.stdout.write(csv_text)
    else:
        atomic_write_bytes(out_file, csv_text.encode())
        out.print(
            f"wrote {frame.height} recommendations for {len(histories)} sessions to {out_file}"
        )


app.command("serve")(serve_command)
app.command("export")(export_command)
app.command("demo")(demo_command)


def _logged_session(run_dir: Path, session: str) -> tuple[str, Any]:
    """History (all events but the last, as raw ids) and the last raw item of a logged session."""
    import polars as pl

    from rlrec.data.dataset import PreparedDataset
    from rlrec.serve.inference import load_run

    cfg, _, _ = load_run(run_dir, "best", "cpu")
    ds = PreparedDataset.load(cfg.data, verify=False)
    frames = pl.concat([ds.frame(s) for s in ("train", "val", "test")])
    key: Any = session
    if frames.schema["session_id"].is_integer():
        try:
            key = int(session)
        except ValueError:
            raise RlrecError(
                f"--session {session}: the dataset's session ids are integers"
            ) from None
    items = frames.filter(pl.col("session_id") == key).get_column("item")
    if len(items) < 2:
        raise RlrecError(f"--session {session}: no session with at least 2 events in {ds.path}")
    raw = ds.items.get_column("item_id").gather(items).to_list()
    return ",".join(map(str, raw[:-1])), raw[-1]


@app.command("compare")
def compare(runs: Annotated[list[Path], typer.Argument(help="Finished run directories.")]) -> None:
    """Test metrics of finished runs side by side (from their summary.json)."""
    summaries = []
    for run in runs:
        path = run / "summary.json"
        if not path.is_file():
            raise RlrecError(f"{path}: no summary (has the run finished?)")
        summary = read_json(path, "run summary")
        if not isinstance(summary, dict) or not isinstance(summary.get("test"), dict):
            raise RlrecError(f"{path}: has no test metrics")
        summaries.append(summary)
    # summaries written before eval.protocol existed come from the full ranking, the only one then
    protocols = [s.get("eval_protocol", "full") for s in summaries]
    table = Table(title=Text("test split, best validation checkpoint of each run"))
    table.add_column("metric")
    for run, s, protocol in zip(runs, summaries, protocols, strict=True):
        header = f"{run.name}\n({s['objective']}/{s['encoder']}, {protocol})"
        table.add_column(header, justify="right")
    if len(set(protocols)) > 1:
        err.print(
            Text.assemble(
                ("warning: ", "yellow"),
                "the runs were evaluated under different protocols "
                f"({', '.join(sorted(set(protocols)))}): their numbers are not comparable",
            )
        )
    keys = [
        f"{m}_{t}@{k}" for t in ("purchase", "click") for m in ("hr", "ndcg") for k in (5, 10, 20)
    ]
    for key in keys:
        values = [s["test"].get(key) for s in summaries]
        best = max((v for v in values if v is not None), default=None)
        table.add_row(
            key,
            *(
                "–" if v is None else Text(f"{v:.4f}", style="bold" if v == best else "")
                for v in values
            ),
        )
    out.print(table)


@app.command("sweep")
def sweep(
    config: ConfigOpt = None,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base", help="Training config to sweep (sweep key 'base').", show_default=False
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Sweep directory (sweep key 'out').", show_default=False),
    ] = None,
    set_: SetOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Retrain every run, finished ones included.")
    ] = False,
) -> None:
    """Run an rlrec train or sim train config over seeds × a grid (or a search), one process per run."""
    from rlrec.experiments.search import best_trial
    from rlrec.experiments.sweep import SweepConfig, run_sweep, summary_metric

    cfg = build_config(SweepConfig, path=config, overrides=set_, cli=given(base=base, out=out_dir))

    def on_event(spec: Any, done: int, total: int) -> None:
        if spec.status == "failed":
            err.print(
                Text.assemble(
                    f"[{done}/{total}] {spec.name} ",
                    ("failed", "red"),
                    f" ({spec.returncode}): {spec.message}",
                )
            )
            return
        took = "" if spec.seconds is None else f" in {spec.seconds:.0f} s"
        if spec.status == "pruned":
            err.print(f"[{done}/{total}] {spec.name} pruned{took}")
            return
        final = summary_metric(spec)
        shown = "" if final is None else f", {final[0]} {final[1]} {final[2]:.4f}"
        if spec.value is not None:
            shown = f", objective {spec.value:.4f}" + shown
        err.print(f"[{done}/{total}] {spec.name} {spec.message or 'finished'}{took}{shown}")

    specs = run_sweep(cfg, overwrite=overwrite, on_event=on_event)
    if cfg.search is not None:
        best = best_trial(specs, cfg.search.direction)
        if best is not None:
            point = ", ".join(f"{k}={v}" for k, v in best.point.items())
            out.print(f"best trial: {best.name} ({best.value:.4f}): {point}")
    out.print(
        f"{len(specs)} runs in {cfg.out} (index: {cfg.out / 'sweep.json'}); next: rlrec report {cfg.out}"
    )


@app.command("report")
def report(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories, or directories holding runs.")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Report directory (default: <common parent>/report).",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="best | top_k_mean | per_metric_top_k (optimistic)")
    ] = "best",
    top_k: Annotated[int, typer.Option("--top-k", help="k of the top-k protocols.")] = 5,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write the PNG curves.")] = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """Table of test (or sim evaluation) metrics, mean ± std over seeds, best marked, and curves."""
    from rlrec.experiments.report import write_report
    from rlrec.experiments.results import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise RlrecError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    if top_k < 1:
        raise RlrecError(f"--top-k must be at least 1, got {top_k}")
    path, notes = write_report(
        runs,
        out_dir,
        protocol=protocol,  # type: ignore[arg-type]  # checked against PROTOCOLS above
        top_k=top_k,
        plots=plots,
        overwrite=overwrite,
    )
    out.print((path / "report.md").read_text(), markup=False)
    for note in notes:
        err.print(Text.assemble(("note: ", "yellow"), note))
    curves = [p.name for p in sorted(path.glob("*_curves.png"))]
    out.print(
        f"wrote {path} (report.md, report.html, results.json{''.join(', ' + c for c in curves)})"
    )


METRIC_ROWS = (
    "hr_click",
    "ndcg_click",
    "mrr_click",
    "hr_purchase",
    "ndcg_purchase",
    "mrr_purchase",
    "reward",
    "coverage",
    "diversity_head",
    "novelty",
)
"""Rows of the metrics table, in order; a row whose metric was not computed is left out."""


def _print_metrics(title: str, metrics: dict[str, float], protocol: str) -> None:
    """HR/NDCG/MRR@k for clicks and purchases, reward@k and the list metrics that were computed, as
    one table (k as columns) whose title says the ranking protocol."""
    from rlrec.eval.sampled import PROTOCOL_LABELS

    ks = sorted(int(m.group(1)) for key in metrics if (m := re.fullmatch(r"hr_click@(\d+)", key)))
    table = Table(title=Text(f"{title} ({PROTOCOL_LABELS[protocol]})"))
    table.add_column("metric")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    for name in METRIC_ROWS:
        if not any(f"{name}@{k}" in metrics for k in ks):
            continue
        table.add_row(
            name,
            *(
                _fmt(
                    "{:.4f}" if name != "reward" else "{:.1f}",
                    metrics.get(f"{name}@{k}", float("nan")),
                )
                for k in ks
            ),
        )
    out.print(table)
    extras = {k: v for k, v in metrics.items() if k.startswith(("ng_off", "n_")) and "/" not in k}
    out.print(
        "  ".join(
            f"{k} = {_fmt('{:.0f}' if k.startswith('n_') else '{:.4f}', v)}"
            for k, v in extras.items()
        )
    )


REPORT_BUG = (
    "This is a bug in rlrec {version}, not a problem with your input. Please report it with the "
    "command you ran, the traceback above and `pip show rlrec torch polars` (the project's issue "
    "tracker)."
)


def main() -> None:
    """Console-script entry point.

    A mistake in the user's input or environment (:class:`~rlrec.errors.RlrecError`, an ``OSError``
    such as a full disk, a read-only or missing directory) prints one line and exits 2; an
    interrupt exits 130; anything else is a bug in rlrec and shows its traceback (exit 1).
    """
    errors.CALLER = "cli"  # messages name --flags, not Python arguments
    try:
        app()
    except RlrecError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_os_error(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        err.print(Text(REPORT_BUG.format(version=__version__), style="bold"))
        sys.exit(1)
    finally:
        errors.CALLER = "python"


def _fail(message: str) -> None:
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    sys.exit(2)


def _os_error(exc: OSError) -> str:
    """``path: reason`` of a failed file-system call (disk full, read-only, permission, ...)."""
    reason = exc.strerror or str(exc)
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(map(str, paths))
    hints = {
        "ENOSPC": "free some space and run the command again; nothing was replaced",
        "EROFS": "the file system is read-only; choose another output path",
        "EACCES": "check the permissions, or choose another path",
        "EDQUOT": "disk quota exceeded; free some space",
    }
    hint = hints.get(errno.errorcode.get(exc.errno or 0, ""), "")
    return f"{where}: {reason}" + (f" ({hint})" if hint else "") if where else reason
