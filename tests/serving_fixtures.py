"""Real model servers (and replayed exposition formats) scraped by a real Prometheus, for the preset tests.

- ``server_venv``: a server's own virtual environment under ``tests/.cache/venvs/<name>-<version>``
  (gitignored), created on first use with ``pip install`` (pip's cache makes later installs quick; the
  install seconds are written to ``install.json`` there). Their pins clash with the project's (MLServer
  and KServe pin fastapi, uvicorn, protobuf, numpy...), so they never share the project's venv.
- ``ServedProcess``: one server process on loopback, in its own process group, stopped at teardown.
- ``TextExporter``: serves a callback's text on ``/metrics`` (the replayed formats and the queue-proxy).
- ``QueueProxy``: a reverse proxy in front of a real KServe server that counts the real responses as
  Knative's queue-proxy exports them (``revision_app_request_count{response_code,response_code_class}``).
- ``LabelledPrometheus``: static_configs whose target labels play what relabelling adds from pod labels
  (``rollout_model``, ``rollout_version``, ``rollout_role``), one target per "pod".
- ``RequestDriver``: real HTTP requests at a steady rate from threads, answers counted by status.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.prometheus_fixture import PrometheusServer, free_port

VENV_ROOT = Path(__file__).resolve().parent / ".cache" / "venvs"
SERVING_DIR = Path(__file__).resolve().parent / "serving"


@dataclass(frozen=True)
class ServerVenv:
    path: Path
    install_s: float | None  # None: reused from an earlier run

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.path / "bin" / name


def server_venv(name: str, version: str, import_name: str, timeout_s: float = 900.0) -> ServerVenv:
    """The venv with ``name==version`` installed; skips the test (with pip's reason) when it will not install."""
    path = VENV_ROOT / f"{name}-{version}"
    python = path / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", f"import {import_name}"], capture_output=True).returncode == 0:
        return ServerVenv(path, None)
    started = time.monotonic()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(path)], check=True, capture_output=True)
    try:
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"{name}=={version}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{name}=={version} did not install within {timeout_s:.0f}s")
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        pytest.skip(f"{name}=={version} did not install: {tail}")
    install_s = time.monotonic() - started
    (path / "install.json").write_text(json.dumps({"package": f"{name}=={version}", "seconds": round(install_s, 1)}))
    return ServerVenv(path, install_s)


class ServedProcess:
    """A server process (its own process group) that is ready when ``ready_url`` answers 200."""

    def __init__(self, argv: Sequence[str | Path], *, cwd: Path, ready_url: str, log: Path, env: Mapping[str, str] = {}):
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.ready_url = ready_url
        self.log = log
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> ServedProcess:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:2]} exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.argv[:2]} not ready after {timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class TextExporter:
    """``GET /metrics`` answers ``render()`` in the Prometheus text format, on a free loopback port."""

    def __init__(self, render: Callable[[], str]) -> None:
        outer = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                body = outer.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.render = render
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="text-exporter", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class QueueProxy:
    """Knative's queue-proxy, reduced to what the kserve preset reads: it forwards every POST to the real
    server and counts the real answers as ``revision_app_request_count{response_code,response_code_class}``
    (names from Knative Serving's queue-proxy metrics), exported on its own port like queue-proxy's :9091."""

    def __init__(self, upstream: str, revision: str) -> None:
        outer = self
        self.upstream = upstream.rstrip("/")
        self.revision = revision
        self.counts: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=10.0)

        class Handler(_Quiet):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = outer._client.post(
                    outer.upstream + self.path, content=body, headers={"Content-Type": "application/json"}
                )
                with outer._lock:
                    outer.counts[answer.status_code] += 1
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="queue-proxy", daemon=True).start()
        self.metrics = TextExporter(self.render)

    def render(self) -> str:
        lines = [
            "# HELP revision_app_request_count The number of requests that are routed to user-container",
            "# TYPE revision_app_request_count counter",
        ]
        with self._lock:
            counts = sorted(self.counts.items())
        for code, n in counts:
            labels = (
                f'configuration_name="{self.revision}",container_name="queue-proxy",namespace_name="default",'
                f'response_code="{code}",response_code_class="{code // 100}xx",revision_name="{self.revision}"'
            )
            lines.append(f"revision_app_request_count{{{labels}}} {n}")
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.metrics.stop()
        self._client.close()


class LabelledPrometheus(PrometheusServer):
    """A real Prometheus whose static_configs give each target the labels relabelling would copy from its
    pod (``targets``: address -> labels): the same series a kubernetes_sd ``role: pod`` job produces."""

    def __init__(self, targets: Mapping[str, Mapping[str, str]], binary: str | None = None) -> None:
        super().__init__(list(targets), binary=binary)
        self.target_labels = {k: dict(v) for k, v in targets.items()}

    def config_text(self) -> str:
        blocks = []
        for target, labels in self.target_labels.items():
            block = f'      - targets: ["{target}"]\n'
            if labels:
                block += "        labels: {" + ", ".join(f'{k}: "{v}"' for k, v in labels.items()) + "}\n"
            blocks.append(block)
        return (
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: pods\n"
            f"    scrape_interval: {self.scrape_interval}\n"
            f"    scrape_timeout: {self.scrape_interval}\n"
            "    static_configs:\n" + "".join(blocks)
        )


def pod_labels(model: str, version: int, role: str) -> dict[str, str]:
    """What the docs' relabelling copies from a rollout pod's labels."""
    return {"rollout_model": model, "rollout_version": str(version), "rollout_role": role}


@dataclass
class Endpoint:
    url: str
    body: bytes
    rps: float
    statuses: Counter[int] = field(default_factory=Counter)


class RequestDriver:
    """Real POST requests to each endpoint at its rate, one thread per endpoint."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(e,), daemon=True) for e in self.endpoints]

    def start(self) -> RequestDriver:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, endpoint: Endpoint) -> None:
        interval = 1.0 / endpoint.rps
        with httpx.Client(timeout=10.0, headers={"Content-Type": "application/json"}) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    endpoint.statuses[client.post(endpoint.url, content=endpoint.body).status_code] += 1
                except httpx.HTTPError:
                    endpoint.statuses[0] += 1
                next_at += interval
                self._stop.wait(max(next_at - time.monotonic(), 0.0))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def docs_scrape_config() -> str:
    """The ``scrape_configs`` snippet of docs/slo.md (the relabelling the presets rely on)."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "slo.md").read_text()
    return next(block for block in docs.split("```yaml\n")[1:] if block.startswith("scrape_configs:")).split("```")[0]
