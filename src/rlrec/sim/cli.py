"""``rlrec sim ...``: list data and the user-response model (a typer sub-app, ``sim_app``).

``rlrec sim prepare SOURCE --raw PATH --out DIR`` and ``rlrec sim train-urm --config FILE``. User
errors raise :class:`rlrec.errors.RlrecError`, which the root CLI prints on one line (exit 2).
This module does not import :mod:`rlrec.cli`, so the root app can import ``sim_app`` at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rlrec.config import build_config

sim_app = typer.Typer(
    help="List-wise online RL: list data, user-response model, simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

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


@sim_app.command("prepare")
def prepare(
    source: Annotated[
        str, typer.Argument(help="movielens | recbole | kuairand | rl4rs | obd | synthetic")
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
    """Turn raw logs into list records (Parquet + manifest.json), atomically."""
    from rlrec.sim.prepare import ListPrepareConfig, prepare_lists

    cli: dict[str, Any] = {"source": {"kind": source}}
    if raw is not None:
        cli["source"]["path"] = str(raw)
    cfg = build_config(ListPrepareConfig, path=config, overrides=set_, cli=cli)
    with err.status("preparing") as status:
        manifest = prepare_lists(
            cfg, out_dir, overwrite=overwrite, progress=lambda m: status.update(f"{m} …")
        )
    c, s = manifest["counts"], manifest["splits"]
    out.print(
        f"wrote {out_dir}: {c['records']:,} lists of {manifest['slate_size']} "
        f"({s['train']['records']:,} train / {s['test']['records']:,} test), "
        f"{manifest['n_users']:,} users, {manifest['n_items']:,} items, "
        f"positive rate {c['positive_rate']:.3f}"
    )


@sim_app.command("train-urm")
def train_urm(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="List dataset (config key data).", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="URM directory (config key out).", show_default=False),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train a user-response model; reports validation AUC, log-loss and calibration per epoch."""
    from rlrec.sim.urm_train import URMTrainConfig, URMTrainer

    cli: dict[str, Any] = {}
    if data is not None:
        cli["data"] = str(data)
    if out_dir is not None:
        cli["out"] = str(out_dir)
    cfg = build_config(URMTrainConfig, path=config, overrides=set_, cli=cli)

    def on_epoch(epoch: int, total: int, m: dict[str, float]) -> None:
        line = f"epoch {epoch}/{total}: train loss {m['train_loss']:.4f}"
        if "val_auc" in m:
            line += (
                f", val AUC {m['val_auc']:.4f} (per position {m['val_auc_per_position']:.4f}), "
                f"log-loss {m['val_log_loss']:.4f}, mean p {m['val_mean_prob']:.3f} vs rate "
                f"{m['val_positive_rate']:.3f}, ECE {m['val_ece']:.3f}"
            )
        err.print(line + f" ({m['seconds']:.1f} s)")

    summary = URMTrainer(cfg, overwrite=overwrite, on_epoch=on_epoch).fit()
    sel = summary["selected"]
    auc = f", val AUC {sel['val_auc']:.4f}" if "val_auc" in sel else ""
    out.print(
        f"wrote {cfg.out}: URM ({cfg.role} environment, fit on {summary['fit_split']}), "
        f"epoch {summary['selected_epoch']} kept{auc}"
    )
