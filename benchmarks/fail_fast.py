"""How long the paths that must not wait take when something is broken, beside a baseline from the same run.

The tests assert the behaviour (the incident is recorded while its webhook still hangs; MLflow is asked
once per call; long-seq-memory refuses a cut position table without a probe); the figures are here:

1. ``open_incident`` with a webhook that accepts the connection and never answers, beside the same call
   with no webhook (baseline): median over ``--repeat`` calls.
2. A registry call (``list_models``) against an MLflow that refuses connections and one that answers 503,
   beside the same call on a live embedded store (baseline). MLflow's own client would retry the 503
   with back-off (7 retries by default: minutes).
3. long-seq-memory on a cold cache: the variant with 64 position embeddings built and exported, then
   refused before any probe, beside the healthy model exported and checked with its probes (baseline).

Run: ``python benchmarks/fail_fast.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _median_s(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(Exception):  # the broken side is expected to raise
            call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def incidents(repeat: int) -> dict[str, float]:
    from controlplane.app import incidents as inc
    from controlplane.store import SqlStore
    from tests.servers import HangingEndpoint

    endpoint = HangingEndpoint()
    counter = iter(range(1, 10_000))
    with tempfile.TemporaryDirectory() as home, SqlStore(f"sqlite:///{home}/state.db") as store:

        def open_one(webhook: str) -> object:
            return inc.open_incident(store, failure_mode="slo-burn-errors", severity="page", summary="x",
                                     evidence={}, rollout_id=None, model="bench", version=next(counter),
                                     now=time.time(), webhook=webhook)

        open_one("")  # warm-up: tables, imports
        baseline = _median_s(lambda: open_one(""), repeat)
        hanging = _median_s(lambda: open_one(endpoint.url), repeat)
    endpoint.close()
    return {"no webhook (baseline)": baseline, "webhook never answers": hanging}


class _Unavailable(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        return


def registry(repeat: int) -> dict[str, float]:
    from controlplane.adapters.mlflow_registry import MlflowRegistry
    from controlplane.settings import load_settings
    from tests.servers import free_port

    server = HTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as home:
        live = MlflowRegistry.from_settings(load_settings({"CONTROLPLANE_HOME": home}))
        live.list_models()  # warm-up: creates MLflow's database
        refused = MlflowRegistry(f"http://127.0.0.1:{free_port()}", None, Path(home) / "a1", Path(home) / "c1")
        failing = MlflowRegistry(f"http://127.0.0.1:{server.server_port}", None, Path(home) / "a2", Path(home) / "c2")
        figures = {
            "live embedded store (baseline)": _median_s(live.list_models, repeat),
            "connection refused": _median_s(refused.list_models, repeat),
            "server answers 503": _median_s(failing.list_models, repeat),
        }
    server.shutdown()
    server.server_close()
    return figures


def long_seq_memory() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fail-fast-cache-") as cache:
        os.environ["VALIDATORS_B_CACHE"] = cache  # a cold cache: both variants are built and exported here
        from tests.validators import partb_models
        from validators import long_seq_memory as lsm
        from validators.settings import Settings

        def run(build: Callable[[], object], work: str) -> tuple[float, str]:
            start = time.perf_counter()
            result = lsm.check(build(), None, Settings(), device="cpu", workdir=Path(cache) / work)  # type: ignore[arg-type]
            return time.perf_counter() - start, f"{result.status.value}, probes {result.metrics.get('probes', 0):g}"

        healthy_s, healthy = run(partb_models.healthy, "healthy")
        cut_s, cut = run(partb_models.cut_positions, "cut")
    return {f"healthy: export + check ({healthy}) (baseline)": healthy_s, f"cut positions: build + export + check "
            f"({cut})": cut_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-validators", action="store_true", help="leave out long-seq-memory (exports)")
    args = parser.parse_args()
    sections = {"open_incident": incidents(args.repeat), "MLflow registry list_models": registry(args.repeat)}
    if not args.skip_validators:
        sections["long-seq-memory, cold cache"] = long_seq_memory()
    for title, figures in sections.items():
        print(title)
        for label, seconds in figures.items():
            print(f"  {label:<62} {seconds:8.3f} s")


if __name__ == "__main__":
    main()
