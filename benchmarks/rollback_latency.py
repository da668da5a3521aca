"""Rollback latency and false rollbacks, with a real Prometheus.

1. Rollback latency: minilm v3 (position table cut to 64 rows, so long inputs fail at inference) is rolled out
   on the local target (real onnxruntime servers, real MLflow registry, SQLite store) while a real Prometheus
   scrapes the servers every second and the SLO analysis reads it every analysis interval. Measured per run:
   seconds from the first failed canary request (the first bad sample) to canary weight 0, and from the first
   scrape that saw a failure to weight 0. Printed beside the theoretical detection time of the configured
   windows (SRE Workbook: burn threshold / error ratio x long window, plus one scrape and one analysis
   interval), computed from the error ratio measured in the same run, and the goal (one analysis interval + 5 s
   after the first scrape showing the breach).
2. False rollbacks: N healthy canaries (default 50, each its own version label, the same traffic profile as
   stable) exported by one prometheus_client exporter and scraped by the same kind of real Prometheus, each
   judged over several consecutive analysis windows; any FAIL verdict is a false rollback (goal: 0).

The latency figures live here only: tests/integration/test_prometheus_rollout.py asserts the causal order
(first bad request, the scrape that saw it, the rollback decision, canary weight 0), not how fast.

Run: ``python benchmarks/rollback_latency.py [--runs 5] [--healthy 50] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "minilm"
SCRAPE_S = 1.0
SLO_DOC: dict[str, Any] = {
    "model": MODEL,
    "objectives": {"availability": {"target": 99.9}, "latency": {"target": 95, "threshold": "1s"}},
    "canary": {
        "min_requests": 30,
        "min_window": "3s",
        "compare": {"interval": "3s", "min_points": 4, "min_requests": 30},
    },
}
# Documented reference points (not measured here): Flagger rolls back after interval x threshold
# (defaults 60 s x 1; tutorials 1 m x 5 or x 10); Argo Rollouts' canonical analysis takes 900-1200 s.
REFERENCES = {
    "flagger_default_s": (60, 120),
    "flagger_tutorials_s": (300, 600),
    "argo_rollouts_example_s": (900, 1200),
}


def rollback_runs(runs: int, step_s: float, interval_s: float) -> list[dict[str, Any]]:
    from controlplane.analysis.burn import detection_time
    from controlplane.analysis.slo import parse_slo
    from controlplane.app.context import Context
    from controlplane.app.rollouts import start_rollout
    from controlplane.ports import NewVersion
    from controlplane.settings import load_settings
    from tests.prometheus_fixture import drive_rollout, prometheus_binary
    from tests.validators.fixtures import build_variants

    binary = prometheus_binary()
    if binary is None:
        raise SystemExit("prometheus not found: apt-get install prometheus")
    variants = build_variants()
    slo = parse_slo(SLO_DOC, "benchmark")
    results = []
    with tempfile.TemporaryDirectory(prefix="rollback-bench-") as home:
        ctx = Context(load_settings({"CONTROLPLANE_HOME": home}))
        for name in ("healthy", "short-positions"):
            files = {f: variants[name] / f for f in ("model.onnx", "tokenizer.json", "config.json")}
            ctx.registry.register(NewVersion(name=MODEL, files=files, tags={"variant": name}))
        ctx.registry.set_alias(MODEL, "production", 1)
        windows = slo.burn_windows(step_s)
        for i in range(runs):
            record = start_rollout(
                ctx, f"{MODEL}:v2", steps=(25, 50, 100), step_duration_s=step_s, analysis_interval_s=interval_s,
                slo=SLO_DOC, skip_validation=True,
            )
            run = drive_rollout(ctx, record.id, prometheus_bin=binary, timeout_s=8 * step_s)
            analyses = [a for a in ctx.store.list_analysis(record.id) if a.verdict == "fail"]
            ratio = None
            if analyses:
                canary = analyses[-1].evidence.get("canary") or {}
                if canary.get("requests"):
                    ratio = (canary.get("errors") or 0.0) / canary["requests"]
            theory = None
            if ratio:
                detect = min(detection_time(ratio, 0.999, w.burn, w.long_s) for w in windows)
                theory = detect + SCRAPE_S + interval_s
            row = {
                "run": i + 1,
                "phase": run.record.status["phase"],
                "error_ratio": ratio,
                "from_first_bad_s": _diff(run.weight_zero_at, run.first_bad_at),
                "from_first_breach_scrape_s": _diff(run.weight_zero_at, run.first_breach_scrape_at),
                "theoretical_s": theory,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        ctx.store.close()  # type: ignore[attr-defined]
    return results


def false_rollbacks(canaries: int, rounds: int, step_s: float) -> dict[str, Any]:
    from controlplane.adapters.prometheus import PrometheusProvider
    from controlplane.analysis.judge import analyze
    from controlplane.analysis.slo import parse_slo
    from tests.prometheus_fixture import MetricExporter, Profile, PrometheusServer, TrafficDriver

    slo = parse_slo(SLO_DOC, "benchmark")
    exporter = MetricExporter()
    profiles = [Profile(MODEL, 1, "stable", rps=10)]
    profiles += [Profile(MODEL, 100 + i, "canary", rps=10) for i in range(canaries)]
    driver = TrafficDriver(exporter, profiles, tick=0.1).start()
    server = PrometheusServer([exporter.target]).start()
    verdicts: dict[str, int] = {}
    failures: list[str] = []
    try:
        server.wait_for_targets()
        time.sleep(step_s + 4)
        with PrometheusProvider(server.url, slo, step_duration_s=step_s) as provider:
            for r in range(rounds):
                started = time.time()
                now = started - 1.5
                for i in range(canaries):
                    result = analyze(slo, provider, MODEL, 100 + i, 1, now=now, step_duration_s=step_s)
                    verdicts[result.verdict.value] = verdicts.get(result.verdict.value, 0) + 1
                    if result.verdict.value == "fail":
                        failures.append(f"round {r + 1} v{100 + i}: {result.reason}")
                time.sleep(max(0.0, step_s - (time.time() - started)))
    finally:
        driver.stop()
        server.cleanup()
        exporter.stop()
    return {"canaries": canaries, "rounds": rounds, "judgements": sum(verdicts.values()), "verdicts": verdicts,
            "false_rollbacks": len(failures), "examples": failures[:3]}


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def _stats(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "n/a"
    return f"median {statistics.median(got):.2f} s, max {max(got):.2f} s (n={len(got)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--step", type=float, default=15.0, help="step duration (s): the 14.4x long window")
    parser.add_argument("--interval", type=float, default=1.0, help="analysis interval (s)")
    parser.add_argument("--healthy", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    runs = rollback_runs(args.runs, args.step, args.interval)
    healthy = false_rollbacks(args.healthy, args.rounds, 12.0)
    print(json.dumps({"false_rollbacks": healthy}), flush=True)

    rolled = sum(r["phase"] == "RolledBack" for r in runs)
    print()
    print(f"rollback latency, real Prometheus ({SCRAPE_S:g} s scrapes), step {args.step:g} s, "
          f"analysis every {args.interval:g} s; {rolled}/{len(runs)} runs rolled back")
    print(f"  first bad sample → canary weight 0 : {_stats([r['from_first_bad_s'] for r in runs])}")
    print(f"  first breach scrape → weight 0     : {_stats([r['from_first_breach_scrape_s'] for r in runs])}")
    print(f"  theoretical (windows + scrape + interval), baseline: {_stats([r['theoretical_s'] for r in runs])}")
    print(f"  goal: ≤ {args.interval + 5:g} s after the first breach scrape (one analysis interval + 5 s)")
    print(f"  documented elsewhere: Flagger defaults {REFERENCES['flagger_default_s']} s, tutorials "
          f"{REFERENCES['flagger_tutorials_s']} s, Argo Rollouts example {REFERENCES['argo_rollouts_example_s']} s")
    print(f"false rollbacks: {healthy['false_rollbacks']} of {healthy['judgements']} judgements "
          f"({healthy['canaries']} healthy canaries x {healthy['rounds']} rounds; verdicts {healthy['verdicts']}); goal 0")


if __name__ == "__main__":
    main()
