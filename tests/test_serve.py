"""``rlrec serve``: the ranking it shares with ``rlrec recommend``, micro-batching, and a real
server over loopback (answers, limits, bad requests, token, metrics, SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
import torch
from conftest import tiny_train_config

from rlrec.serve.batcher import MicroBatcher
from rlrec.serve.inference import Query, Recommender
from rlrec.serve.server import is_loopback, wait_until_serving

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def run_dir(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny supervised SASRec run."""
    from rlrec.train.trainer import Trainer

    out = tmp_path_factory.mktemp("serve") / "sasrec"
    Trainer(
        tiny_train_config(
            tiny_dataset,
            out,
            encoder={"kind": "sasrec", "hidden": 16},
            objective={"kind": "supervised"},
            train={"max_steps": 20, "eval_every": 10, "tensorboard": False},
        )
    ).fit()
    return out


@pytest.fixture(scope="module")
def rec(run_dir: Path) -> Recommender:
    return Recommender.from_run(run_dir)


def raw_items(run_dir: Path) -> list[int]:
    return pl.read_parquet(run_dir / "items.parquet").sort("item").get_column("item_id").to_list()


# ---------------------------------------------------------------------------------- ranking


def test_rank_mixed_k_batch_equals_each_alone(rec: Recommender, run_dir: Path) -> None:
    items = raw_items(run_dir)
    queries = [
        Query(rec.encode(items[:5]), 3),
        Query(rec.encode([]), 10),
        Query(rec.encode(items[5:9]), 7, exclude_history=True),
    ]
    together = rec.rank(rec.score([q.history for q in queries]), queries)
    alone = [rec.rank(rec.score([q.history]), [q])[0] for q in queries]
    # the same lists in the same order; the scores agree to float rounding (the batch shapes differ)
    assert [[i for i, _ in r] for r in together] == [[i for i, _ in r] for r in alone]
    for a, b in zip(together, alone, strict=True):
        assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-5, abs=1e-6)
    assert [len(r) for r in together] == [3, 10, 7]
    assert not {i for i, _ in together[2]} & set(items[5:9])


def test_rank_orders_equal_scores_by_item_index(rec: Recommender) -> None:
    n = len(rec.raw_ids)
    scores = torch.zeros(1, n)
    scores[0, [7, 3, 11]] = 5.0  # a three-way tie at the top, then all the rest tied at 0
    scores[0, 1] = torch.nan  # a NaN ranks last, never first
    ranked = rec.rank(scores, [Query([], 5)])[0]
    ids = rec.raw_ids.to_list()
    assert [item for item, _ in ranked] == [ids[3], ids[7], ids[11], ids[0], ids[2]]
    degenerate = rec.rank(torch.full((1, n), torch.nan), [Query([], 3)])[0]  # all NaN: no crash
    assert [item for item, _ in degenerate] == ids[:3]


# ----------------------------------------------------------------------------- micro-batching


def _passes(max_batch: int, requests: int) -> tuple[list[int], list[list[int]]]:
    sizes: list[int] = []

    def run(queries: list[int]) -> list[int]:
        sizes.append(len(queries))
        return [q * 10 for q in queries]

    async def main() -> list[list[int]]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=max_batch, max_wait_s=0.05)
        await batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit([i, -i]) for i in range(requests))))
        finally:
            await batcher.stop()

    return sizes, asyncio.run(main())


def test_microbatcher_gathers_concurrent_requests_and_returns_each_its_own() -> None:
    sizes, results = _passes(max_batch=8, requests=8)
    assert results == [[i * 10, -i * 10] for i in range(8)]
    assert sum(sizes) == 16 and max(sizes) >= 8 and len(sizes) <= 2  # 2 queries per request
    sizes, results = _passes(max_batch=1, requests=5)  # batching off: one pass per request
    assert sizes == [2] * 5 and results == [[i * 10, -i * 10] for i in range(5)]


def test_microbatcher_failed_pass_fails_its_requests_not_the_worker() -> None:
    calls = 0

    def run(queries: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return queries

    async def main() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=4, max_wait_s=0)
        await batcher.start()
        try:
            with pytest.raises(RuntimeError, match="boom"):
                await batcher.submit([1])
            return await batcher.submit([2])
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [2]


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.org")


def test_non_loopback_host_warns(cli, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    def fake_run(self: uvicorn.Server) -> None:
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.delenv("RLREC_API_KEY", raising=False)
    result = cli("serve", run_dir, "--host", "0.0.0.0", "--port", "8123")
    assert result.code == 0, result.err
    assert "warning: binding to 0.0.0.0" in result.err and "RLREC_API_KEY is not set" in result.err
    result = cli("serve", run_dir, "--port", "8123")
    assert "warning" not in result.err


def test_serve_bad_arguments(cli, run_dir: Path, tmp_path: Path) -> None:
    for args, message in [
        ((tmp_path,), "not an rlrec run directory"),
        ((run_dir, "--checkpoint", "newest"), "--checkpoint must be best or latest"),
        ((run_dir, "--port", "70000"), "--port must be in 1..65535"),
        ((run_dir, "--max-batch", "0"), "--max-batch"),
    ]:
        result = cli("serve", *args)
        assert result.code == 2 and message in result.err, result.err


# ------------------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RLREC_API_KEY": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlrec", "serve", str(run_dir), "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(proc, port)
    except RuntimeError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None
    return proc


def test_real_server(run_dir: Path, rec: Recommender) -> None:
    port = free_port()
    proc = start_server(run_dir, port, "--max-history", "50", "--max-batch-requests", "4")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    items = raw_items(run_dir)
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
            # answers: the same lists as the Python API, alone and batched
            cases = [
                {"history": items[:6], "k": 5},
                {"history": [], "k": 3},
                {"history": items[10:14], "k": 8, "exclude_history": True},
            ]
            for case in cases:
                r = client.post("/v1/recommend", json=case)
                assert r.status_code == 200, r.text
                want = rec.recommend(
                    [case["history"]], case["k"], case.get("exclude_history", False)
                )
                assert r.json()["items"] == [i for i, _ in want[0]]
                assert r.json()["scores"] == pytest.approx([s for _, s in want[0]], rel=1e-6)
                assert r.json()["unknown"] == []
            r = client.post("/v1/recommend/batch", json={"requests": cases})
            assert r.status_code == 200
            assert [x["items"] for x in r.json()["results"]] == [
                [
                    i
                    for i, _ in rec.recommend(
                        [c["history"]], c["k"], c.get("exclude_history", False)
                    )[0]
                ]
                for c in cases
            ]
            # unknown ids: skipped and reported in "skip" mode; the known ones decide the list
            r = client.post(
                "/v1/recommend",
                json={"history": [*items[:6], 10**9, "nope"], "k": 5, "unknown_items": "skip"},
            )
            assert r.status_code == 200 and r.json()["unknown"] == [10**9, "nope"]
            assert r.json()["items"] == [i for i, _ in rec.recommend([items[:6]], 5)[0]]
            # a history of digit strings is the same history for an integer catalogue
            r = client.post("/v1/recommend", json={"history": [str(i) for i in items[:6]], "k": 5})
            assert r.json()["items"] == [i for i, _ in rec.recommend([items[:6]], 5)[0]]

            info = client.get("/v1/model").json()
            assert info["method"] == "supervised" and info["encoder"] == "sasrec"
            assert info["n_items"] == len(items) and info["checkpoint"]["which"] == "best"
            assert isinstance(info["checkpoint"]["step"], int) and info["metrics"]["val"]
            assert info["metrics"]["test"] and "api_key" not in info["limits"]
            assert len(info["dataset_content_hash"]) == 64

            # ≥ 20 bad requests: each the right 4xx naming the field, and the server keeps answering
            bad: list[tuple[str, dict[str, str] | None, bytes | None, int, str | None]] = [
                ("/v1/recommend", None, b'{"history": [1, 2', 400, None),
                ("/v1/recommend", None, b"not json at all", 400, None),
                ("/v1/recommend", None, b"", 400, None),
                ("/v1/recommend", None, b"[]", 422, None),
                ("/v1/recommend", None, b'{"k": 5}', 422, "history"),
                ("/v1/recommend", None, b'{"history": "1,2"}', 422, "history"),
                ("/v1/recommend", None, b'{"history": [1.5]}', 422, "history[0]"),
                ("/v1/recommend", None, b'{"history": [true]}', 422, "history[0]"),
                ("/v1/recommend", None, b'{"history": [null]}', 422, "history[0]"),
                ("/v1/recommend", None, b'{"history": [], "k": "10"}', 422, "k"),
                ("/v1/recommend", None, b'{"history": [], "k": -3}', 422, "k"),
                ("/v1/recommend", None, b'{"history": [], "k": 0}', 422, "k"),
                ("/v1/recommend", None, b'{"history": [], "k": 100000000}', 422, "k"),
                (
                    "/v1/recommend",
                    None,
                    b'{"history": [], "exclude_history": "yes"}',
                    422,
                    "exclude_history",
                ),
                (
                    "/v1/recommend",
                    None,
                    b'{"history": [], "unknown_items": "drop"}',
                    422,
                    "unknown_items",
                ),
                ("/v1/recommend", None, b'{"history": [], "colour": "red"}', 422, "colour"),
                ("/v1/recommend", None, b'{"history": [123456789]}', 422, "history"),
                (
                    "/v1/recommend",
                    None,
                    b'{"history": [' + b"1," * 50 + b"1]}",
                    422,
                    "history",
                ),
                ("/v1/recommend", None, b'{"history": [' + b"1," * 600_000 + b"1]}", 413, None),
                ("/v1/recommend/batch", None, b'{"requests": []}', 422, "requests"),
                (
                    "/v1/recommend/batch",
                    None,
                    b'{"requests": [{"history": []}, {"history": [], "k": -1}]}',
                    422,
                    "requests[1].k",
                ),
                (
                    "/v1/recommend/batch",
                    None,
                    b'{"requests": [' + b'{"history": []},' * 4 + b'{"history": []}]}',
                    422,
                    "requests",
                ),
                ("/v1/recommend", {}, b'{"history": []}', 401, "Authorization"),
                (
                    "/v1/recommend",
                    {"Authorization": "Bearer wrong"},
                    b'{"history": []}',
                    401,
                    "Authorization",
                ),
                (
                    "/v1/recommend",
                    {"Authorization": TOKEN},
                    b'{"history": []}',
                    401,
                    "Authorization",
                ),
                ("/v1/nothing-here", None, b"{}", 404, None),
                ("/v1/slate", None, b'{"user": 1, "history": []}', 404, None),
            ]
            for path, headers, body, status, field in bad:
                use = auth if headers is None else headers
                r = httpx.post(base + path, content=body, headers=use, timeout=10)
                assert r.status_code == status, (path, body[:60], r.text)
                assert r.json()["error"]["status"] == status
                if field is not None:
                    assert r.json()["error"]["field"] == field, r.text
                assert client.get("/health").status_code == 200
            assert client.get("/v1/recommend").status_code == 405
            assert httpx.get(base + "/v1/model", timeout=10).status_code == 401  # no token
            assert httpx.get(base + "/health", timeout=10).status_code == 200  # liveness is open

            text = client.get("/metrics").text
            assert 'rlrec_requests_total{route="/v1/recommend",status="200"} 5.0' in text
            assert 'rlrec_requests_total{route="/v1/recommend",status="422"}' in text
            assert "rlrec_batch_histories_count" in text and "rlrec_request_seconds_bucket" in text

            # SIGTERM while a request is in flight: it is answered, then the server exits cleanly
            body = b'{"history": [], "k": 3}'
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                head = (
                    f"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                sock.sendall(head.encode() + body[:5])
                time.sleep(0.3)
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                sock.sendall(body[5:])
                reply = sock.recv(65536).decode()
            assert reply.startswith("HTTP/1.1 200"), reply
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_is_a_clear_error(run_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "rlrec", "serve", str(run_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2 and "could not serve on 127.0.0.1" in proc.stderr, proc.stderr


# ------------------------------------------------------------------- slates of an online agent


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny HAC run (``rlrec sim train``) on a synthetic list dataset."""
    from online_helpers import feature_urm, run_config, tiny_lists

    from rlrec.online.trainer import OnlineTrainer

    root = tmp_path_factory.mktemp("sim_serve")
    data = tiny_lists(root)
    out = root / "hac"
    OnlineTrainer(run_config(data, out, feature_urm(data, root / "urm"))).fit()
    return out


def test_slates_of_an_online_agent(sim_run: Path) -> None:
    from fastapi.testclient import TestClient

    from rlrec.serve.api import ServeSettings, create_app
    from rlrec.serve.server import load_served
    from rlrec.serve.slates import SlateRecommender
    from rlrec.sim.schema import ITEM, RAW, USER

    rec = load_served(sim_run, "best")
    assert isinstance(rec, SlateRecommender)
    ds = rec.dataset
    raw_item = dict(zip(ds.items[ITEM].to_list(), ds.items[RAW].to_list(), strict=True))
    raw_user = dict(zip(ds.users[USER].to_list(), ds.users[RAW].to_list(), strict=True))
    # the agent's own greedy slates for logged start states, as the simulator would show them
    logged = ds.tensors("test", rec.max_history)
    obs = {"user": logged.user[:6], "history": logged.history[:6]}
    want = rec.agent.act(obs, torch.Generator(), explore=False).slate.tolist()
    app = create_app(rec, sim_run, "best", ServeSettings())
    with TestClient(app) as client:
        for row in range(6):
            history = [raw_item[i] for i in logged.history[row].tolist() if i > 0]
            body = {"user": raw_user[int(logged.user[row])], "history": history}
            r = client.post("/v1/slate", json=body)
            assert r.status_code == 200, r.text
            assert r.json() == {"items": [raw_item[i] for i in want[row]], "unknown": []}
        r = client.post("/v1/slate", json={**body, "history": [*history, 10**9]})
        assert r.status_code == 422 and r.json()["error"]["field"] == "history"
        skip = {**body, "history": [*history, 10**9], "unknown_items": "skip"}
        r = client.post("/v1/slate", json=skip)
        assert r.json() == {"items": [raw_item[i] for i in want[5]], "unknown": [10**9]}
        r = client.post("/v1/slate", json={"user": 10**9, "history": []})
        assert r.status_code == 422 and r.json()["error"]["field"] == "user"
        r = client.post("/v1/slate", json={"history": []})
        assert r.status_code == 422 and r.json()["error"]["field"] == "user"
        r = client.post("/v1/recommend", json={"history": []})
        assert r.status_code == 404 and "/v1/slate" in r.json()["error"]["message"]
        info = client.get("/v1/model").json()
        assert info["method"] == "hac" and info["slate_size"] == ds.slate_size
        assert info["n_items"] == ds.n_items and info["checkpoint"]["which"] == "best"
        assert isinstance(info["metrics"]["eval"]["total_reward_mean"], float)
