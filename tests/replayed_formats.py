"""Replayed exposition formats of servers that cannot run here (CUDA builds, a JVM frontend, heavy installs):
Triton, vLLM, TorchServe; and BentoML, whose real server tests/integration/test_presets_bentoml.py also runs.
These are NOT the real servers: each class renders the text a server
of that kind exposes on ``/metrics`` (names, labels, types, bucket bounds, quirks such as TorchServe's
trailing commas or counters that appear only once they count something), as their documentation and code
show it, for the requests ``record`` is told about. Served by ``tests.serving_fixtures.TextExporter`` and
scraped by a real Prometheus.

Sources:
- Triton: triton-inference-server/server ``docs/user_guide/metrics.md`` (counts, cumulative ``_us``
  latencies, labels ``model``/``version``; per-reason failure counters of newer builds, present from load).
- vLLM: vllm-project/vllm ``docs/source/design/v1/metrics.md`` and ``vllm/v1/metrics/loggers.py``
  (``vllm:`` histograms with ``model_name``/``engine``, e2e buckets); ``http_requests_total`` from
  prometheus-fastapi-instrumentator's defaults as vLLM's API server installs it (grouped ``status="5xx"``).
- TorchServe: pytorch/serve ``docs/metrics_api.md`` (the sample output: ``ts_inference_requests_total``,
  ``ts_inference_latency_microseconds``, ``Requests2XX``/``Requests5XX`` with ``Level``/``Hostname``).
- BentoML: bentoml/BentoML ``src/bentoml/_internal/server/http/instruments.py`` and the metrics guide
  (``bentoml_service_request_total``/``_duration_seconds`` with ``endpoint``, ``http_response_code``,
  ``service_name``, ``service_version``; ``service_version="not available"`` outside a built bento).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PROMETHEUS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
VLLM_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                    240.0, 480.0, 960.0, 1920.0, 7680.0)


def _labels(pairs: dict[str, str], trailing_comma: bool = False) -> str:
    text = ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items()))
    return "{" + text + ("," if trailing_comma else "") + "}"


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        pairs = zip(self.buckets, self.counts, strict=True)
        out = [f"{name}_bucket{_labels({**labels, 'le': repr(float(b))})} {c}" for b, c in pairs]
        out.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {self.total}")
        out.append(f"{name}_count{_labels(labels)} {self.total}")
        out.append(f"{name}_sum{_labels(labels)} {self.sum}")
        return out


class Replay:
    """A server's /metrics for one pod; ``record`` one request (ok or failed, its latency)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def record(self, ok: bool, latency_s: float) -> None:
        with self.lock:
            self._record(ok, latency_s)

    def render(self) -> str:
        with self.lock:
            return "\n".join(self._render()) + "\n"

    def _record(self, ok: bool, latency_s: float) -> None:
        raise NotImplementedError

    def _render(self) -> list[str]:
        raise NotImplementedError


class TritonReplay(Replay):
    """Triton's per-model counters; ``failure_counter=False`` replays a build/config without it."""

    REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")

    def __init__(self, model: str, version: int, failure_counter: bool = True) -> None:
        super().__init__()
        self.labels = {"model": model, "version": str(version)}
        self.failure_counter = failure_counter
        self.success = self.failure = 0
        self.duration_us = self.queue_us = self.compute_us = 0.0

    def _record(self, ok: bool, latency_s: float) -> None:
        if ok:
            self.success += 1
        else:
            self.failure += 1
        self.duration_us += latency_s * 1e6
        self.queue_us += latency_s * 1e6 * 0.05
        self.compute_us += latency_s * 1e6 * 0.9

    def _render(self) -> list[str]:
        lab = _labels(self.labels)
        lines = [
            "# HELP nv_inference_request_success Number of successful inference requests, all batch sizes",
            "# TYPE nv_inference_request_success counter",
            f"nv_inference_request_success{lab} {self.success}",
        ]
        if self.failure_counter:
            lines += [
                "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes",
                "# TYPE nv_inference_request_failure counter",
            ]
            for reason in self.REASONS:
                n = self.failure if reason == "BACKEND" else 0
                lines.append(f"nv_inference_request_failure{_labels({**self.labels, 'reason': reason})} {n}")
        for name, value, help_text in (
            ("nv_inference_count", self.success, "Number of inferences performed (does not include cached requests)"),
            ("nv_inference_exec_count", self.success, "Number of model executions performed"),
            ("nv_inference_request_duration_us", self.duration_us, "Cumulative inference request duration in us"),
            ("nv_inference_queue_duration_us", self.queue_us, "Cumulative inference queuing duration in us"),
            ("nv_inference_compute_infer_duration_us", self.compute_us, "Cumulative compute inference duration in us"),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name}{lab} {value}"]
        return lines


class VllmReplay(Replay):
    """vLLM's engine histograms (finished requests only) and the API server's grouped HTTP counter."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.labels = {"engine": "0", "model_name": model}
        self.e2e = _Histogram(VLLM_E2E_BUCKETS)
        self.ttft = _Histogram((0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0))
        self.http: dict[str, int] = defaultdict(int)

    def _record(self, ok: bool, latency_s: float) -> None:
        if ok:
            self.e2e.observe(latency_s)
            self.ttft.observe(latency_s * 0.2)
            self.http["2xx"] += 1
        else:
            self.http["5xx"] += 1

    def _render(self) -> list[str]:
        lines = ["# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.",
                 "# TYPE vllm:e2e_request_latency_seconds histogram",
                 *self.e2e.lines("vllm:e2e_request_latency_seconds", self.labels),
                 "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.",
                 "# TYPE vllm:time_to_first_token_seconds histogram",
                 *self.ttft.lines("vllm:time_to_first_token_seconds", self.labels),
                 "# HELP vllm:request_success_total Count of successfully processed requests.",
                 "# TYPE vllm:request_success_total counter",
                 f"vllm:request_success_total{_labels({**self.labels, 'finished_reason': 'stop'})} {self.e2e.total}",
                 "# HELP http_requests_total Total number of requests by method, status and handler.",
                 "# TYPE http_requests_total counter"]
        for status, n in sorted(self.http.items()):
            labels = {"handler": "/v1/completions", "method": "POST", "status": status}
            lines.append(f"http_requests_total{_labels(labels)} {n}")
        return lines


class TorchServeReplay(Replay):
    """TorchServe in metrics_mode prometheus: model counters and host-level status counters."""

    HOST = "torchserve-0.model-serving.svc.cluster.local"

    def __init__(self, model: str, model_version: str = "default") -> None:
        super().__init__()
        self.model_labels = {"model_name": model, "model_version": model_version, "hostname": self.HOST}
        self.requests = 0
        self.latency_us = self.queue_us = 0.0
        self.status: dict[str, int] = defaultdict(int)

    def _record(self, ok: bool, latency_s: float) -> None:
        self.requests += 1
        if ok:
            self.latency_us += latency_s * 1e6
            self.queue_us += latency_s * 1e6 * 0.01
        self.status["2XX" if ok else "5XX"] += 1

    def _render(self) -> list[str]:
        host = {"Level": "Host", "Hostname": self.HOST}
        lines = []
        for code in ("2XX", "4XX", "5XX"):
            name = f"Requests{code}"
            lines += [f"# HELP {name} Torchserve prometheus counter metric with unit: Count", f"# TYPE {name} counter"]
            if self.status.get(code):
                lines.append(f"{name}{_labels(host, trailing_comma=True)} {float(self.status[code])}")
        model = _labels(self.model_labels, trailing_comma=True)
        for name, value, unit in (
            ("ts_inference_requests_total", float(self.requests), "Count"),
            ("ts_inference_latency_microseconds", self.latency_us, "Microseconds"),
            ("ts_queue_latency_microseconds", self.queue_us, "Microseconds"),
        ):
            lines += [f"# HELP {name} Torchserve prometheus counter metric with unit: {unit}",
                      f"# TYPE {name} counter", f"{name}{model} {value}"]
        lines += ["# HELP CPUUtilization Torchserve prometheus gauge metric with unit: Percent",
                  "# TYPE CPUUtilization gauge", f"CPUUtilization{_labels(host, trailing_comma=True)} 0.0"]
        return lines


class BentoMLReplay(Replay):
    """BentoML's service metrics for one API endpoint."""

    def __init__(self, service: str, endpoint: str = "/summarize") -> None:
        super().__init__()
        self.labels = {"endpoint": endpoint, "service_name": service, "service_version": "not available"}
        self.by_code: dict[str, _Histogram] = {}

    def _record(self, ok: bool, latency_s: float) -> None:
        code = "200" if ok else "500"
        self.by_code.setdefault(code, _Histogram(PROMETHEUS_BUCKETS)).observe(latency_s)

    def _render(self) -> list[str]:
        lines = ["# HELP bentoml_service_request_total Multiprocess metric", "# TYPE bentoml_service_request_total counter"]
        for code, hist in sorted(self.by_code.items()):
            lines.append(f"bentoml_service_request_total{_labels({**self.labels, 'http_response_code': code})} {hist.total}")
        lines += ["# HELP bentoml_service_request_duration_seconds Multiprocess metric",
                  "# TYPE bentoml_service_request_duration_seconds histogram"]
        for code, hist in sorted(self.by_code.items()):
            lines += hist.lines("bentoml_service_request_duration_seconds", {**self.labels, "http_response_code": code})
        lines += ["# HELP bentoml_service_request_in_progress Multiprocess metric",
                  "# TYPE bentoml_service_request_in_progress gauge",
                  f"bentoml_service_request_in_progress{_labels(self.labels)} 0.0"]
        return lines


@dataclass(frozen=True)
class Traffic:
    """One replayed pod's requests: rate, failing share, log-normal latency."""

    replay: Replay
    rps: float
    error_ratio: float = 0.0
    latency_median_s: float = 0.02


class ReplayDriver:
    """Records each pod's requests into its replay, ``tick`` seconds at a time, from one thread."""

    def __init__(self, traffic: Sequence[Traffic], tick: float = 0.05, seed: int = 11) -> None:
        self.traffic = list(traffic)
        self.tick = tick
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-driver", daemon=True)

    def start(self) -> ReplayDriver:
        self._thread.start()
        return self

    def _run(self) -> None:
        carry = [0.0] * len(self.traffic)
        while not self._stop.wait(self.tick):
            for i, t in enumerate(self.traffic):
                expected = t.rps * self.tick + carry[i]
                n = int(expected)
                carry[i] = expected - n
                failed = self._rng.random(n) < t.error_ratio
                latencies = t.latency_median_s * np.exp(self._rng.normal(0.0, 0.3, n))
                for bad, latency in zip(failed, latencies, strict=True):
                    t.replay.record(not bad, float(latency))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
