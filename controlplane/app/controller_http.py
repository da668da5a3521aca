"""The controller's HTTP endpoints: ``/metrics`` (prometheus_client), ``/healthz``, ``/readyz``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "controlplane_reconciles_total", "Reconciles by result", ["result"], registry=self.registry
        )
        self.reconcile_seconds = Histogram(
            "controlplane_reconcile_duration_seconds",
            "Time of one reconcile",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.api_requests = Counter(
            "controlplane_api_requests_total", "Kubernetes API requests", ["verb", "code"], registry=self.registry
        )
        self.status_writes = Counter("controlplane_status_writes_total", "Status writes", registry=self.registry)
        self.leader = Gauge("controlplane_leader", "1 while this replica is the leader", registry=self.registry)
        self.queue_depth = Gauge("controlplane_queue_depth", "Keys waiting in the work queue", registry=self.registry)

    def on_request(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.api_requests.labels(verb=verb, code=str(code)).inc()


def serve(
    port: int, metrics: ControllerMetrics, ready: Callable[[], bool], host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Start the endpoints in a daemon thread; ``port`` 0 picks a free one (``server.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._reply(200, b"ok\n")
            elif self.path == "/readyz":
                ok = ready()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"not ready\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
