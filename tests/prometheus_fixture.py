"""A real Prometheus for tests: Debian's ``prometheus`` binary on a free loopback port, 1 s scrapes.

Plugin fixtures (add ``"tests.prometheus_fixture"`` to ``pytest_plugins``):

- ``prometheus_server``: a factory ``start(targets) -> PrometheusServer``; every server it started is
  stopped (SIGTERM, then SIGKILL) and its temp storage removed at teardown.
- ``metric_exporter``: a factory ``make() -> MetricExporter``, a prometheus_client registry with the
  model servers' metrics (``model_requests_total``, ``model_request_duration_seconds``) on its own port.

``TrafficDriver`` feeds an exporter real observations for stable and canary profiles from a thread.
The classes are plain so that benchmarks can use them too. Tests are skipped when the binary is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
SCRAPE_INTERVAL = "1s"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str | None:
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")


class PrometheusServer:
    """One ``prometheus`` process scraping ``targets`` (host:port) every second."""

    def __init__(self, targets: Sequence[str], binary: str | None = None, scrape_interval: str = SCRAPE_INTERVAL):
        found = binary or prometheus_binary()
        if found is None:
            raise RuntimeError("prometheus binary not found (apt-get install prometheus)")
        self.binary = found
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
        self.process: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        targets = ", ".join(f'"{t}"' for t in self.targets)
        return (
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: models\n"
            f"    scrape_interval: {self.scrape_interval}\n"
            f"    scrape_timeout: {self.scrape_interval}\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        config = self.dir / "prometheus.yml"
        config.write_text(self.config_text())
        log = (self.dir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        path = self.dir / "prometheus.log"
        if not path.exists():
            return ""
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in ``timeout``."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_for_targets(self, timeout: float = 20.0) -> None:
        """Until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                last = httpx.get(f"{self.url}/api/v1/targets", timeout=2.0).json()["data"]["activeTargets"]
                if len(last) == len(self.targets) and all(t.get("health") == "up" for t in last):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"targets not up after {timeout:.0f}s: {last}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=5.0).json()
        return list(body["data"]["result"])


class MetricExporter:
    """The model servers' metrics in a private registry, served over HTTP on a free loopback port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "model_requests",
            "Inference requests served",
            ["model", "version", "role", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "model_request_duration_seconds",
            "Inference latency",
            ["model", "version", "role"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._server, self._thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def record(self, model: str, version: int, role: str, latency_s: float, ok: bool) -> None:
        self.requests.labels(model, str(version), role, "ok" if ok else "error").inc()
        self.latency.labels(model, str(version), role).observe(latency_s)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Profile:
    """Traffic of one version: requests per second, the share that fails, log-normal latency."""

    model: str
    version: int
    role: str
    rps: float
    error_ratio: float = 0.0
    latency_median_s: float = 0.02
    latency_sigma: float = 0.3


class TrafficDriver:
    """A thread recording real observations into an exporter, ``tick`` seconds at a time."""

    def __init__(self, exporter: MetricExporter, profiles: Sequence[Profile], tick: float = 0.05, seed: int = 7):
        self.exporter = exporter
        self._profiles = {(p.role, p.version): p for p in profiles}
        self.tick = tick
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first_record: dict[tuple[str, int], float] = {}
        self._watch: set[tuple[str, int]] = set()
        self._thread = threading.Thread(target=self._run, name="traffic-driver", daemon=True)

    def start(self) -> TrafficDriver:
        self._thread.start()
        return self

    def set_profile(self, profile: Profile) -> None:
        """Replace (or add) a version's traffic; ``first_record_after_change`` then reports its first request."""
        key = (profile.role, profile.version)
        with self._lock:
            self._profiles[key] = profile
            self._first_record.pop(key, None)
            self._watch.add(key)

    def update(self, role: str, version: int, **changes: Any) -> None:
        with self._lock:
            current = self._profiles[(role, version)]
        self.set_profile(replace(current, **changes))

    def remove(self, role: str, version: int) -> None:
        with self._lock:
            self._profiles.pop((role, version), None)

    def first_record_after_change(self, role: str, version: int) -> float | None:
        with self._lock:
            return self._first_record.get((role, version))

    def _run(self) -> None:
        last = time.monotonic()
        carry: dict[tuple[str, int], float] = {}
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            dt, last = now - last, now
            with self._lock:
                profiles = list(self._profiles.items())
            for key, p in profiles:
                expected = p.rps * dt + carry.get(key, 0.0)
                n = int(expected)
                carry[key] = expected - n
                if n <= 0:
                    continue
                failed = self._rng.random(n) < p.error_ratio
                latencies = p.latency_median_s * np.exp(self._rng.normal(0.0, p.latency_sigma, n))
                for ok, latency in zip(~failed, latencies, strict=True):
                    self.exporter.record(p.model, p.version, p.role, float(latency), bool(ok))
                with self._lock:
                    if key in self._watch and key not in self._first_record:
                        self._first_record[key] = time.time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    found = prometheus_binary()
    if found is None:
        pytest.skip("prometheus binary not found: apt-get install prometheus (or set PROMETHEUS_BIN)")
    return found


@pytest.fixture
def prometheus_server(prometheus_bin: str) -> Iterator[Callable[[Sequence[str]], PrometheusServer]]:
    """Factory: ``prometheus_server(["127.0.0.1:8000", ...])`` starts a server scraping those targets."""
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str]) -> PrometheusServer:
        server = PrometheusServer(targets, binary=prometheus_bin)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.cleanup()


@pytest.fixture
def metric_exporter() -> Iterator[Callable[[], MetricExporter]]:
    """Factory: ``metric_exporter()`` serves a fresh registry with the model servers' metrics."""
    made: list[MetricExporter] = []

    def make() -> MetricExporter:
        exporter = MetricExporter()
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.stop()


# ---- a store-backed local rollout judged on Prometheus (tests and benchmarks) ----------


@dataclass
class RolloutRun:
    """What one driven rollout did: the final record, when the canary first failed a request (the
    first bad sample), when the router's canary weight went back to 0 after traffic had moved."""

    record: Any
    first_bad_at: float | None = None
    weight_zero_at: float | None = None
    first_breach_scrape_at: float | None = None
    turns: int = 0


def drive_rollout(
    ctx: Any,
    rollout_id: int,
    *,
    prometheus_bin: str | None = None,
    rate: float = 20.0,
    workers: int = 2,
    timeout_s: float = 180.0,
    stop_prometheus_after_s: float | None = None,
) -> RolloutRun:
    """Drive a local rollout (real onnxruntime fleet and weighted router from ``controlplane.local``) through
    the application's ``reconcile_once`` with the SloAnalyzer reading a real Prometheus that scrapes the
    fleet's exporter. ``stop_prometheus_after_s``: kill Prometheus that long after the canary gets traffic."""
    from controlplane.adapters.prometheus import PrometheusProvider
    from controlplane.app.gate import local_gate
    from controlplane.app.incident_sink import StoreIncidentSink
    from controlplane.app.local_run import route_target
    from controlplane.app.slo_analyzer import SloAnalyzer, latency_threshold, load_rollout_slo
    from controlplane.app.store_state import StoreState, reconcile_once
    from controlplane.engine import RolloutSpec
    from controlplane.local.corpus import default_corpus
    from controlplane.local.target import LocalTarget
    from controlplane.retry import with_retry
    from controlplane.rollout.apply import Ports

    record = ctx.store.get_rollout(rollout_id)
    spec = RolloutSpec.from_dict(record.spec)
    slo = load_rollout_slo(spec)
    target = route_target(record)
    port = free_port()
    local = LocalTarget(spec.model, ctx.registry, default_corpus(), rate, workers, latency_threshold(slo), port, ctx.clock)
    ports = Ports(target, local.router, local.workloads, local_gate(ctx, spec, "cpu"), ctx.registry,
                  StoreIncidentSink(ctx.store, rollout_id), with_retry)
    state = StoreState(ctx.store, rollout_id)
    local.start(target)
    server = PrometheusServer([f"127.0.0.1:{port}"], binary=prometheus_bin).start()
    provider = PrometheusProvider(server.url, slo, step_duration_s=spec.step_duration_s)
    run = RolloutRun(record)
    moved_at: float | None = None
    try:
        server.wait_for_targets()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            outcome = reconcile_once(state, ports, SloAnalyzer(provider, slo), ctx.now())
            run.turns += 1
            weight = local.router.get_weight(target)
            if weight > 0 and moved_at is None:
                moved_at = time.monotonic()
            if moved_at is not None and weight == 0 and run.weight_zero_at is None:
                run.weight_zero_at = time.time()
            late = moved_at is not None and time.monotonic() - moved_at >= (stop_prometheus_after_s or 0.0)
            if stop_prometheus_after_s is not None and late and server.running:
                server.stop()
            if outcome.decision.requeue_after is None or outcome.decision.status.phase.value == "Paused":
                break
            time.sleep(min(outcome.decision.requeue_after, 0.5))
        run.record = ctx.store.get_rollout(rollout_id)
        bad = [s.at for s in local.metrics.window(spec.version, 0.0, float("inf")) if not s.ok]
        run.first_bad_at = min(bad) if bad else None
        if server.running and bad:
            run.first_breach_scrape_at = _first_scrape(server, spec.model, spec.version)
        return run
    finally:
        provider.close()
        local.stop()
        server.cleanup()


def _first_scrape(server: PrometheusServer, model: str, version: int) -> float | None:
    """Timestamp of the first scrape that saw a failed canary request."""
    expr = f'model_requests_total{{model="{model}",version="{version}",role="canary",outcome="error"}}[1h]'
    samples = [float(ts) for series in server.query(expr) for ts, value in series["values"] if float(value) > 0]
    return min(samples) if samples else None
