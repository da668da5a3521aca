"""Controller benchmark: N concurrent rollouts on one controller against the real API server.

Prints reconcile latency p50/p99 and API requests (and writes) per step transition.
Goal (issue #5): p99 <= 1 s at N = 500, at most 3 writes per step transition.

    python benchmarks/controller.py --rollouts 500            # starts a private test cluster
    TEST_KUBECONFIG=<path> python benchmarks/controller.py    # or uses a running one

The controller runs in this process (the same Controller that `ctl controller run` runs), so
its per-reconcile timings and the client's request counts are read directly. Stable
Deployments have ``--replicas`` replicas (kwok fakes their pods); analysis is TimedSteps
(no metric provider: kwok pods serve no traffic). The test cluster's kwok nodes hold about
110 pods each, so N = 500 runs with ``--replicas 0`` (Deployments, Services and routes are
all real; only the pods are left out, and the controller still waits for availability).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controlplane.adapters.kube import KubeClient  # noqa: E402
from controlplane.app import kube_rollout as cr_  # noqa: E402
from controlplane.app.controller import Controller, ControllerOptions  # noqa: E402
from controlplane.app.kube_edges import TimedSteps  # noqa: E402
from controlplane.app.kube_events import KubeEvents  # noqa: E402
from controlplane.app.kube_reconcile import Reconciler  # noqa: E402


def workload(ns: str, name: str, replicas: int) -> list[dict[str, Any]]:
    labels = {"app": name, "rollouts.attn-controlplane.dev/role": "stable"}
    uri = "models:/minilm/2"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {
               "metadata": {"labels": labels, "annotations": {"rollouts.attn-controlplane.dev/model-uri": uri}},
               "spec": {"containers": [{"name": "server", "image": "model-server:0.1.0",
                                        "env": [{"name": "MODEL_URI", "value": uri}]}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": labels, "ports": [{"port": 80}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": name, "namespace": ns},
             "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": name, "port": 80}]}]}}
    return [dep, svc, route]


def create(client: KubeClient, obj: dict[str, Any]) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = {"Deployment": "deployments", "Service": "services", "HTTPRoute": "httproutes"}[obj["kind"]]
    client.create_custom(group, version, plural, obj["metadata"]["namespace"], obj)


def run(kubeconfig: str, n: int, replicas: int, steps: tuple[int, ...], step_s: float, workers: int) -> dict[str, Any]:
    admin = KubeClient(kubeconfig, pool_size=64)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    admin.create_custom("", "v1", "namespaces", None, {"metadata": {"name": ns}})
    names = [f"m{i:04d}" for i in range(n)]
    for name in names:
        for obj in workload(ns, name, replicas):
            create(admin, obj)
    client = KubeClient(kubeconfig, pool_size=max(32, workers * 2))
    calls: Counter[str] = Counter()
    latencies: list[float] = []

    def count(verb: str, path: str, code: int, seconds: float) -> None:
        parts = path.split("/")
        kind = parts[-1] if parts[-1] in ("status", "events", "leases") else parts[-2] if len(parts) > 2 else path
        if verb == "get" and "/leases" not in path:
            latencies.append(seconds)
        calls[f"{verb}:{'lease' if '/leases' in path else kind}"] += 1

    client.hooks.append(count)
    reconciler = Reconciler(client, TimedSteps(), KubeEvents(client, "bench"))
    options = ControllerOptions(namespace=ns, identity="bench", lease_namespace=ns, workers=workers, port=None)
    controller = Controller(client, reconciler, options)
    runner = threading.Thread(target=controller.run, daemon=True)
    started = time.monotonic()
    runner.start()
    for name in names:
        body = cr_.rollout_manifest(name, ns, "minilm", 3, deployment=name, router={"type": "gateway-api",
                                    "httpRoute": name}, steps=steps, step_duration_s=step_s,
                                    analysis_interval_s=step_s, skip_validation=True)
        admin.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, body)
    done: list[dict[str, Any]] = []
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        items = admin.list_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns)
        done = [i for i in items if (i.get("status") or {}).get("phase") in ("Promoted", "Failed", "RolledBack")
                and "finalizing" not in i["status"]]  # the promotion's last writes are done too
        if len(done) == n:
            break
        time.sleep(2.0)
    elapsed = time.monotonic() - started
    controller.stop.set()
    runner.join(30)
    transitions = sum(
        sum(1 for e in (i["status"].get("history") or []) if e["kind"] in ("StepStarted", "Promoted")) for i in done
    )
    writes = sum(v for k, v in calls.items() if k.split(":")[0] in ("create", "patch", "update") and
                 not k.endswith(":lease"))
    requests = sum(v for k, v in calls.items() if not k.endswith(":lease"))
    durations = sorted(controller.durations)
    q = statistics.quantiles(durations, n=100) if len(durations) > 1 else durations * 99
    admin.delete_custom("", "v1", "namespaces", None, ns)
    return {
        "rollouts": n, "promoted": sum(1 for i in done if i["status"]["phase"] == "Promoted"),
        "steps": list(steps), "replicas": replicas, "workers": workers, "wall_s": round(elapsed, 1),
        "reconciles": len(durations), "reconcile_p50_s": round(q[49], 4), "reconcile_p99_s": round(q[98], 4),
        "reconcile_max_s": round(durations[-1], 4) if durations else None,
        "step_transitions": transitions,
        "api_requests_per_transition": round(requests / max(transitions, 1), 2),
        "writes_per_transition": round(writes / max(transitions, 1), 2),
        "api_get_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "calls": dict(sorted(calls.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--steps", default="25,50,100")
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    steps = tuple(int(s) for s in args.steps.split(","))
    external = os.environ.get("TEST_KUBECONFIG")
    cluster = None
    if external:
        kubeconfig = external
    else:
        from tests.cluster.harness import Cluster

        cluster = Cluster.start()
        kubeconfig = str(cluster.kubeconfig)
    try:
        subprocess_apply(kubeconfig, cluster)
        for n in args.rollouts:
            result = run(kubeconfig, n, args.replicas, steps, args.step_seconds, args.workers)
            print(json.dumps(result, indent=2))
            print(f"N={n}: reconcile p50 {result['reconcile_p50_s'] * 1000:.0f} ms, p99 "
                  f"{result['reconcile_p99_s'] * 1000:.0f} ms (goal <= 1000 ms); "
                  f"{result['api_requests_per_transition']} API requests and {result['writes_per_transition']} "
                  f"writes per step transition (goal <= 3 writes)", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()


def subprocess_apply(kubeconfig: str, cluster: Any) -> None:
    """Install the ModelRollout CRD (server-side apply through the API, no kubectl needed)."""
    import yaml

    crd = yaml.safe_load((ROOT / "manifests" / "crd" / "modelrollouts.yaml").read_text())
    client = KubeClient(kubeconfig)
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    client.request("PATCH", path, body=json.dumps(crd), content_type="application/apply-patch+yaml",
                   query={"fieldManager": "benchmark", "force": True})
    for _ in range(100):
        got = client.request("GET", path)
        conditions = (got.get("status") or {}).get("conditions") or []  # null until the API server sets them
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.1)


if __name__ == "__main__":
    main()
