"""Canary rollouts with real packets: `ctl serve` pods run by the pod runner (real all-MiniLM-L6-v2 versions
from a real `mlflow server`), Traefik as the Gateway API data plane, Prometheus scraping the pods, and the
controller (`ctl controller run --prometheus-url`) judging every step on the servers' own counters while a
load generator sends embeddings requests of mixed lengths through the gateway at a fixed rate."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri
from controlplane.app import kube_rollout as cr_
from tests.cluster.dataplane import DataPlane, prometheus_query
from tests.cluster.harness import Cluster
from tests.cluster.podrunner import OPT_IN_LABEL
from tests.k8s.conftest import MANIFESTS, ControllerProcess, get_rollout, phase_is, wait_for
from tests.k8s.traffic import Load
from tests.serve.conftest import ctl, ctl_env

pytestmark = [pytest.mark.k8s, pytest.mark.prometheus, pytest.mark.mlflow_server, pytest.mark.slow]

MODEL = "minilm"
RATE = 10.0  # requests per second through the gateway
STEP_S = 20.0
TRAEFIK_APPLY_S = 3.0  # a route change reaches the proxy within providersThrottleDuration (2 s) + a watch
# Real inference on 2 shared cores: the latency objective is generous (slowness is its own test); the evidence
# floors are what a 5 % step at 10 req/s gathers in one step.
SLO = yaml.safe_load(f"""
model: {MODEL}
objectives:
  availability: {{target: 99.9}}
  latency: {{target: 95, threshold: 5s}}
canary:
  min_requests: 8
  min_window: 3s
  compare: {{interval: 4s, min_points: 4, min_requests: 30}}
""")


@dataclass
class Registry:
    tracking_uri: str
    home: Path

    def client(self) -> Any:
        from controlplane.app.context import Context
        from controlplane.settings import load_settings

        return Context(load_settings({"CONTROLPLANE_HOME": str(self.home), "MLFLOW_TRACKING_URI": self.tracking_uri})
                       ).registry


@pytest.fixture(scope="module")
def registry(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """minilm v1 (fp32, alias production), v2 (per-channel int8 of v1), v3 (position table cut to 64 rows)."""
    from controlplane import models

    home = tmp_path_factory.mktemp("registry-home")
    env = ctl_env(home, mlflow_server)
    cut = models.cut_positions(models.minilm_dir(), tmp_path_factory.mktemp("short-positions") / "hf", 64)
    for args in (["--model-dir", str(models.minilm_dir())],
                 ["--model-dir", str(models.minilm_dir()), "--quantize", "int8", "--source", f"{MODEL}:v1"],
                 ["--model-dir", str(cut)]):
        proc = ctl("register", MODEL, *args, env=env)
        assert proc.returncode == 0, proc.stderr
    found = Registry(mlflow_server, home)
    found.client().set_alias(MODEL, "production", 1)
    return found


def workload(ns: str, tracking_uri: str, version: int = 1) -> list[dict[str, Any]]:
    """The example's Deployment and Service, run by the pod runner: one replica, `ctl serve` bound to its pod
    IP, the real MLflow server, a preStop pause so that the gateway stops sending before SIGTERM."""
    deployment, service = yaml.safe_load_all((MANIFESTS / "example" / "workload.yaml").read_text())
    for doc in (deployment, service):
        doc["metadata"]["namespace"] = ns
    uri = f"models:/{MODEL}/{version}"
    spec = deployment["spec"]
    spec["replicas"] = 1
    template = spec["template"]
    template["metadata"]["labels"][OPT_IN_LABEL] = "true"
    template["metadata"]["annotations"]["rollouts.attn-controlplane.dev/model-uri"] = uri
    template["spec"]["terminationGracePeriodSeconds"] = 20
    container = template["spec"]["containers"][0]
    container["args"] = [*container["args"], "--host=$(POD_IP)", "--threads=1"]
    container["args"] = [a.replace("--drain-seconds=30", "--drain-seconds=10") for a in container["args"]]
    env = {e["name"]: e for e in container["env"]}
    env["MLFLOW_TRACKING_URI"] = {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri}
    env["MODEL_URI"] = {"name": "MODEL_URI", "value": uri}
    env["POD_IP"] = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    container["env"] = list(env.values())
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
    return [deployment, service]


def route(ns: str, host: str) -> dict[str, Any]:
    doc = yaml.safe_load((MANIFESTS / "example" / "route.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"]["hostnames"] = [host]
    return doc


def rollout(ns: str, version: int, steps: tuple[int, ...] = (5, 25, 50, 100)) -> dict[str, Any]:
    body = cr_.rollout_manifest(MODEL, ns, MODEL, version, deployment=MODEL, router={"type": "gateway-api",
                                "httpRoute": MODEL}, steps=steps, step_duration_s=STEP_S, analysis_interval_s=2.0,
                                skip_validation=True, service=MODEL)
    body["spec"]["slo"] = SLO
    return body


@dataclass
class Stage:
    ns: str
    host: str
    plane: DataPlane
    load: Load
    controller: ControllerProcess


@pytest.fixture()
def stage(k8s_cluster: Cluster, k8s_dataplane: DataPlane, k8s_namespace: str, registry: Registry, crd: str,
          tmp_path: Path) -> Iterator[Stage]:
    """Stable v1 serving through the gateway under load, and the controller judging on Prometheus."""
    ns, host = k8s_namespace, f"{k8s_namespace}.example.test"
    docs = [*workload(ns, registry.tracking_uri), k8s_dataplane.gateway(ns), route(ns, host)]
    k8s_cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    load = Load(k8s_dataplane.gateway_url, host, RATE)
    probe = Load(k8s_dataplane.gateway_url, host)
    wait_for(lambda: (probe._send("short", {"input": "ready?"}), probe.answers[-1].status == 200)[1], 240,
             "stable v1 answering through the gateway", every=1.0)
    controller = ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, extra_args=(
        f"--prometheus-url={k8s_dataplane.prometheus_url}",), extra_env={
        "MLFLOW_TRACKING_URI": registry.tracking_uri, "CONTROLPLANE_HOME": str(tmp_path / "controller-home")})
    load.start()
    try:
        yield Stage(ns, host, k8s_dataplane, load, controller)
    finally:
        load.stop()
        if controller.proc.poll() is None:
            controller.kill()


def step_windows(cr: dict[str, Any]) -> list[tuple[int, float, float]]:
    """(weight, start, end) of each step, from the history the controller wrote."""
    history = cr["status"]["history"]
    starts = [(e["weight"], e["at"]) for e in history if e["kind"] == "StepStarted"]
    ends = [at for _, at in starts[1:]] + [next(e["at"] for e in history if e["kind"] in ("Promoted", "RolledBack"))]
    return [(w, start, end) for (w, start), end in zip(starts, ends, strict=True)]


def canary_share(plane: DataPlane, ns: str, start: float, end: float) -> tuple[float, float]:
    """(canary share, requests) counted by Prometheus from the servers' model_requests_total over
    [start, end], evaluated at ``end``."""
    window = f"{max(1, round(end - start))}s"
    expr = f'sum by (role) (increase(model_requests_total{{namespace="{ns}"}}[{window}]))'
    counts = {r["metric"].get("role", ""): float(r["value"][1]) for r in prometheus_query(plane.prometheus_url, expr, end)}
    total = sum(counts.values())
    return (counts.get("canary", 0.0) / total if total else math.nan), total


def test_healthy_canary_is_promoted_with_traffic_split_as_weighted(
    stage: Stage, kube: KubeClient, registry: Registry
) -> None:
    """int8 v2 over fp32 v1, steps 5/25/50/100: every step's canary share (Prometheus, the servers' own counters)
    within statistical tolerance of its weight; Promoted; stable serves v2; the alias moved; no request failed
    at the gateway during the whole rollout, the promotion's pod replacement included."""
    ns = stage.ns
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, 2))
    cr = wait_for(phase_is(kube, ns, "Promoted", "RolledBack", "Failed", "Paused"), 600, "the rollout to finish",
                  every=1.0)
    assert cr["status"]["phase"] == "Promoted", (cr["status"], stage.controller.output())
    cr = wait_for(lambda: (c := get_rollout(kube, ns)) and "finalizing" not in c["status"] and c, 300,
                  "promotion finalized", every=1.0)
    time.sleep(TRAEFIK_APPLY_S + 2)  # the gateway on stable again, and the canary drained
    shares = []
    for weight, start, end in step_windows(cr):
        share, total = canary_share(stage.plane, ns, start + TRAEFIK_APPLY_S, end)
        p = weight / 100
        tolerance = 3 * math.sqrt(p * (1 - p) / total) + 2 / total
        shares.append((weight, round(share, 3), int(total)))
        assert abs(share - p) <= tolerance, (weight, share, total, tolerance)
    print(f"\nper-step canary share (weight, share, requests): {shares}")
    assert served_uri(kube.get_deployment(ns, MODEL)) == f"models:/{MODEL}/2"
    assert kube.get_deployment(ns, f"{MODEL}-canary")["spec"]["replicas"] == 0
    backends = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, MODEL)["spec"]["rules"][0][
        "backendRefs"]
    assert {b["name"]: b["weight"] for b in backends} == {MODEL: 100, f"{MODEL}-canary": 0}
    production = registry.client().get_alias(MODEL, "production")
    assert production is not None and production.version == 2
    statuses = stage.load.statuses()
    print(f"gateway answers during the rollout: {dict(statuses)}")
    assert set(statuses) == {200}, stage.load.failed()[:5]


def route_weights(kube: KubeClient, ns: str) -> dict[str, int]:
    backends = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, MODEL)["spec"]["rules"][0][
        "backendRefs"]
    return {b["name"]: b["weight"] for b in backends}


def ci_ctl(kubeconfig: Path, ns: str, *args: str) -> Any:
    import os
    import subprocess
    import sys

    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "CONTROLPLANE_NAMESPACE": ns}
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def ci_kubeconfig(cluster: Cluster, ns: str) -> Path:
    """A token of the CI ServiceAccount of manifests/rbac/ci.yaml, bound in ``ns``."""
    docs = list(yaml.safe_load_all((MANIFESTS / "rbac" / "ci.yaml").read_text()))
    for doc in docs:
        if doc["metadata"].get("namespace"):
            doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects") or []:
            subject["namespace"] = ns
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    return cluster.token_kubeconfig(ns, "attn-controlplane-ci")


def test_broken_canary_never_gets_traffic_and_ci_rolls_it_back(
    stage: Stage, kube: KubeClient, k8s_cluster: Cluster
) -> None:
    """v3 (position table cut to 64 rows) over fp32 v1, promoted and rolled back by `ctl` as the CI
    ServiceAccount: `ctl serve` refuses v3 at its full-length warm-up, so the canary pod restarts (CrashLoopBackOff)
    and never turns Ready, the controller never moves traffic to it (it waits for the canary to be available),
    and `ctl rollback --target kubernetes` returns the rollout to stable: no request failed at the gateway."""
    ns = stage.ns
    ci = ci_kubeconfig(k8s_cluster, ns)
    started = ci_ctl(ci, ns, "promote", f"{MODEL}:v3", "--target", "kubernetes", "--steps", "5,25,50,100",
                     "--step-duration", "20s", "--skip-validation", "--no-wait")
    assert started.returncode == 0, started.stderr

    def crash_looping() -> bool:
        pods = k8s_cluster.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=rollouts.attn-controlplane.dev/role%3Dcanary")
        statuses = [s for p in pods["items"] for s in (p.get("status") or {}).get("containerStatuses") or []]
        return any(s["restartCount"] >= 2 and not s["ready"] for s in statuses)

    wait_for(crash_looping, 300, "the canary pod restarting", every=1.0)
    status = get_rollout(kube, ns).get("status") or {}  # the first step never started: no status written yet
    assert status.get("phase") in (None, "Progressing") and not status.get("weight"), status
    assert route_weights(kube, ns).get(f"{MODEL}-canary", 0) == 0  # nothing ready, no traffic
    log = next((k8s_cluster.workdir / "pods").glob(f"{ns}_{MODEL}-canary-*")) / "server.log"
    assert "cannot serve minilm:v3" in log.read_text()
    back = ci_ctl(ci, ns, "rollback", MODEL, "--target", "kubernetes")
    assert back.returncode == 0, back.stderr
    wait_for(phase_is(kube, ns, "RolledBack"), 120, "RolledBack", every=1.0)
    wait_for(lambda: kube.get_deployment(ns, f"{MODEL}-canary")["spec"]["replicas"] == 0, 60, "canary scaled down")
    assert route_weights(kube, ns).get(f"{MODEL}-canary", 0) == 0
    assert served_uri(kube.get_deployment(ns, MODEL)) == f"models:/{MODEL}/1"
    statuses = stage.load.statuses()
    print(f"\ngateway answers during the broken rollout: {dict(statuses)}")
    assert set(statuses) == {200}, stage.load.failed()[:5]


def test_prometheus_stopped_mid_step_pauses_then_resumes(
    stage: Stage, kube: KubeClient, k8s_cluster: Cluster
) -> None:
    """Healthy v2 over v1, Prometheus stopped once the first step runs: the step is extended, then the rollout
    pauses on prometheus-unavailable, never promoted; Prometheus started again and the rollout resumed, it
    goes on to Promoted."""
    from controlplane.app import kube_commands

    ns = stage.ns
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, 2, steps=(25, 100)))
    wait_for(lambda: (get_rollout(kube, ns).get("status") or {}).get("weight") == 25, 300, "the first step",
             every=1.0)
    stage.plane.stop_prometheus()
    try:
        cr = wait_for(phase_is(kube, ns, "Paused", "Promoted", "RolledBack", "Failed"), 300, "a pause", every=1.0)
    finally:
        stage.plane.start_prometheus(k8s_cluster)
    status = cr["status"]
    assert status["phase"] == "Paused", (status, stage.controller.output())
    kinds = [e["kind"] for e in status["history"]]
    print(f"\nhistory while Prometheus was down: {kinds}")
    assert "Promoted" not in kinds and "StepExtended" in kinds, kinds
    paused = [e for e in status["history"] if e["kind"] == "PausedInconclusive"][-1]
    print(f"pause entry: {json.dumps(paused)}")
    assert "prometheus-unavailable" in json.dumps(paused), paused
    kube_commands.intent(kube, ns, MODEL, "resume")
    cr = wait_for(phase_is(kube, ns, "Promoted", "RolledBack", "Failed"), 300, "the rollout to finish", every=1.0)
    assert cr["status"]["phase"] == "Promoted", cr["status"]
    assert set(stage.load.statuses()) == {200}, stage.load.failed()[:5]
