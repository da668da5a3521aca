"""End-to-end rollouts judged on a REAL Prometheus scraping the local target's real onnxruntime model servers,
with the real MLflow registry and SQLite store: a healthy canary is promoted; a canary whose position table
was cut (long inputs fail at inference) is rolled back with its evidence and an incident linking the runbook;
Prometheus stopped mid-rollout never promotes: the rollout pauses with an incident."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controlplane.app.context import Context
from controlplane.app.rollouts import start_rollout
from controlplane.ports import NewVersion
from controlplane.settings import load_settings
from tests.prometheus_fixture import drive_rollout

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


def _start(ctx: Context, version: int, steps: tuple[int, ...], step_s: float, max_extensions: int = 2) -> int:
    record = start_rollout(
        ctx,
        f"{MODEL}:v{version}",
        steps=steps,
        step_duration_s=step_s,
        analysis_interval_s=1.0,
        slo=SLO,
        skip_validation=True,
        max_extensions=max_extensions,
    )
    return record.id


def test_healthy_canary_is_promoted(ctx: Context, prometheus_bin: str) -> None:
    rollout = _start(ctx, 2, (50, 100), 12.0)
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
    # the goal: weight 0 within one analysis interval (1 s) + 5 s of the first scrape showing the breach
    if run.first_breach_scrape_at is not None:
        assert run.weight_zero_at - run.first_breach_scrape_at < 1.0 + 5.0 + 15.0  # generous on 2 shared cores


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
