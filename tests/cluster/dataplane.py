"""The data plane of the test cluster, started on demand next to a running ``Cluster``:

- Traefik v3 (built by ``binaries.build_traefik``) as the Gateway API controller and proxy: its
  ``kubernetesgateway`` provider reads the API server with the token of a ServiceAccount bound to the
  ClusterRole from Traefik's own docs, and sends requests to the ready endpoints' pod IPs (the pod
  runner's processes). GatewayClass ``traefik`` (controllerName ``traefik.io/gateway-controller``);
  a Gateway's listener port must be ``DataPlane.gateway_port``, the port of Traefik's ``web`` entrypoint.
- Prometheus (Debian's ``prometheus``) scraping the pods annotated ``prometheus.io/scrape`` on their pod
  IPs every second. Debian builds it without ``kubernetes_sd_configs``, so its targets come from
  ``pod_sd.py``, a substitute for that discovery (the pods as a ServiceAccount allowed only to list and
  watch pods, with role pod's ``__meta_kubernetes_pod_*`` labels, over ``http_sd_configs``).
- optionally a real ``mlflow server`` (SQLite, local artifacts) for ``make cluster-up``.

Standard library only, like the harness.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from . import binaries
    from .procs import Proc, free_ports, http_ok
except ImportError:  # run as a script
    import binaries  # type: ignore[no-redef]
    from procs import Proc, free_ports, http_ok  # type: ignore[no-redef]

GATEWAY_CLASS = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
SYSTEM_NAMESPACE = "default"
TRAEFIK_SA = "traefik-controller"  # the subject of the ClusterRoleBinding in Traefik's rbac file
PROMETHEUS_SA = "prometheus"
SCRAPE_INTERVAL = "1s"
TOKEN_DURATION = "24h"
STATE_FILE = "dataplane.json"
PROMETHEUS_RBAC: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": PROMETHEUS_SA, "namespace": SYSTEM_NAMESPACE}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "test-prometheus"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "test-prometheus"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "test-prometheus"},
     "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS_SA, "namespace": SYSTEM_NAMESPACE}]},
]


@dataclass
class DataPlane:
    gateway_url: str
    gateway_port: int
    prometheus_url: str
    prometheus: Proc
    prometheus_argv: list[str]
    traefik: Proc

    def gateway(self, namespace: str, name: str = "inference-gateway") -> dict[str, Any]:
        """A Gateway of the ``traefik`` class whose HTTP listener is Traefik's web entrypoint."""
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [
                    {"name": "web", "port": self.gateway_port, "protocol": "HTTP",
                     "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}

    def stop_prometheus(self) -> None:
        self.prometheus.stop()

    def start_prometheus(self, cluster: Any) -> None:
        """Start Prometheus again with the same configuration and storage (after ``stop_prometheus``)."""
        if self.prometheus in cluster.procs:  # stopped on purpose: not a component that died
            cluster.procs.remove(self.prometheus)
        self.prometheus = cluster.spawn("prometheus", *self.prometheus_argv)
        _wait(cluster, "prometheus", lambda: http_ok(f"{self.prometheus_url}/-/ready", None, b"Ready"))

    def stop(self) -> None:
        for proc in (self.traefik, self.prometheus):
            proc.stop()

    def save(self, workdir: Path, **extra: str) -> None:
        state = {"gateway_url": self.gateway_url, "gateway_port": self.gateway_port,
                 "prometheus_url": self.prometheus_url, "prometheus_argv": self.prometheus_argv, **extra}
        (workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def attach(cluster: Any) -> DataPlane | None:
    """The data plane ``make cluster-up`` started next to the cluster ``cluster`` attached to."""
    try:
        state = json.loads((cluster.workdir / STATE_FILE).read_text())
        procs = {p["name"]: Proc(p["name"], p["pid"], p["start_time"], Path(p["log"]))
                 for p in json.loads((cluster.workdir / "state.json").read_text())["procs"]}
    except (OSError, ValueError, KeyError):
        return None
    if "traefik" not in procs or "prometheus" not in procs:
        return None
    return DataPlane(state["gateway_url"], state["gateway_port"], state["prometheus_url"], procs["prometheus"],
                     state["prometheus_argv"], procs["traefik"])


def _wait(cluster: Any, what: str, ready: Any, timeout: float = 120.0) -> None:
    cluster._wait(what, ready, timeout)


def _apply(cluster: Any, docs: list[dict[str, Any]] | str) -> None:
    text = docs if isinstance(docs, str) else json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    cluster.kubectl("apply", "-f", "-", input=text)


def start(cluster: Any, *, daemon: bool = False) -> DataPlane:
    """Start Traefik and Prometheus against ``cluster`` (a running ``harness.Cluster``)."""
    folder = binaries.traefik_dir()
    if not binaries.traefik_built(folder):
        raise binaries.BinariesMissing(f"Traefik is not built in {folder}: run `make cluster-build`")
    prometheus = os.environ.get("PROMETHEUS_BIN") or "/usr/bin/prometheus"
    if not os.access(prometheus, os.X_OK):
        raise binaries.ClusterError("prometheus not found (apt-get install prometheus, or set PROMETHEUS_BIN)")
    work = cluster.workdir
    ca = work / "pki" / "ca.crt"
    for crd in sorted((folder / "crds").glob("*.yaml")):
        cluster.kubectl("create", "-f", str(crd), check=False)  # present already when attaching twice
    _apply(cluster, [{"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": TRAEFIK_SA, "namespace": SYSTEM_NAMESPACE}}, *PROMETHEUS_RBAC])
    _apply(cluster, (folder / "rbac.yaml").read_text())
    _wait(cluster, "Traefik's extra CRDs established", cluster._crds_established)
    _apply(cluster, [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                      "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER_NAME}}])

    web, ping, prom, sd_port = free_ports(4)
    token = cluster.kubectl("create", "token", TRAEFIK_SA, "-n", SYSTEM_NAMESPACE,
                            f"--duration={TOKEN_DURATION}").stdout.strip()
    traefik = cluster.spawn(
        "traefik", str(folder / binaries.TRAEFIK), f"--entryPoints.web.address=127.0.0.1:{web}",
        f"--entryPoints.traefik.address=127.0.0.1:{ping}", "--ping=true", "--ping.entryPoint=traefik",
        "--providers.kubernetesgateway=true", f"--providers.kubernetesgateway.endpoint={cluster.server}",
        f"--providers.kubernetesgateway.token={token}", f"--providers.kubernetesgateway.certauthfilepath={ca}",
        "--log.level=INFO", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
        daemon=daemon)
    _wait(cluster, "traefik", lambda: http_ok(f"http://127.0.0.1:{ping}/ping", None, b"OK"))

    token_file = work / "prometheus.token"
    token_file.write_text(cluster.kubectl("create", "token", PROMETHEUS_SA, "-n", SYSTEM_NAMESPACE,
                                          f"--duration={TOKEN_DURATION}").stdout.strip())
    token_file.chmod(0o600)
    cluster.spawn("pod-sd", sys.executable, str(Path(__file__).with_name("pod_sd.py")), f"--server={cluster.server}",
                  f"--ca={ca}", f"--token-file={token_file}", f"--port={sd_port}", daemon=daemon)
    sd_url = f"http://127.0.0.1:{sd_port}/targets"
    _wait(cluster, "pod discovery", lambda: http_ok(sd_url, None, b"["))
    config = work / "prometheus.yml"
    config.write_text(prometheus_config(sd_url))
    argv = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prom}", "--log.level=warn"]
    proc = cluster.spawn("prometheus", *argv, daemon=daemon)
    plane = DataPlane(f"http://127.0.0.1:{web}", web, f"http://127.0.0.1:{prom}", proc, argv, traefik)
    _wait(cluster, "prometheus", lambda: http_ok(f"{plane.prometheus_url}/-/ready", None, b"Ready"))
    return plane


def prometheus_config(sd_url: str) -> str:
    """Pods annotated ``prometheus.io/scrape: "true"``, on ``<pod IP>:<prometheus.io/port><prometheus.io/path>``.

    Debian's Prometheus has no ``kubernetes_sd_configs``: the targets come from ``pod_sd.py`` (a substitute
    serving the same ``__meta_kubernetes_pod_*`` labels over ``http_sd_configs``); with a full Prometheus the
    job is ``kubernetes_sd_configs: [{role: pod, api_server, authorization, tls_config}]`` with these
    relabel_configs unchanged."""
    sd = {"url": sd_url, "refresh_interval": SCRAPE_INTERVAL}
    relabel = [
        {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true",
         "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
         "regex": "(.+);(.+)", "replacement": "$1:$2", "target_label": "__address__"},
        {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "regex": "(.+)",
         "target_label": "__metrics_path__"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    config = {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
              "scrape_configs": [{"job_name": "pods", "scrape_interval": SCRAPE_INTERVAL,
                                  "scrape_timeout": SCRAPE_INTERVAL, "http_sd_configs": [sd],
                                  "relabel_configs": relabel}]}
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML


def start_mlflow(cluster: Any, *, daemon: bool = False) -> str:
    """A real ``mlflow server`` (SQLite, local artifacts) in the cluster's work folder; its URL."""
    (port,) = free_ports(1)
    root = cluster.workdir / "mlflow"
    root.mkdir(exist_ok=True)
    env = {**os.environ, "MLFLOW_CONFIGURE_LOGGING": "false", "PYTHONUNBUFFERED": "1"}
    cluster.spawn("mlflow", sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                  f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
                  "--host", "127.0.0.1", "--port", str(port), "--workers", "1", daemon=daemon, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait(cluster, "mlflow server", lambda: http_ok(f"{url}/health", None, b"OK"), timeout=180)
    return url


def prometheus_query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query (at ``at``, epoch seconds, when given)."""
    data = urllib.parse.urlencode({"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=10) as resp:
        return list(json.loads(resp.read())["data"]["result"])

