"""The one rollout loop and action interpreter (controlplane/rollout/) over both RolloutState
implementations, from one table: StoreState (a real SQLite store, the local target) and
ResourceState (a ModelRollout on the real test API server, the controller).

The router is the local target's real weighted router; the workloads are a recording
stand-in (``RecordingWorkloads``): these tests are about where the state lives, and the real
workloads of both targets have their own tests (tests/e2e, tests/k8s/test_routers_k8s.py).
Incidents go through the real store sink on both targets.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controlplane.app import kube_rollout as cr_
from controlplane.app.incident_sink import StoreIncidentSink
from controlplane.app.kube_edges import NoGate, TimedSteps
from controlplane.app.store_state import StoreState
from controlplane.engine import AnalysisVerdict, RolloutSpec, RolloutStatus, Verdict
from controlplane.errors import ConflictError
from controlplane.local.router import LocalRouter
from controlplane.ports import RouteTarget, Store
from controlplane.rollout.apply import Ports
from controlplane.rollout.loop import Outcome, reconcile
from controlplane.rollout.observe import Analyzer
from controlplane.rollout.state import RolloutState
from controlplane.store import open_store
from tests.k8s.conftest import crd  # noqa: F401  (the fixture, for the resource rows)

MODEL = "minilm"
JOURNAL_KINDS = {"Analysis", "Incident"}  # kept in the resource's history; the store has tables for them


@dataclass
class RecordingWorkloads:
    """Stand-in for a target's workloads (named as such): records the calls; stable is
    ``unavailable`` for that many looks after its promotion."""

    unavailable: int = 0
    calls: list[str] = field(default_factory=list)

    def ensure_canary(self, target: RouteTarget) -> None:
        self.calls.append("ensure_canary")

    def promote_stable(self, target: RouteTarget) -> None:
        self.calls.append("promote_stable")

    def stable_ready(self, target: RouteTarget) -> bool:
        self.calls.append("stable_ready")
        self.unavailable -= 1
        return self.unavailable < 0

    def retire_canary(self, target: RouteTarget) -> None:
        self.calls.append(f"retire_canary(stable=v{target.stable_version})")


class Failing:
    """An analyzer whose every step fails (the verdict an SLO burn gives)."""

    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None:
        return AnalysisVerdict(Verdict.FAIL, "error budget burning", "slo-burn-errors", {"burn": 20.0})


@dataclass
class Where:
    """One rollout held by one RolloutState kind: a fresh state per reconcile, and what it recorded."""

    kind: str
    state: Callable[[float], RolloutState]
    kinds: Callable[[], list[str]]  # the event kinds recorded, oldest first
    analyses: Callable[[], int]  # how many verdicts were recorded
    rollout_id: int | None
    interfere: Callable[[], None]  # a concurrent writer (a user's intent) changes the rollout


SPEC = RolloutSpec(model=MODEL, version=3, stable_version=2, steps=(50, 100), step_duration_s=0.1,
                   analysis_interval_s=0.1, skip_validation=True, target="kubernetes", router="gateway-api")


def _store_where(store: Store) -> Where:
    record = store.create_rollout(SPEC.to_dict(), RolloutStatus().to_dict(), 0.0)

    def interfere() -> None:
        current = store.get_rollout(record.id)
        store.save_rollout(record.id, current.revision, {**current.spec, "paused": True}, current.status, [], 1.0)

    return Where(
        "store", lambda now: StoreState(store, record.id),
        lambda: [e.kind for e in store.list_events(record.id)], lambda: len(store.list_analysis(record.id)),
        record.id, interfere,
    )


def _resource_where(request: pytest.FixtureRequest) -> Where:
    from controlplane.adapters.kube import KubeClient
    from controlplane.app.kube_events import KubeEvents
    from controlplane.app.kube_state import ResourceState

    request.getfixturevalue("crd")
    ns = request.getfixturevalue("k8s_namespace")
    kube = KubeClient(str(request.getfixturevalue("k8s_cluster").kubeconfig))
    request.addfinalizer(kube.close)
    body = cr_.rollout_manifest(MODEL, ns, MODEL, SPEC.version, deployment=MODEL,
                                router={"type": "gateway-api", "httpRoute": MODEL}, steps=SPEC.steps,
                                step_duration_s=0.1, analysis_interval_s=0.1, skip_validation=True)
    body["spec"]["stableVersion"] = SPEC.stable_version
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, body)
    events = KubeEvents(kube, "test")

    def get() -> dict[str, Any]:
        return kube.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, MODEL)

    def state(now: float) -> RolloutState:
        cr = get()
        stable = (cr.get("status") or {}).get("stableVersion") or SPEC.stable_version
        return ResourceState(kube, cr, cr_.engine_spec(cr, stable), stable, events, None, lambda: True)

    def history() -> list[dict[str, Any]]:
        return list((get().get("status") or {}).get("history") or [])

    def interfere() -> None:
        kube.patch_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, MODEL, {"spec": {"paused": True}})

    return Where(
        "resource", state, lambda: [e["kind"] for e in history() if e["kind"] not in JOURNAL_KINDS],
        lambda: sum(1 for e in history() if e["kind"] == "Analysis"), None, interfere,
    )


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    yield open_store(f"sqlite:///{tmp_path / 'state.db'}")


@pytest.fixture(params=["store", pytest.param("resource", marks=pytest.mark.k8s)])
def where(request: pytest.FixtureRequest, store: Store) -> Where:
    return _store_where(store) if request.param == "store" else _resource_where(request)


def _drive(where: Where, ports: Ports, analyzer: Analyzer, turns: int = 12) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for now in itertools.count(10.0, 1.0):
        outcome = reconcile(where.state(now), ports, analyzer, now)
        outcomes.append(outcome)
        if outcome.requeue_after is None or len(outcomes) >= turns:
            return outcomes
    raise AssertionError("unreachable")


def _ports(store: Store, where: Where, workloads: RecordingWorkloads) -> tuple[Ports, LocalRouter]:
    router = LocalRouter()
    target = RouteTarget("test", f"{MODEL}-{uuid.uuid4().hex[:6]}", MODEL, SPEC.stable_version, SPEC.version)
    return Ports(target, router, workloads, NoGate(), registry=None,
                 incidents=StoreIncidentSink(store, where.rollout_id)), router


PROMOTED = ["ValidationSkipped", "StepStarted", "StepStarted", "AliasNotMoved", "Promoted", "PromotionFinalized"]
ROWS = [
    # (analyzer, unavailable, phase, event kinds, verdicts, workloads calls, incidents)
    pytest.param(TimedSteps(), 0, "Promoted", PROMOTED, 2,
                 ["ensure_canary", "ensure_canary", "promote_stable", "stable_ready", "retire_canary(stable=v3)"], [],
                 id="promoted"),
    pytest.param(TimedSteps(), 2, "Promoted", PROMOTED, 2,
                 ["ensure_canary", "ensure_canary", "promote_stable", "stable_ready", "stable_ready", "stable_ready",
                  "retire_canary(stable=v3)"], [], id="promotion-waits-for-stable"),
    pytest.param(Failing(), 0, "RolledBack", ["ValidationSkipped", "StepStarted", "RolledBack"], 1,
                 ["ensure_canary", "retire_canary(stable=v2)"], [("slo-burn-errors", "page")], id="rolled-back"),
]


@pytest.mark.parametrize(("analyzer", "unavailable", "phase", "kinds", "verdicts", "calls", "incidents"), ROWS)
def test_one_loop_on_every_state(
    where: Where, store: Store, analyzer: Analyzer, unavailable: int, phase: str, kinds: list[str], verdicts: int,
    calls: list[str], incidents: list[tuple[str, str]],
) -> None:
    workloads = RecordingWorkloads(unavailable=unavailable)
    ports, router = _ports(store, where, workloads)
    outcomes = _drive(where, ports, analyzer)
    assert outcomes[-1].requeue_after is None and outcomes[-1].decision.status.phase.value == phase
    assert where.state(99.0).load().status.finalizing is False
    assert where.kinds() == kinds
    assert where.analyses() == verdicts
    assert workloads.calls == calls
    assert router.get_weight(ports.target) == 0  # traffic back on stable either way
    opened = store.list_incidents(model=MODEL)
    assert [(i.failure_mode, i.severity) for i in opened] == incidents
    assert all(i.rollout_id == where.rollout_id for i in opened)
    # once ended, another turn writes nothing
    assert reconcile(where.state(100.0), ports, analyzer, 100.0).wrote is False


def test_a_stale_token_conflicts_and_nothing_is_saved(where: Where, store: Store) -> None:
    state = where.state(10.0)
    snap = state.load()
    where.interfere()
    with pytest.raises(ConflictError):
        state.save(snap.status.evolve(message="stale"), [("StepStarted", "stale", {})], snap.token, 10.0)
    assert where.kinds() == []
    fresh = where.state(11.0).load()
    assert fresh.spec.paused is True and fresh.status.message == ""
