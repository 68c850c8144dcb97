"""The HTTP API of ``rlrec serve`` (FastAPI): top-k lists from a trained run, safe by default.

Endpoints (JSON; item ids are the raw ids of the run's dataset, as in ``rlrec recommend``):

- ``POST /v1/recommend`` ``{"history": [ids, oldest first], "k": 10, "exclude_history": false,
  "unknown_items": "error" | "skip"}`` → ``{"items": [...], "scores": [...], "unknown": [...]}``;
- ``POST /v1/recommend/batch`` ``{"requests": [...]}`` → ``{"results": [...]}``;
- ``POST /v1/slate`` (runs of ``rlrec sim train``) ``{"user": id, "history": [ids],
  "unknown_items": ...}`` → ``{"items": [K ids], "unknown": [...]}``: the agent's greedy slate;
- ``GET /v1/model``: what is served; ``GET /health``: liveness; ``GET /metrics``: Prometheus text.

Every error is a JSON body ``{"error": {"status", "field", "message"}}`` with a 4xx status: 400
malformed JSON, 401 missing or wrong bearer token (when ``RLREC_API_KEY`` is set), 404/405 unknown
route or method, 413 body over the limit, 422 a field that is wrong (type, range, limit, unknown
item). Bad input is rejected before it reaches the model and never stops the server. Concurrent
requests are scored together (:mod:`rlrec.serve.batcher`).
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from rlrec import __version__
from rlrec.fsutil import read_json
from rlrec.serve.batcher import MicroBatcher
from rlrec.serve.inference import Query, Recommender
from rlrec.serve.metrics import ServeMetrics
from rlrec.serve.slates import SlateQuery, SlateRecommender

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServeSettings(BaseModel):
    """Limits and batching of the server (the ``rlrec serve`` options)."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(1_048_576, ge=1, description="largest request body")
    max_history: int = Field(1_000, ge=1, description="longest history in one request")
    max_k: int = Field(1_000, ge=1, description="largest k (also at most the catalogue size)")
    max_batch_requests: int = Field(256, ge=1, description="most requests in one batch call")
    max_batch: int = Field(64, ge=1, description="most histories per forward pass (1: no batching)")
    max_wait_ms: float = Field(
        0.0, ge=0, description="how long a pass waits for more requests (0: takes what is queued)"
    )
    api_key: str | None = Field(None, description="bearer token required when set")


class RecommendRequest(BaseModel):
    """One history to recommend for."""

    model_config = ConfigDict(extra="forbid")

    history: list[StrictInt | StrictStr]
    k: StrictInt = 10
    exclude_history: StrictBool = False
    unknown_items: Literal["error", "skip"] = "error"


class SlateRequest(BaseModel):
    """A user of the online run's list dataset and their history."""

    model_config = ConfigDict(extra="forbid")

    user: StrictInt | StrictStr
    history: list[StrictInt | StrictStr]
    unknown_items: Literal["error", "skip"] = "error"


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[RecommendRequest]


class APIError(Exception):
    """A client error: HTTP ``status``, the request ``field`` at fault (or ``None``), a message."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def error_response(status: int, field: str | None, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "field": field, "message": message, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


UNION_TAGS = {"int", "str"}
"""Names pydantic adds to the location of a value that fits no member of ``int | str``."""


def _field_name(loc: tuple[Any, ...]) -> str | None:
    """``("requests", 3, "history", 0, "int")`` → ``"requests[3].history[0]"``."""
    parts = [p for p in loc if p not in UNION_TAGS]
    name = ""
    for p in parts:
        name += f"[{p}]" if isinstance(p, int) else (f".{p}" if name else str(p))
    return name or None


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], body: bytes) -> M:
    """The request body as ``model`` (JSON whatever the declared content type): malformed JSON
    is a 400, the first wrong field a 422 naming it."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise APIError(400, None, f"malformed JSON: {first['msg']}") from None
        loc = tuple(first["loc"])
        field = _field_name(loc)
        why = "must be an integer or a string" if loc and loc[-1] in UNION_TAGS else first["msg"]
        raise APIError(422, field, f"{field or 'body'}: {why}") from None


def _finite(value: Any) -> Any:
    """JSON-safe metrics: NaN and infinities become ``null``, nested dicts are walked."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, whether its
    ``Content-Length`` says so up front or the bytes run over while arriving (chunked). The body
    is read here, in full, before the application sees the request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = error_response(
            413, None, f"request body over the limit of {self.limit} bytes (--max-body-bytes)"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_big(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


class BearerAuth:
    """ASGI middleware: with a key set, every route but ``/health`` needs
    ``Authorization: Bearer <key>`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.expected = None if key is None else f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            reason = "missing" if not given else "wrong"
            response = error_response(
                401, "Authorization", f"{reason} bearer token (the server has RLREC_API_KEY set)"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Timing:
    """ASGI middleware: request count by route and status, and latency by route."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, routes: set[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.observe_request(route, status, time.perf_counter() - t0)


def coerce_id(raw: int | str, int_ids: bool) -> Any:
    """A request's id in the catalogue's type (integer or string ids); one that cannot be is left
    as given, so it is reported as unknown."""
    if int_ids:
        if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
            return int(raw)
        return raw
    return str(raw)


def check_history(history: list[Any], limit: int, where: str) -> None:
    if len(history) > limit:
        raise APIError(
            422, f"{where}history", f"history has {len(history)} items; the limit is {limit}"
        )


def unknown_error(unknown: list[Any], where: str) -> APIError:
    shown = ", ".join(map(str, unknown[:5]))
    return APIError(
        422,
        f"{where}history",
        f"{len(unknown)} item id(s) not in the trained catalogue ({shown}); "
        'send "unknown_items": "skip" to leave them out',
    )


class RecommendService:
    """Requests → model queries → responses, around a :class:`Recommender`."""

    def __init__(self, rec: Recommender, settings: ServeSettings) -> None:
        self.rec, self.settings = rec, settings
        self.max_k = min(settings.max_k, len(rec.raw_ids))
        self.int_ids = rec.raw_ids.dtype == pl.Int64

    def coerce(self, raw: int | str) -> Any:
        return coerce_id(raw, self.int_ids)

    def query(self, req: RecommendRequest, where: str = "") -> tuple[Query, list[Any]]:
        """The checked model query of a request and the history's unknown ids."""
        check_history(req.history, self.settings.max_history, where)
        if not 1 <= req.k <= self.max_k:
            raise APIError(422, f"{where}k", f"k must be between 1 and {self.max_k}, got {req.k}")
        history = [self.coerce(h) for h in req.history]
        known, unknown = self.rec.lookup(history, "skip")
        if unknown and req.unknown_items == "error":
            raise unknown_error(unknown, where)
        return Query(known, req.k, req.exclude_history), unknown

    def run(self, queries: list[Query]) -> list[list[tuple[Any, float]]]:
        """One forward pass for all ``queries`` (called in the model thread)."""
        return self.rec.top(queries)

    @staticmethod
    def response(ranked: list[tuple[Any, float]], unknown: list[Any]) -> dict[str, Any]:
        return {
            "items": [item for item, _ in ranked],
            "scores": [score for _, score in ranked],
            "unknown": unknown,
        }

    def model_info(self, run_dir: Path, checkpoint: str) -> dict[str, Any]:
        """``GET /v1/model``: the run, its method, data, catalogue, checkpoint and metrics."""
        rec, meta = self.rec, self.rec.meta
        ckpt = meta.get("checkpoint", {})
        test = None
        if checkpoint == "best" and (run_dir / "summary.json").is_file():
            test = read_json(run_dir / "summary.json", "run summary").get("test")
        return _finite(
            {
                "run": run_dir.name,
                "method": rec.cfg.objective.kind,
                "encoder": rec.cfg.encoder.kind,
                "name": rec.cfg.name,
                "dataset_content_hash": meta.get("dataset_content_hash"),
                "n_items": len(rec.raw_ids),
                "state_size": rec.state_size,
                "checkpoint": {"which": checkpoint, "step": ckpt.get("step")},
                "metrics": {"val": ckpt.get("val"), "test": test},
                "device": str(rec.device),
                "rlrec_version": __version__,
                "limits": self.settings.model_dump(exclude={"api_key"}),
            }
        )


class SlateService:
    """Slate requests → agent queries → responses, around a :class:`SlateRecommender`."""

    def __init__(self, rec: SlateRecommender, settings: ServeSettings) -> None:
        self.rec, self.settings = rec, settings
        self.int_items = all(isinstance(i, int) for i in rec.item_raw[1:])
        self.int_users = all(isinstance(u, int) for u in rec.user_index)

    def query(self, req: SlateRequest) -> tuple[SlateQuery, list[Any]]:
        check_history(req.history, self.settings.max_history, "")
        user = coerce_id(req.user, self.int_users)
        if user not in self.rec.user_index:
            raise APIError(422, "user", f"user {req.user!r} is not a user of the list dataset")
        known, unknown = self.rec.lookup(
            [coerce_id(h, self.int_items) for h in req.history], "skip"
        )
        if unknown and req.unknown_items == "error":
            raise unknown_error(unknown, "")
        return SlateQuery(self.rec.user_index[user], known), unknown

    def run(self, queries: list[SlateQuery]) -> list[list[Any]]:
        return self.rec.slates(queries)

    def model_info(self, run_dir: Path, checkpoint: str) -> dict[str, Any]:
        """``GET /v1/model``: the run, its agent, list dataset, slate size, checkpoint, metrics."""
        rec = self.rec
        summary = {}
        if (run_dir / "summary.json").is_file():
            summary = read_json(run_dir / "summary.json", "run summary")
        which = rec.checkpoint.get("which", checkpoint)
        return _finite(
            {
                "run": run_dir.name,
                "method": rec.cfg.agent.kind,
                "name": rec.cfg.label,
                "dataset_content_hash": rec.dataset.content_hash,
                "n_items": len(rec.item_raw) - 1,
                "n_users": len(rec.user_index),
                "slate_size": rec.slate_size,
                "max_history": rec.max_history,
                "checkpoint": {"which": which, "best_step": summary.get("best_step")},
                "metrics": {"eval": summary.get("eval", {}).get(which)},
                "device": str(rec.device),
                "rlrec_version": __version__,
                "limits": self.settings.model_dump(exclude={"api_key"}),
            }
        )


ROUTES = {
    "/v1/recommend",
    "/v1/recommend/batch",
    "/v1/slate",
    "/v1/model",
    "/health",
    "/metrics",
}


def guarded(app: ASGIApp, settings: ServeSettings, metrics: ServeMetrics) -> ASGIApp:
    """``app`` behind the middleware: timing outermost (every answer is counted, refusals too),
    then the token, then the body limit."""
    return Timing(
        BearerAuth(BodyLimit(app, settings.max_body_bytes), settings.api_key), metrics, ROUTES
    )


def create_app(
    rec: Recommender | SlateRecommender, run_dir: Path, checkpoint: str, settings: ServeSettings
) -> ASGIApp:
    """The ASGI application serving ``rec`` (loaded from ``run_dir``'s ``checkpoint``): top-k lists
    of an offline run, or slates of an online agent."""
    service: RecommendService | SlateService = (
        RecommendService(rec, settings)
        if isinstance(rec, Recommender)
        else SlateService(rec, settings)
    )
    metrics = ServeMetrics()
    batcher: MicroBatcher[Any, Any] = MicroBatcher(
        service.run,
        max_batch=settings.max_batch,
        max_wait_s=settings.max_wait_ms / 1000,
        on_batch=metrics.observe_batch,
    )
    info = service.model_info(Path(run_dir), checkpoint)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="rlrec", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.field, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, None, str(exc.detail))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if isinstance(service, SlateService):
        slates = service

        @app.post("/v1/slate")
        async def slate(request: Request) -> JSONResponse:
            query, unknown = slates.query(parse_body(SlateRequest, await request.body()))
            (items,) = await batcher.submit([query])
            return JSONResponse({"items": items, "unknown": unknown})

        @app.post("/v1/recommend")
        @app.post("/v1/recommend/batch")
        async def not_a_ranker() -> JSONResponse:
            return error_response(
                404, None, "this run is an online agent: it serves slates (POST /v1/slate)"
            )

        return guarded(app, settings, metrics)
    ranker = service

    @app.post("/v1/slate")
    async def not_an_agent() -> JSONResponse:
        return error_response(
            404,
            None,
            "this run ranks the catalogue (POST /v1/recommend); slates come from sim runs",
        )

    @app.post("/v1/recommend")
    async def recommend(request: Request) -> JSONResponse:
        req = parse_body(RecommendRequest, await request.body())
        query, unknown = ranker.query(req)
        (ranked,) = await batcher.submit([query])
        return JSONResponse(ranker.response(ranked, unknown))

    @app.post("/v1/recommend/batch")
    async def recommend_batch(request: Request) -> JSONResponse:
        req = parse_body(BatchRequest, await request.body())
        if not 1 <= len(req.requests) <= settings.max_batch_requests:
            raise APIError(
                422,
                "requests",
                f"a batch holds 1 to {settings.max_batch_requests} requests, got {len(req.requests)}",
            )
        parsed = [ranker.query(r, f"requests[{i}].") for i, r in enumerate(req.requests)]
        ranked = await batcher.submit([q for q, _ in parsed])
        results = [ranker.response(r, u) for r, (_, u) in zip(ranked, parsed, strict=True)]
        return JSONResponse({"results": results})

    return guarded(app, settings, metrics)
