"""Traefik v3 (built from its Go module) as the Gateway API controller and data plane of the test cluster:
a Gateway of the ``traefik`` class and an HTTPRoute's weighted backendRefs split real requests between
the pod runner's processes, and a weight patch moves them."""

from __future__ import annotations

import collections
import json
import sys
import time
from typing import Any

import httpx
import pytest

from tests.cluster.dataplane import DataPlane
from tests.cluster.harness import Cluster
from tests.cluster.podrunner import OPT_IN_LABEL
from tests.k8s.conftest import wait_for

pytestmark = pytest.mark.k8s

SERVER = r"""
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["WHO"].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"""


def _backend(name: str) -> list[dict[str, Any]]:
    labels = {"app": name}
    pod = {"metadata": {"labels": {**labels, OPT_IN_LABEL: "true"}}, "spec": {"containers": [{
        "name": "web", "image": "registry.invalid/none:1", "command": [sys.executable, "-c", SERVER],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "WHO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}]}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]}},
    ]


def _route(host: str, weights: tuple[int, int]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
            "spec": {"parentRefs": [{"name": "inference-gateway"}], "hostnames": [host], "rules": [{"backendRefs": [
                {"name": "blue", "port": 80, "weight": weights[0]}, {"name": "green", "port": 80, "weight": weights[1]}]}]}}


def _count(plane: DataPlane, host: str, n: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=plane.gateway_url, headers={"Host": host}, timeout=10) as client:
        for _ in range(n):
            answer = client.get("/")
            seen[answer.text if answer.status_code == 200 else str(answer.status_code)] += 1
    return seen


def test_httproute_weights_split_real_requests(
    k8s_cluster: Cluster, k8s_dataplane: DataPlane, k8s_namespace: str
) -> None:
    ns, plane = k8s_namespace, k8s_dataplane
    host = f"{ns}.example.test"
    docs = [*_backend("blue"), *_backend("green"), plane.gateway(ns), _route(host, (80, 20))]
    k8s_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                         "items": docs}))
    wait_for(lambda: _programmed(k8s_cluster, ns), 90, "the Gateway programmed by Traefik, the route attached")
    wait_for(lambda: set(_count(plane, host, 10)) == {"blue", "green"}, 120, "both backends answering")
    split = _count(plane, host, 100)
    assert split == {"blue": 80, "green": 20}, split  # weighted round robin: exact over whole rounds
    k8s_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_route(host, (0, 100))))
    started = time.monotonic()
    wait_for(lambda: _count(plane, host, 10) == {"green": 10}, 60, "all traffic on green")
    print(f"weight patch applied by the gateway within {time.monotonic() - started:.1f}s")


def _programmed(cluster: Cluster, ns: str) -> dict[str, Any] | None:
    gateway = cluster.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/gateways/inference-gateway")
    conditions = ((gateway or {}).get("status") or {}).get("conditions") or []
    ok = any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)
    attached = [listener.get("attachedRoutes") for listener in (gateway or {}).get("status", {}).get("listeners") or []]
    return gateway if ok and attached == [1] else None
