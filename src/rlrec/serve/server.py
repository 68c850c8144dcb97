"""``rlrec serve RUN_DIR``: the HTTP API (:mod:`rlrec.serve.api`) on uvicorn.

The model is loaded once, before the server binds (a bad run directory is a one-line error, not a
half-started server), on CUDA when present. The server binds to 127.0.0.1 unless told otherwise;
any other host prints a warning, since anyone who can reach it can query the model (set
``RLREC_API_KEY`` and put it behind a TLS-terminating reverse proxy). SIGTERM or Ctrl-C stops
accepting connections, lets the requests in flight finish (up to ``--graceful-timeout`` seconds),
then exits 0.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from rlrec.cli_common import IndexOpt, IndexThresholdOpt, check_index, err
from rlrec.errors import RlrecError

API_KEY_ENV = "RLREC_API_KEY"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wait_until_serving(proc: subprocess.Popen[Any], port: int, timeout_s: float = 60.0) -> None:
    """Wait until the ``rlrec serve`` process ``proc`` answers ``GET /health`` on 127.0.0.1:``port``
    (for scripts and tests that start a server); ``RuntimeError`` if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rlrec serve exited with status {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:  # not listening yet (URLError and connection errors are OSErrors)
            time.sleep(0.1)
    raise RuntimeError(f"rlrec serve did not answer on port {port} within {timeout_s:.0f} s")


def load_served(run_dir: Path, checkpoint: str) -> Any:
    """The model of a run directory: a :class:`~rlrec.serve.inference.Recommender` for a run of
    ``rlrec train``, a :class:`~rlrec.serve.slates.SlateRecommender` for one of ``rlrec sim train``."""
    from rlrec.outputs import marker_kind

    if marker_kind(Path(run_dir)) == "sim_run":
        from rlrec.serve.slates import SlateRecommender

        return SlateRecommender.from_run(run_dir, checkpoint)
    from rlrec.serve.inference import Recommender

    return Recommender.from_run(run_dir, checkpoint)


def serve_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by rlrec train.")],
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (other than loopback: a warning).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or latest.")] = "best",
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most histories per forward pass (1: no batching).")
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms",
            help="How long a forward pass waits for more requests (0: it takes what is queued).",
        ),
    ] = 0.0,
    max_history: Annotated[
        int, typer.Option("--max-history", help="Longest history in a request.")
    ] = 1000,
    max_k: Annotated[int, typer.Option("--max-k", help="Largest k in a request.")] = 1000,
    max_batch_requests: Annotated[
        int, typer.Option("--max-batch-requests", help="Most requests in one batch call.")
    ] = 256,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body in bytes.")
    ] = 1_048_576,
    index: IndexOpt = "auto",
    index_threshold: IndexThresholdOpt = 100_000,
    graceful_timeout: Annotated[
        float,
        typer.Option("--graceful-timeout", help="Seconds in-flight requests get after SIGTERM."),
    ] = 10.0,
) -> None:
    """Serve a trained run over HTTP: POST /v1/recommend, /v1/recommend/batch (runs of rlrec
    train) or /v1/slate (runs of rlrec sim train); GET /v1/model, /health, /metrics. Set
    RLREC_API_KEY to require a bearer token."""
    try:
        import uvicorn

        from rlrec.serve.api import ServeSettings, create_app
    except ImportError as exc:
        raise RlrecError(
            f"rlrec serve needs the serving extra ({exc.name} is missing): "
            'pip install "rlrec[serve]"'
        ) from None
    from pydantic import ValidationError

    from rlrec.serve.inference import Recommender

    if checkpoint not in ("best", "latest"):
        raise RlrecError(f"--checkpoint must be best or latest, got {checkpoint!r}")
    if not 0 < port < 65536:
        raise RlrecError(f"--port must be in 1..65535, got {port}")
    try:
        settings = ServeSettings(
            max_body_bytes=max_body_bytes,
            max_history=max_history,
            max_k=max_k,
            max_batch_requests=max_batch_requests,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            api_key=os.environ.get(API_KEY_ENV) or None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).replace("_", "-")
        raise RlrecError(f"--{name}: {first['msg']}") from None
    rec = load_served(run_dir, checkpoint)
    if isinstance(rec, Recommender) and (
        note := rec.choose_index(check_index(index), index_threshold)
    ):
        err.print(note)
    app = create_app(rec, run_dir, checkpoint, settings)
    if not is_loopback(host):
        err.print(
            f"warning: binding to {host}: anyone who can reach this address can query the model"
            + ("" if settings.api_key else f" ({API_KEY_ENV} is not set: no token is required)")
        )
    what = (
        f"{rec.cfg.objective.kind}/{rec.cfg.encoder.kind}, {len(rec.raw_ids)} items"
        if isinstance(rec, Recommender)
        else f"{rec.cfg.label} slates of {rec.slate_size}, {len(rec.item_raw) - 1} items"
    )
    err.print(
        f"serving {run_dir} ({what}, {checkpoint} checkpoint, {rec.device}) on "
        f"http://{host}:{port}" + (" — bearer token required" if settings.api_key else "")
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]  # seconds, a float
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # everything loaded so far (torch, the model, the app) lives as long as the server: leave it
    # out of the garbage collector's full passes, which otherwise stall every request ~0.1 s
    gc.collect()
    gc.freeze()
    stopped_by: list[int] = []
    # uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the handlers it found;
    # these record it instead of killing the process, so a graceful stop exits 0
    previous = {
        sig: signal.signal(sig, lambda s, _: stopped_by.append(s))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        server.started = False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise RlrecError(f"could not serve on {host}:{port} (is the port in use?)")
    if stopped_by:
        err.print(
            f"stopped ({signal.Signals(stopped_by[0]).name}) after finishing the requests in flight"
        )
