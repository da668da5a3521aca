"""The model servers' Prometheus metrics: ONE definition, used by ``ctl serve`` and by the local target.

``RequestMetrics`` holds the two series the SLO judge reads (``model_requests_total{model,version,role,outcome}``
and ``model_request_duration_seconds{model,version,role}``); ``ServerMetrics`` adds what on-call needs from a
serving pod. Every series carries only ``model``, ``version``, ``role`` and at most one small fixed label
(``outcome``, ``kind``, ``reason``): no per-request labels. docs/ARCHITECTURE.md documents each one.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REQUESTS = "model_requests"  # exported as model_requests_total
DURATION = "model_request_duration_seconds"
LABELS = ("model", "version", "role")
OUTCOMES = ("ok", "error", "invalid")  # invalid: the client's input was refused (4xx); error: the server failed
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ERROR_KINDS = ("out_of_memory", "bad_input", "internal")
UNHEALTHY_REASONS = ("non_finite", "zero_norm")


class RequestMetrics:
    """Requests and their latency, per model, version and role (the SLO judge's input)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            REQUESTS, "Inference requests answered, by outcome", [*LABELS, "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            DURATION, "Inference request latency (seconds)", list(LABELS), buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def announce(self, model: str, version: int, role: str, outcomes: Sequence[str] = ("ok", "error")) -> None:
        """Create a version's series at zero when it starts serving: Prometheus takes a new series' first
        value as its start, so an error counter born at 1 would hide the first error from increase()."""
        for outcome in outcomes:
            self.requests.labels(model, str(version), role, outcome).inc(0)

    def observe(self, model: str, version: int, role: str, outcome: str, latency_s: float) -> None:
        labels = (model, str(version), role)
        self.requests.labels(*labels, outcome).inc()
        self.latency.labels(*labels).observe(latency_s)


class ServerMetrics(RequestMetrics):
    """Everything ``ctl serve`` exports, bound to the one model version it serves."""

    def __init__(self, model: str, version: int, role: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.labels = (model, str(version), role)
        r = self.registry
        names = list(LABELS)
        self.tokens = Histogram("model_request_tokens", "Tokens per text after truncation", names,
                                buckets=TOKEN_BUCKETS, registry=r).labels(*self.labels)
        self.batch = Histogram("model_batch_size", "Texts per inference batch", names,
                               buckets=BATCH_BUCKETS, registry=r).labels(*self.labels)
        self.queue_wait = Histogram("model_queue_wait_seconds", "Time a request waited before its batch ran", names,
                                    buckets=WAIT_BUCKETS, registry=r).labels(*self.labels)
        self.inflight = Gauge("model_inflight_requests", "Inference requests being handled", names,
                              registry=r).labels(*self.labels)
        self.queued = Gauge("model_queue_texts", "Texts waiting for a batch", names, registry=r).labels(*self.labels)
        self.truncations = Counter("model_truncations", "Texts cut to the model's maximum length", names,
                                   registry=r).labels(*self.labels)
        self.tokenization_errors = Counter("model_tokenization_errors", "Texts the tokenizer could not encode", names,
                                           registry=r).labels(*self.labels)
        errors = Counter("model_inference_errors", "Failed requests by kind", [*names, "kind"], registry=r)
        self.errors = {kind: errors.labels(*self.labels, kind) for kind in ERROR_KINDS}
        unhealthy = Counter("model_output_unhealthy", "Embeddings that are not finite or have zero norm",
                            [*names, "reason"], registry=r)
        self.unhealthy = {reason: unhealthy.labels(*self.labels, reason) for reason in UNHEALTHY_REASONS}
        self.load_seconds = Gauge("model_load_seconds", "Seconds from start to ready (fetch, verify, session, warm-up)",
                                  names, registry=r).labels(*self.labels)
        self.announce(model, version, role, OUTCOMES)
        for child in (*self.errors.values(), *self.unhealthy.values(), self.truncations, self.tokenization_errors):
            child.inc(0)

    def request(self, outcome: str, latency_s: float) -> None:
        self.requests.labels(*self.labels, outcome).inc()
        self.latency.labels(*self.labels).observe(latency_s)
