"""End-to-end rollouts judged on a REAL Prometheus scraping the local target's real onnxruntime model servers,
with the real MLflow registry and SQLite store: a healthy canary is promoted; a canary whose position table
was cut (long inputs fail at inference) is rolled back with its evidence and an incident linking the runbook;
Prometheus stopped mid-rollout never promotes: the rollout pauses with an incident.

The slow canary has no real model that is reliably slower on two shared cores, so its data plane is a
prometheus_client exporter whose canary share of the traffic follows the router weight (SyntheticDataPlane);
everything after the exporter (Prometheus, provider, judge, engine, store, incidents) is the real thing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.app.context import Context
from controlplane.app.rollouts import start_rollout
from controlplane.ports import NewVersion, RouteTarget
from controlplane.settings import load_settings
from tests.prometheus_fixture import MetricExporter, Profile, PrometheusServer, TrafficDriver, drive_rollout

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

MODEL = "minilm"
SLO = yaml.safe_load(
    """
model: minilm
objectives:
  availability: {target: 99.9}
  latency: {target: 95, threshold: 1s}
canary:
  min_requests: 30
  min_window: 3s
  compare: {interval: 3s, min_points: 4, min_requests: 30}
"""
)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str) -> Iterator[Context]:
    """A fresh home with minilm v1 (fp32, production), v2 (per-channel int8), v3 (position table cut to
    64 rows) and v4 (fp32 again) registered in a real MLflow registry (SQLite)."""
    from tests.validators.fixtures import build_variants

    variants = build_variants()
    home = tmp_path_factory.mktemp("cp-home")
    context = Context(load_settings({"CONTROLPLANE_HOME": str(home)}))
    for name in ("healthy", "int8-per-channel", "short-positions", "healthy"):
        files = {f: variants[name] / f for f in ("model.onnx", "tokenizer.json", "config.json")}
        context.registry.register(NewVersion(name=MODEL, files=files, tags={"variant": name}))
    context.registry.set_alias(MODEL, "production", 1)
    yield context
    context.store.close()  # type: ignore[attr-defined]


# The healthy rollout serves real inference on 2 shared cores, where a loaded machine makes single requests
# take over a second: its SLO's latency threshold is generous (slowness is tested with a synthetic canary).
HEALTHY_SLO = {**SLO, "objectives": {**SLO["objectives"], "latency": {"target": 95, "threshold": "5s"}}}


def _start(
    ctx: Context,
    version: int,
    steps: tuple[int, ...],
    step_s: float,
    max_extensions: int = 2,
    slo: dict[str, Any] | None = None,
) -> int:
    record = start_rollout(
        ctx,
        f"{MODEL}:v{version}",
        steps=steps,
        step_duration_s=step_s,
        analysis_interval_s=1.0,
        slo=slo or SLO,
        skip_validation=True,
        max_extensions=max_extensions,
    )
    return record.id


def test_healthy_canary_is_promoted(ctx: Context, prometheus_bin: str) -> None:
    rollout = _start(ctx, 2, (50, 100), 12.0, slo=HEALTHY_SLO)
    run = drive_rollout(ctx, rollout, prometheus_bin=prometheus_bin, timeout_s=150)
    assert run.record.status["phase"] == "Promoted", run.record.status.get("message")
    production = ctx.registry.get_alias(MODEL, "production")
    assert production is not None and production.version == 2
    passes = [a for a in ctx.store.list_analysis(rollout) if a.verdict == "pass"]
    assert len(passes) == 2  # one per step, each with its evidence
    assert passes[0].evidence["queries"] and passes[0].evidence["thresholds"]["burn_policies"]
    assert not [i for i in ctx.store.list_incidents(MODEL) if i.rollout_id == rollout]


def test_erroring_canary_is_rolled_back_with_evidence_and_incident(ctx: Context, prometheus_bin: str) -> None:
    rollout = _start(ctx, 3, (25, 50, 100), 15.0)
    run = drive_rollout(ctx, rollout, prometheus_bin=prometheus_bin, timeout_s=120)
    status = run.record.status
    assert status["phase"] == "RolledBack", status.get("message")
    assert run.first_bad_at is not None and run.weight_zero_at is not None
    fail = [a for a in ctx.store.list_analysis(rollout) if a.verdict == "fail"]
    assert len(fail) == 1
    evidence = fail[0].evidence
    assert evidence["failure_mode"] == "slo-burn-errors"
    fired = [b for b in evidence["burn"] if b["status"] == "fired"]
    assert fired and fired[0]["long_burn"] > fired[0]["burn_threshold"]
    assert any('outcome="error"' in q for q in evidence["queries"].values())
    incident = next(i for i in ctx.store.list_incidents(MODEL) if i.rollout_id == rollout)
    assert (incident.failure_mode, incident.severity, incident.state) == ("slo-burn-errors", "page", "open")
    assert incident.runbook == "runbooks/slo-burn-errors.md"
    assert Path(__file__).resolve().parents[2].joinpath(incident.runbook).is_file()
    production = ctx.registry.get_alias(MODEL, "production")
    assert production is not None and production.version != 3
    # Causality, in order: a canary request failed; Prometheus scraped the failure; the judge (reading
    # Prometheus as of the decision) failed the step and the rollback was decided and recorded at that
    # instant; then the router's canary weight was 0. How fast: benchmarks/rollback_latency.py.
    assert run.first_breach_scrape_at is not None, "Prometheus never held a failed canary request"
    [rolled] = [e for e in ctx.store.list_events(rollout) if e.kind == "RolledBack"]
    decided = fail[0].at
    scrape_skew = 1.0  # a sample is stamped when its scrape starts, before the exporter is read
    assert run.first_bad_at <= run.first_breach_scrape_at + scrape_skew
    assert run.first_breach_scrape_at <= decided == rolled.at <= run.weight_zero_at
    assert rolled.evidence["failure_mode"] == "slo-burn-errors" and rolled.evidence["weight"] == fail[0].weight
    analyses = ctx.store.list_analysis(rollout)
    assert analyses[-1] == fail[0] and all(a.at <= decided for a in analyses)  # nothing judged after the rollback
    steps = [e for e in ctx.store.list_events(rollout) if e.kind == "StepStarted"]
    assert steps and all(e.at <= decided for e in steps)  # no step started after it either


class SyntheticDataPlane:
    """ports.TrafficRouter and ports.Workloads over a TrafficDriver: ``total_rps`` split by the canary weight.
    ``serving=False``: the canary's share of requests never reaches it (no ready pod, a route not applied)."""

    name = "synthetic"

    def __init__(self, driver: TrafficDriver, stable: Profile, canary: Profile, total_rps: float,
                 serving: bool = True) -> None:
        self.driver, self.stable, self.canary, self.total = driver, stable, canary, total_rps
        self.serving = serving
        self.weight = 0
        self.final_status: dict[str, Any] = {}
        self._apply()

    def _apply(self) -> None:
        self.driver.set_profile(replace(self.stable, rps=self.total * (100 - self.weight) / 100))
        if self.weight > 0 and self.serving:
            self.driver.set_profile(replace(self.canary, rps=self.total * self.weight / 100))
        else:
            self.driver.remove(self.canary.role, self.canary.version)

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None:
        self.weight = canary_weight
        self._apply()

    def get_weight(self, target: RouteTarget) -> int:
        return self.weight

    def reset(self, target: RouteTarget) -> None:
        self.set_weight(target, 0)

    def ensure_canary(self, target: RouteTarget) -> None:
        return None

    def promote_stable(self, target: RouteTarget) -> None:
        self.stable = replace(self.canary, role="stable")
        self.set_weight(target, 0)

    def stable_ready(self, target: RouteTarget) -> bool:
        return self.stable.version == target.canary_version

    def retire_canary(self, target: RouteTarget) -> None:
        self.set_weight(target, 0)


def _drive_synthetic(
    ctx: Context, rollout: int, prometheus_bin: str, canary: Profile, timeout_s: float = 90, serving: bool = True
) -> SyntheticDataPlane:
    """Run a rollout through reconcile_once on a SyntheticDataPlane scraped by a real Prometheus, until it
    ends or pauses; a paused rollout is then aborted (so the model's slot is free for the next test)."""
    from controlplane.adapters.prometheus import PrometheusProvider
    from controlplane.app.gate import local_gate
    from controlplane.app.incident_sink import StoreIncidentSink
    from controlplane.app.local_run import route_target
    from controlplane.app.rollouts import request
    from controlplane.app.slo_analyzer import SloAnalyzer, load_rollout_slo
    from controlplane.app.store_state import StoreState, reconcile_once
    from controlplane.engine import RolloutSpec
    from controlplane.retry import with_retry
    from controlplane.rollout.apply import Ports

    record = ctx.store.get_rollout(rollout)
    spec = RolloutSpec.from_dict(record.spec)
    slo, target = load_rollout_slo(spec), route_target(record)
    exporter = MetricExporter()
    driver = TrafficDriver(exporter, []).start()
    stable = Profile(spec.model, spec.stable_version or 1, "stable", rps=0, latency_median_s=0.03)
    plane = SyntheticDataPlane(driver, stable, canary, total_rps=60, serving=serving)
    server = PrometheusServer([exporter.target], binary=prometheus_bin).start()
    ports = Ports(target, plane, plane, local_gate(ctx, spec, "cpu"), ctx.registry,
                  StoreIncidentSink(ctx.store, rollout), with_retry)
    state = StoreState(ctx.store, rollout)
    try:
        server.wait_for_targets()
        time.sleep(3)  # stable history before the canary starts
        with PrometheusProvider(server.url, slo, step_duration_s=spec.step_duration_s) as provider:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                outcome = reconcile_once(state, ports, SloAnalyzer(provider, slo), ctx.now())
                if outcome.decision.requeue_after is None or outcome.decision.status.phase.value == "Paused":
                    break
                time.sleep(min(outcome.decision.requeue_after, 0.5))
            plane.final_status = dict(ctx.store.get_rollout(rollout).status)
            if plane.final_status["phase"] == "Paused":
                request(ctx, spec.model, "abort")
                reconcile_once(state, ports, SloAnalyzer(provider, slo), ctx.now())
    finally:
        driver.stop()
        server.cleanup()
        exporter.stop()
    return plane


def test_slow_canary_is_rolled_back_with_evidence_and_incident(ctx: Context, prometheus_bin: str) -> None:
    rollout = _start(ctx, 4, (25, 50, 100), 12.0)
    # the SLO wants 95 % of requests under 1 s
    plane = _drive_synthetic(ctx, rollout, prometheus_bin, Profile(MODEL, 4, "canary", rps=0, latency_median_s=1.5))
    status = plane.final_status
    assert status["phase"] == "RolledBack", status.get("message")
    assert plane.weight == 0
    fail = [a for a in ctx.store.list_analysis(rollout) if a.verdict == "fail"]
    assert len(fail) == 1 and fail[0].evidence["failure_mode"] == "slo-burn-latency"
    assert any('le="1.0"' in q for q in fail[0].evidence["queries"].values())
    incident = next(i for i in ctx.store.list_incidents(MODEL) if i.rollout_id == rollout)
    assert (incident.failure_mode, incident.runbook) == ("slo-burn-latency", "runbooks/slo-burn-latency.md")


@pytest.mark.parametrize(
    ("case", "slo_patch", "serving"),
    [
        ("NaN: the latency threshold is not a bucket bound", {"threshold": "123ms"}, True),
        ("empty: the canary serves nothing", {}, False),
    ],
)
def test_nan_or_empty_results_pause_with_an_incident(
    ctx: Context, prometheus_bin: str, case: str, slo_patch: dict[str, str], serving: bool
) -> None:
    slo = {**SLO, "objectives": {**SLO["objectives"], "latency": {**SLO["objectives"]["latency"], **slo_patch}}}
    rollout = start_rollout(
        ctx, f"{MODEL}:v4", steps=(50, 100), step_duration_s=5.0, analysis_interval_s=1.0, slo=slo,
        skip_validation=True, max_extensions=1,
    ).id
    canary = Profile(MODEL, 4, "canary", rps=0, latency_median_s=0.03)
    plane = _drive_synthetic(ctx, rollout, prometheus_bin, canary, serving=serving)
    status = plane.final_status
    assert status["phase"] == "Paused" and status["pause_reason"] == "inconclusive", (case, status.get("message"))
    assert not [a for a in ctx.store.list_analysis(rollout) if a.verdict == "pass"]
    incident = next(i for i in ctx.store.list_incidents(MODEL) if i.rollout_id == rollout)
    assert (incident.failure_mode, incident.severity) == ("canary-inconclusive", "ticket")
    production = ctx.registry.get_alias(MODEL, "production")
    assert production is not None and production.version != 4


def test_prometheus_stopped_mid_rollout_pauses_with_an_incident(ctx: Context, prometheus_bin: str) -> None:
    rollout = _start(ctx, 4, (50, 100), 8.0, max_extensions=1)
    run = drive_rollout(ctx, rollout, prometheus_bin=prometheus_bin, timeout_s=90, stop_prometheus_after_s=2.0)
    status = run.record.status
    assert status["phase"] == "Paused" and status["pause_reason"] == "inconclusive", status.get("message")
    assert not [a for a in ctx.store.list_analysis(rollout) if a.verdict == "pass"]
    production = ctx.registry.get_alias(MODEL, "production")
    assert production is not None and production.version != 4
    incident = next(i for i in ctx.store.list_incidents(MODEL) if i.rollout_id == rollout)
    assert incident.failure_mode == "prometheus-unavailable"
    assert incident.runbook == "runbooks/prometheus-unavailable.md"
