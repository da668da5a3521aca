"""The pod runner (tests/cluster/podrunner.py) runs opted-in pods as real local processes: on a loopback pod
IP from kwok, with the downward API resolved, Ready only once the readiness probe passes, restarted per
restartPolicy, SIGTERM with the grace period on deletion, logs kept; and an EndpointSlice lists them."""

from __future__ import annotations

import ipaddress
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import podnet
from tests.cluster.harness import Cluster
from tests.cluster.podrunner import OPT_IN_LABEL
from tests.k8s.conftest import wait_for

pytestmark = pytest.mark.k8s

# A server that is not ready for its first second, answers its environment on /env, exits 3 on its first
# start (so that restartPolicy Always restarts it) and, on SIGTERM, says so and exits 0 after 1 s.
SERVER = r"""
import http.server, json, os, signal, sys, time
marker = os.path.join(os.environ["HOME"], "started-once")
if not os.path.exists(marker):
    open(marker, "w").close()
    print("first start: exiting 3", flush=True)
    sys.exit(3)
born = time.monotonic()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ready" and time.monotonic() - born < 1.0:
            self.send_response(503); self.end_headers(); return
        body = json.dumps(dict(os.environ)).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H)
def term(*_):
    print("got SIGTERM", flush=True); time.sleep(1); print("bye", flush=True); os._exit(0)
signal.signal(signal.SIGTERM, term)
print("serving on", os.environ["POD_IP"], flush=True)
server.serve_forever()
"""


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {OPT_IN_LABEL: "true", "role": "canary"}},
        "spec": {
            "terminationGracePeriodSeconds": 20,
            "containers": [{
                "name": "server", "image": "registry.invalid/none:1", "command": [sys.executable, "-c", SERVER],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "ROLE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['role']"}}},
                    {"name": "MODEL_URI", "value": "models:/minilm/2"},
                    {"name": "WHERE", "value": "$(POD_IP):8080 of $(ROLE)"},
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
            }],
        },
    }


def _get(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    return cluster.get(f"/api/v1/namespaces/{ns}/pods/{name}")


def _ready(pod: dict[str, Any] | None) -> bool:
    conditions = (pod or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_opted_in_pod_runs_as_a_process_on_its_pod_ip(k8s_process_pods: Cluster, k8s_namespace: str) -> None:
    ns, k8s_cluster = k8s_namespace, k8s_process_pods
    k8s_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_pod("server")))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server"},
               "spec": {"selector": {"role": "canary"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    k8s_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(service))
    pod = wait_for(lambda: (p := _get(k8s_cluster, ns, "server")) and p["status"].get("podIP") and p, 60, "a pod IP")
    ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(ip) in podnet.POD_NETWORK, ip
    seen_unready_while_running = False
    deadline = time.monotonic() + 90
    while not _ready(pod := _get(k8s_cluster, ns, "server")):
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        seen_unready_while_running |= bool(statuses and "running" in statuses[0]["state"] and statuses[0]["restartCount"])
        assert time.monotonic() < deadline, pod
        time.sleep(0.2)
    assert pod is not None
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1 and status["lastState"]["terminated"]["exitCode"] == 3  # restartPolicy Always
    assert seen_unready_while_running  # kwok did not mark it Ready: the readiness probe did
    with urllib.request.urlopen(f"http://{ip}:8080/env", timeout=5) as resp:
        env = json.loads(resp.read())
    assert env["ROLE"] == "canary" and env["MODEL_URI"] == "models:/minilm/2" and env["POD_IP"] == ip
    assert env["WHERE"] == f"{ip}:8080 of canary" and env["HOSTNAME"] == "server"
    assert "KUBECONFIG" not in env  # the pod's environment, not the runner's
    slices = wait_for(lambda: [e for s in k8s_cluster.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=kubernetes.io/service-name=server"
    )["items"] for e in s.get("endpoints") or [] if e["conditions"].get("ready")], 60, "a ready endpoint")
    assert slices[0]["addresses"] == [ip]

    k8s_cluster.kubectl("delete", "pod", "server", "-n", ns, "--wait=false")
    wait_for(lambda: _get(k8s_cluster, ns, "server") is None, 60, "the pod gone")
    log = next((k8s_cluster.workdir / "pods").glob(f"{ns}_server_*")) / "server.log"
    text = log.read_text()
    assert "first start: exiting 3" in text and "got SIGTERM" in text and text.rstrip().endswith("bye")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{ip}:8080/env", timeout=2)


def test_pods_without_the_label_stay_kwok_pods(k8s_cluster: Cluster, k8s_namespace: str) -> None:
    pod = _pod("plain")
    del pod["metadata"]["labels"][OPT_IN_LABEL]
    k8s_cluster.kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(pod))
    ready = wait_for(lambda: (p := _get(k8s_cluster, k8s_namespace, "plain")) and _ready(p) and p, 60, "kwok Ready")
    assert ready["status"]["containerStatuses"][0]["restartCount"] == 0
    assert not list(Path(k8s_cluster.workdir / "pods").glob(f"{k8s_namespace}_plain_*"))
