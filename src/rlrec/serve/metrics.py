"""Prometheus metrics of ``rlrec serve`` (``GET /metrics``), in a registry of their own per app.

- ``rlrec_requests_total{route, status}``: requests answered;
- ``rlrec_request_seconds{route}``: time from the request's arrival to its last byte sent;
- ``rlrec_batch_histories``: histories per forward pass (how much micro-batching gathers);
- ``rlrec_forward_seconds``: time of one forward pass with its ranking.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """The server's counters and histograms (a fresh registry, so several apps can coexist)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rlrec_requests", "Requests answered.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rlrec_request_seconds",
            "Request latency in seconds.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "rlrec_batch_histories",
            "Histories per forward pass.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.forward = Histogram(
            "rlrec_forward_seconds",
            "Time of one forward pass and its ranking, in seconds.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, histories: int, seconds: float) -> None:
        self.batch.observe(histories)
        self.forward.observe(seconds)
