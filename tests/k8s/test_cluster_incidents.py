"""An automatic rollback in the cluster opens an incident exactly like the local target's: the
controller (``ctl controller run --prometheus-url ... --audit-db ...``, a real process) judges
the canary on a real Prometheus, rolls it back, records the incident in the store (``ctl
incident list`` and ``ctl incident show`` as subprocesses see it, linked to the rollout's audit
row) and POSTs it to a real HTTP webhook receiver.

The metrics come from a TrafficDriver recording into a real exporter (tests/prometheus_fixture.py):
kwok's fake pods serve no traffic, so the model servers' series are recorded by the test instead,
with the labels ``ctl serve`` gives them (model, version, role, outcome)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.app import kube_rollout as cr_
from controlplane.store import open_store
from tests.k8s.conftest import ControllerProcess, apply, http_route, phase_is, rollout, stable_objects, wait_for
from tests.prometheus_fixture import MetricExporter, Profile, PrometheusServer, TrafficDriver

pytestmark = [pytest.mark.k8s, pytest.mark.prometheus]


class Receiver:
    """A real HTTP server on loopback collecting the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def ctl(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONTROLPLANE_INCIDENT_WEBHOOK", "KUBECONFIG")}
    env["CONTROLPLANE_DB_URL"] = db_url
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_automatic_rollback_in_the_cluster_opens_and_notifies_an_incident(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, prometheus_bin: str, receiver: Receiver,
    tmp_path: Path,
) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    exporter = MetricExporter()
    driver = TrafficDriver(exporter, [Profile("minilm", 2, "stable", rps=60),
                                      Profile("minilm", 3, "canary", rps=60, error_ratio=0.5)]).start()
    prometheus = PrometheusServer([exporter.target], binary=prometheus_bin).start()
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    controller = None
    try:
        prometheus.wait_for_targets()
        controller = ControllerProcess(
            k8s_cluster.kubeconfig, ns, tmp_path, audit_db=db_url, extra_args=(f"--prometheus-url={prometheus.url}",),
            extra_env={"CONTROLPLANE_INCIDENT_WEBHOOK": receiver.url},
        )
        kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, "gateway-api", step_s=30.0))
        cr = wait_for(phase_is(kube, ns, "RolledBack"), 120, "RolledBack")
        assert cr["status"]["weight"] == 0
        assert [e["kind"] for e in cr["status"]["history"] if e["kind"] == "Incident"] == ["Incident"]
        wait_for(lambda: receiver.bodies, 30, "the incident webhook")
    finally:
        if controller is not None:
            controller.terminate()
        prometheus.stop()
        driver.stop()
        exporter.stop()

    listed = ctl("incident", "list", "-o", "json", db_url=db_url)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["ref"], row["failure_mode"], row["severity"], row["state"]) == (
        "minilm:v3", "slo-burn-errors", "page", "open")
    assert row["runbook"] == "runbooks/slo-burn-errors.md"
    store = open_store(db_url)
    [audit_row] = store.list_rollouts("minilm")
    assert row["rollout_id"] == audit_row.id and audit_row.spec["kubernetes"]["name"] == "minilm"
    shown = json.loads(ctl("incident", "show", str(row["id"]), "-o", "json", db_url=db_url).stdout)
    assert shown["evidence"]["queries"] and "rolled back at 25%" in shown["summary"]
    [body] = receiver.bodies  # one notification: a re-decided rollback does not page twice
    assert body["incident"]["id"] == row["id"] and body["incident"]["failure_mode"] == "slo-burn-errors"
    assert "slo-burn-errors" in body["text"] and "minilm:v3" in body["text"]
