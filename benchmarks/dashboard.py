"""How long the dashboard takes to render a rollout page with 100 analyses, beside the rollouts list
(baseline), from the same store in the same run.

A rollout is written to a throw-away SQLite store the way the engine writes one: 100 analyses, each with
the evidence shape the judge records (4 burn windows, canary and stable series of 20 intervals), an event
per step and a rolled-back end with its incident. Each page is timed in-process (store read + HTML; median
over ``--repeat``) and over HTTP from `ctl dashboard`'s server on a free loopback port.

Run: ``python benchmarks/dashboard.py [--analyses 100] [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def evidence(i: int, now: float, failed: bool) -> dict[str, Any]:
    burn = [
        {"objective": objective, "status": "fired" if failed and objective == "availability" else "ok",
         "burn_threshold": threshold, "severity": "page", "long_window_s": long_s, "short_window_s": 3.0,
         "long_ratio": 0.1 if failed else 0.0, "short_ratio": 0.2 if failed else 0.0,
         "long_burn": 100.0 if failed else 0.2, "short_burn": 200.0 if failed else 0.1, "reason": "benchmark"}
        for objective in ("availability", "latency") for threshold, long_s in ((14.4, 6.0), (6.0, 36.0))
    ]
    series = {"latencies_ms": [40.0 + (k * 7 + i) % 30 for k in range(20)], "error_ratios": [0.0] * 20}
    return {
        "verdict": "fail" if failed else "pass", "burn": burn, "window": {"start": now - 6, "end": now, "seconds": 6.0},
        "canary": {"requests": 30.0, "errors": 3.0 if failed else 0.0, "latency_good": 30.0, **series},
        "stable": {"requests": 600.0, "errors": 0.0, "latency_good": 600.0, **series},
        "comparison": [{"metric": "latency_ms", "status": "ok", "reason": "no regression", "canary_mean": 50.0,
                        "stable_mean": 49.0, "p_value": 0.4}],
        **({"failure_mode": "slo-burn-errors"} if failed else {}),
    }


def seed(ctx: Any, analyses: int) -> int:
    store, now = ctx.store, time.time() - analyses * 10
    record = store.create_rollout({"model": "bench", "version": 2, "stable_version": 1, "steps": [5, 25, 50, 100]},
                                  {"phase": "Progressing", "weight": 5, "step_index": 0}, now)
    for i in range(analyses):
        failed = i == analyses - 1
        at = now + i * 10
        weight = (5, 25, 50, 100)[min(i * 4 // analyses, 3)]
        store.add_analysis(record.id, min(i * 4 // analyses, 3), weight, "fail" if failed else "pass",
                           "benchmark analysis", evidence(i, at, failed), at)
        status = {"phase": "RolledBack" if failed else "Progressing", "weight": 0 if failed else weight, "step_index": 0}
        kind = "RolledBack" if failed else "StepExtended" if i % 4 else "StepStarted"
        record = store.save_rollout(record.id, record.revision, record.spec, status,
                                    [(kind, f"event {i}", {"weight": weight})], at)
    store.open_incident(record.id, "bench", 2, "slo-burn-errors", "page", "benchmark", evidence(0, now, True),
                        "runbooks/slo-burn-errors.md", now)
    return record.id


def median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["CONTROLPLANE_HOME"] = home
        os.environ.pop("CONTROLPLANE_DB_URL", None)
        from controlplane.app.context import open_context
        from controlplane.dashboard.server import Dashboard, make_server

        board = Dashboard(open_context())
        rollout_id = seed(board.ctx, args.analyses)
        size = len(board.handle(f"/rollouts/{rollout_id}")[2])
        page = median_ms(lambda: board.handle(f"/rollouts/{rollout_id}"), args.repeat)
        listing = median_ms(lambda: board.handle("/"), args.repeat)
        server = make_server(board, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"

        def get(path: str) -> None:
            with urllib.request.urlopen(base + path) as response:
                response.read()

        page_http = median_ms(lambda: get(f"/rollouts/{rollout_id}"), args.repeat)
        listing_http = median_ms(lambda: get("/"), args.repeat)
        server.shutdown()
        server.server_close()
    print(f"rollout page, {args.analyses} analyses ({size / 1024:.0f} KiB): {page:.1f} ms in-process, "
          f"{page_http:.1f} ms over HTTP (median of {args.repeat})")
    print(f"baseline, rollouts list (1 rollout): {listing:.1f} ms in-process, {listing_http:.1f} ms over HTTP")


if __name__ == "__main__":
    main()
