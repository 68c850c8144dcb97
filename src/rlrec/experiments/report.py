"""``rlrec report``: a results table and training-dynamics plots for a set of finished runs.

Writes, into one new directory (atomically; an existing one is replaced only with ``overwrite``):

* ``report.md`` and ``report.html`` — per method, mean ± std over seeds (``(n = 1)`` for a single
  seed) of the test metrics under the chosen protocol (:mod:`.results`) — for ``rlrec sim train``
  runs the evaluation environment's total reward, depth and reward variance (P-HAC §3.1.4) — the
  best mean of each column in bold (the lowest for reward variance); a stability table (seeds with
  divergence flags, where the best validation score was reached, how far the last one fell);
* ``results.json`` — the same numbers for programs;
* ``val_curves.png`` — validation curves against the training step, mean over seeds with a ±1 std
  band: HR/NDCG@k for purchases and clicks at the smallest, largest and selection ``k``
  (P-CCQL Figs. 3–4), or total reward, depth, reward variance and coverage;
* ``train_curves.png`` — TD losses, Q-values of logged / sampled actions and of the catalogue,
  cross-entropy, contrastive and CQL terms and the gradient norm (or the online agents' training
  rewards and losses), with the same bands.

Without matplotlib the report has its tables only and says that the curves were skipped.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import statistics
from pathlib import Path
from typing import Any

from rlrec.errors import RlrecError
from rlrec.experiments.results import Group, Protocol, Run, find_runs, group_runs
from rlrec.fsutil import atomic_write_bytes, atomic_write_json
from rlrec.outputs import check_output, new_output

TRAIN_PANELS: tuple[tuple[str, str, bool], ...] = (  # key, title, log scale
    ("td_pos", "TD loss, logged action", True),
    ("td_neg", "TD loss, sampled negatives", True),
    ("q_pos", "Q of logged actions", False),
    ("q_neg", "Q of sampled negatives", False),
    ("q_max", "max_a Q(s, a)", False),
    ("q_mean", "mean Q over the catalogue", False),
    ("ce", "cross-entropy", False),
    ("contrastive", "contrastive loss", False),
    ("cql", "CQL term", False),
    ("grad_norm", "gradient norm", True),
)


LOWER_IS_BETTER = frozenset({"total_reward_var"})  # P-HAC: lower reward variance = more stable
SIM_COLUMNS = ("total_reward_mean", "depth_mean", "total_reward_var")
TITLES = {
    "total_reward_mean": "total reward",
    "depth_mean": "depth",
    "total_reward_var": "reward variance",
}
NO_MATPLOTLIB = "curves skipped: matplotlib is not installed (pip install 'rlrec[plot]')"


def matplotlib_available() -> bool:
    """Whether the optional plotting extra (``rlrec[plot]``) is importable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def metric_columns(runs: list[Run]) -> list[str]:
    """``reward@K, hr_purchase@k, ndcg_purchase@k, …, hr_click@k, ndcg_click@k`` (K = largest k);
    for sim runs total reward, depth and reward variance (P-HAC Table 2)."""
    if runs[0].kind.name == "sim":
        return list(SIM_COLUMNS)
    ks = sorted(
        {
            int(m.group(1))
            for r in runs
            for key in r.final
            if (m := re.fullmatch(r"hr_click@(\d+)", key))
        }
    )
    if not ks:
        raise RlrecError(f"{runs[0].path / 'summary.json'}: no HR/NDCG@k test metrics")
    cols = [f"reward@{ks[-1]}"]
    for event in ("purchase", "click"):
        cols += [f"{m}_{event}@{k}" for k in ks for m in ("hr", "ndcg")]
    return cols


def results_table(
    groups: list[Group], columns: list[str], protocol: Protocol, k: int
) -> dict[str, dict[str, tuple[float, float, int] | None]]:
    return {g.label: {c: g.stats(protocol, c, k) for c in columns} for g in groups}


def _best(
    table: dict[str, dict[str, tuple[float, float, int] | None]], column: str
) -> float | None:
    means = [cell[0] for row in table.values() if (cell := row[column]) is not None]
    if not means:
        return None
    return min(means) if column in LOWER_IS_BETTER else max(means)


def _cell(cell: tuple[float, float, int] | None, column: str) -> str:
    """``mean ± std``, or ``mean (n = 1)`` for one seed (no spread to show)."""
    if cell is None:
        return "–"
    mean, std, n = cell
    digits = 1 if column.startswith("reward@") else 3 if column in SIM_COLUMNS else 4
    spread = f"± {std:,.{digits}f}" if n > 1 else "(n = 1)"
    return f"{mean:,.{digits}f} {spread}"


def stability_rows(groups: list[Group]) -> list[dict[str, Any]]:
    """Per method: seeds flagged, first flags, best validation step, last vs best validation score."""
    rows = []
    for g in groups:
        flagged, kinds, best_steps, drops = 0, {}, [], []
        for run in g.runs:
            flags = run.summary.get("stability", {}).get("flags", [])
            flagged += bool(flags)
            for f in flags:
                kinds.setdefault(f["kind"], []).append(int(f["step"]))
            curve = run.curve("val", run.select_metric)
            if curve:
                best_step = max(curve, key=lambda s: (curve[s], -s))
                best_steps.append(best_step)
                last = curve[max(curve)]
                if curve[best_step] > 0:
                    drops.append(1.0 - last / curve[best_step])
        rows.append(
            {
                "method": g.label,
                "seeds": len(g.runs),
                "flagged": flagged,
                "flags": {k: sorted(v) for k, v in sorted(kinds.items())},
                "best_step_mean": statistics.fmean(best_steps) if best_steps else None,
                "last_vs_best_drop_mean": statistics.fmean(drops) if drops else None,
            }
        )
    return rows


def markdown(
    table: dict[str, dict[str, tuple[float, float, int] | None]],
    columns: list[str],
    stability: list[dict[str, Any]],
    title: str,
    notes: list[str],
) -> str:
    lines = [f"# {title}", ""]
    lines += [f"_{note}_" for note in notes] + ([""] if notes else [])
    lines += ["| method | seeds | " + " | ".join(TITLES.get(c, c) for c in columns) + " |"]
    lines.append("|---|---:|" + "---:|" * len(columns))
    best = {c: _best(table, c) for c in columns}
    for label, row in table.items():
        n = max((cell[2] for cell in row.values() if cell is not None), default=0)
        cells = []
        for c in columns:
            text = _cell(row[c], c)
            cells.append(f"**{text}**" if row[c] is not None and row[c][0] == best[c] else text)
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Training stability",
        "",
        "| method | seeds flagged | first flags (step per seed) | best validation step (mean) | last vs best validation (mean drop) |",
        "|---|---:|---|---:|---:|",
    ]
    for s in stability:
        flags = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in s["flags"].items()) or "–"
        best_step = "–" if s["best_step_mean"] is None else f"{s['best_step_mean']:,.0f}"
        drop = "–" if s["last_vs_best_drop_mean"] is None else f"{s['last_vs_best_drop_mean']:.1%}"
        lines.append(
            f"| {s['method']} | {s['flagged']}/{s['seeds']} | {flags} | {best_step} | {drop} |"
        )
    return "\n".join(lines) + "\n"


def html_page(
    table: dict[str, dict[str, tuple[float, float, int] | None]],
    columns: list[str],
    stability: list[dict[str, Any]],
    title: str,
    images: list[str],
    notes: list[str],
) -> str:
    best = {c: _best(table, c) for c in columns}
    titles = ["method", "seeds", *(TITLES.get(c, c) for c in columns)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in titles)
    body = []
    for label, row in table.items():
        n = max((cell[2] for cell in row.values() if cell is not None), default=0)
        cells = []
        for c in columns:
            text = html.escape(_cell(row[c], c))
            cells.append(
                f"<td><b>{text}</b></td>"
                if row[c] is not None and row[c][0] == best[c]
                else f"<td>{text}</td>"
            )
        body.append(f"<tr><td>{html.escape(label)}</td><td>{n}</td>{''.join(cells)}</tr>")
    stab = "".join(
        f"<tr><td>{html.escape(s['method'])}</td><td>{s['flagged']}/{s['seeds']}</td>"
        f"<td>{html.escape(json.dumps(s['flags']))}</td></tr>"
        for s in stability
    )
    figures = "".join(f'<p><img src="{name}" style="max-width:100%"></p>' for name in images)
    notes_html = "".join(f"<p><i>{html.escape(note)}</i></p>" for note in notes)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{notes_html}<table><tr>{head}</tr>{''.join(body)}</table>"
        f"<h2>Training stability</h2><table><tr><th>method</th><th>seeds flagged</th>"
        f"<th>first flags</th></tr>{stab}</table>{figures}</body></html>\n"
    )


def _band(
    runs: list[Run], kind: str, key: str
) -> tuple[list[int], list[float], list[float]] | None:
    """Steps, mean and std over the runs that logged ``key`` at each step."""
    curves = [c for r in runs if (c := r.curve(kind, key))]
    if not curves:
        return None
    steps = sorted(set().union(*curves))
    means, stds = [], []
    for step in steps:
        values = [c[step] for c in curves if step in c and math.isfinite(c[step])]
        means.append(statistics.fmean(values) if values else math.nan)
        stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return steps, means, stds


def _plot_panels(
    groups: list[Group], kind: str, panels: list[tuple[str, str, bool]], path: Path, ncols: int
) -> bool:
    """One panel per key with a mean line and ±std band per group; False when nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [p for p in panels if any(_band(g.runs, kind, p[0]) for g in groups)]
    if not present:
        return False
    nrows = math.ceil(len(present) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.1 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (key, title, log) in zip(axes.flat, present, strict=False):
        for i, g in enumerate(groups):
            band = _band(g.runs, kind, key)
            if band is None:
                continue
            steps, mean, std = band
            lo = [m - s for m, s in zip(mean, std, strict=True)]
            hi = [m + s for m, s in zip(mean, std, strict=True)]
            ax.plot(steps, mean, color=colors(i % 10), label=g.label, linewidth=1.3)
            ax.fill_between(steps, lo, hi, color=colors(i % 10), alpha=0.2, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=8)
        if log and all(
            v > 0
            for g in groups
            if (b := _band(g.runs, kind, key))
            for v in b[1]
            if math.isfinite(v)
        ):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    legend: dict[str, Any] = {}  # every group that appears in any panel, in group order
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    order = [g.label for g in groups if g.label in legend]
    handles, labels = [legend[label] for label in order], order
    fig.legend(
        handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.04 + 0.02 * math.ceil(len(labels) / 4), 1, 1))
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return True


def _panels(runs: list[Run], columns: list[str]) -> dict[str, tuple[list[Any], int]]:
    """The validation and training panels (and their columns) of ``runs``' kind: for ``rlrec train``
    validation HR/NDCG@k at the smallest and largest ``k`` and at the ``k`` of the metric the runs
    select on."""
    if runs[0].kind.name == "sim":
        from rlrec.online.evaluate import TRAIN_PANELS as SIM_TRAIN
        from rlrec.online.evaluate import VAL_PANELS as SIM_VAL

        return {"val": (list(SIM_VAL), 4), "train": (list(SIM_TRAIN), 4)}
    ks = sorted({int(c.split("@")[1]) for c in columns if c.startswith("hr_")})
    selected = {int(m.group(1)) for r in runs if (m := re.fullmatch(r".*@(\d+)", r.select_metric))}
    chosen = sorted({ks[0], ks[-1], *(k for k in selected if k in ks)})
    val = [
        (f"{m}_{e}@{k}", f"validation {m.upper()}@{k}, {e}", False)
        for e in ("purchase", "click")
        for k in chosen
        for m in ("hr", "ndcg")
    ]
    return {"val": (val, 2 * len(chosen)), "train": (list(TRAIN_PANELS), 4)}


def write_report(
    paths: list[Path],
    out: Path | None = None,
    *,
    protocol: Protocol = "best",
    top_k: int = 5,
    plots: bool = True,
    overwrite: bool = False,
    title: str | None = None,
) -> tuple[Path, list[str]]:
    """Read the runs under ``paths`` and write the report directory (default:
    ``<common parent>/report``); returns it and the notes the report carries (runs skipped,
    curves skipped)."""
    notes: list[str] = []
    skipped: list[str] = []
    runs = find_runs(paths, skipped)
    if skipped:
        notes.append(f"{len(skipped)} unfinished sweep run(s) left out: {', '.join(skipped)}")
    if runs[0].kind.name == "sim" and protocol != "best":
        raise RlrecError(
            f"--protocol {protocol}: rlrec sim train runs have one selected checkpoint (best); "
            "the top-k protocols apply to rlrec train runs"
        )
    if plots and not matplotlib_available():
        plots = False
        notes.append(NO_MATPLOTLIB)
    if out is None:
        common = Path(os.path.commonpath([r.path.resolve().parent for r in runs]))
        if common.is_relative_to(Path.cwd().resolve()):  # name it as the user named the runs
            common = common.relative_to(Path.cwd().resolve())
        out = common / "report"
    check_output(out, "report", overwrite=overwrite, inputs=[*paths, *(r.path for r in runs)])
    groups = group_runs(runs)
    columns = metric_columns(runs)
    table = results_table(groups, columns, protocol, top_k)
    stability = stability_rows(groups)
    what = "test metrics" if runs[0].kind.name == "train" else "evaluation environment"
    title = title or f"{runs[0].meta.get('dataset', '')}: {what} ({protocol} protocol)"
    if protocol == "per_metric_top_k":
        title += " — optimistic: every column picks its own checkpoints"
    inputs = [*paths, *(r.path for r in runs)]
    with new_output(out, "report", overwrite=overwrite, inputs=inputs) as tmp:
        images = []
        if plots:
            for kind, (panels, ncols) in _panels(runs, columns).items():
                name = f"{kind}_curves.png"
                if _plot_panels(groups, kind, panels, tmp / name, ncols=ncols):
                    images.append(name)
        text = markdown(table, columns, stability, title, notes)
        atomic_write_bytes(tmp / "report.md", text.encode())
        atomic_write_bytes(
            tmp / "report.html", html_page(table, columns, stability, title, images, notes).encode()
        )
        atomic_write_json(
            tmp / "results.json",
            {
                "protocol": protocol,
                "top_k": top_k,
                "kind": runs[0].kind.name,
                "dataset": runs[0].meta.get("dataset"),
                "notes": notes,
                "methods": [
                    {
                        "method": g.label,
                        "runs": [str(r.path) for r in g.runs],
                        "metrics": {
                            c: None if v is None else {"mean": v[0], "std": v[1], "n": v[2]}
                            for c, v in table[g.label].items()
                        },
                    }
                    for g in groups
                ],
                "stability": stability,
            },
        )
    return out, notes
