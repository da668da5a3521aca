"""A real Kubernetes control plane for the test suite, built from upstream Go modules.

No mocks: etcd, kube-apiserver (RBAC, ServiceAccount token issuing), kube-controller-manager,
kube-scheduler and kwok (fake nodes whose pods turn Running and Ready) run as processes on
free 127.0.0.1 ports, built by ``binaries.py``; the upstream CRDs of ``crds.json`` are
installed with server-side apply. Standard library plus ``cryptography`` only, so that it
runs before anything else is installed.

Command line (``python tests/cluster/harness.py COMMAND``; see README.md)::

    build    build the binaries and fetch the CRDs (cached in bin/<versions>/)
    up       start a cluster and its data plane in the background, print KUBECONFIG=, GATEWAY_URL=, ...
    down     stop the background cluster, leaving no process behind
    status   say whether the background cluster runs

From Python::

    cluster = Cluster.start()          # or Cluster.attach(kubeconfig)
    cluster.kubeconfig, cluster.server
    cluster.kubectl("get", "nodes")
    cluster.token_kubeconfig("ns", "sa")   # identity with no permissions unless granted
    cluster.stop()
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # imported as tests.cluster.harness
    from . import binaries, dataplane, pki, podnet, podrunner
    from .procs import Proc, die_with_parent, free_ports, http_ok, proc_start_time
except ImportError:  # run as a script
    import binaries  # type: ignore[no-redef]
    import dataplane  # type: ignore[no-redef]
    import pki  # type: ignore[no-redef]
    import podnet  # type: ignore[no-redef]
    import podrunner  # type: ignore[no-redef]
    from procs import Proc, die_with_parent, free_ports, http_ok, proc_start_time  # type: ignore[no-redef]

ClusterError = binaries.ClusterError
#: Work folders of running clusters; CLUSTER_RUN_ROOT moves them (and so the `up` cluster) elsewhere.
RUN_ROOT = Path(os.environ.get("CLUSTER_RUN_ROOT") or binaries.HERE / ".run")
UP_DIR = RUN_ROOT / "up"
SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
#: Fake nodes: two CPU nodes and one tainted GPU node (nvidia.com/gpu allocatable).
NODES: tuple[tuple[str, dict[str, str]], ...] = (
    ("kwok-node-0", {"cpu": "16", "memory": "64Gi", "pods": "110"}),
    ("kwok-node-1", {"cpu": "16", "memory": "64Gi", "pods": "110"}),
    ("kwok-gpu-0", {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"}),
)
START_TIMEOUT = 180.0
ROOT = binaries.HERE.parents[1]
#: The pod runner's image table: the project image runs this checkout's `ctl` with the harness's Python.
IMAGES = {
    "ghcr.io/attn-controlplane/controlplane": {
        "entrypoint": [sys.executable, "-m", "controlplane.cli.main"], "cmd": ["serve", "--port=8000"],
        "env": {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    },
}
_log = binaries._log


@dataclass
class Cluster:
    workdir: Path
    server: str
    kubeconfig: Path
    kubectl_bin: str
    procs: list[Proc] = field(default_factory=list)
    owns_workdir: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    #: why the pod runner's processes cannot bind their pod IPs (podnet.py), None when they can
    pod_network_problem: str | None = None
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    # ------------------------------------------------------------------ start / attach
    @classmethod
    def start(cls, workdir: Path | None = None, *, daemon: bool = False) -> Cluster:
        """Start a cluster from the built binaries; ``daemon`` processes outlive this one."""
        bindir = binaries.bin_dir()
        if not binaries.is_built(bindir):
            raise binaries.BinariesMissing(f"cluster binaries not built in {bindir}: run `make cluster-build`")
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        _remove_stale_workdirs()
        owns = workdir is None
        workdir = workdir or Path(tempfile.mkdtemp(prefix=f"cluster-{os.getpid()}-", dir=RUN_ROOT))
        workdir.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port, api_port, kcm_port, sched_port = free_ports(5)
        server = f"https://127.0.0.1:{api_port}"
        cluster = cls(workdir, server, workdir / "admin.kubeconfig", str(bindir / binaries.KUBECTL), owns_workdir=owns)
        if not daemon:
            atexit.register(cluster.stop)
        t0 = cluster._t0 = time.monotonic()
        try:
            cluster._boot(bindir, daemon, etcd_port, peer_port, api_port, kcm_port, sched_port)
        except BaseException:
            cluster.stop()
            raise
        cluster.timings["total"] = time.monotonic() - t0
        _log(f"cluster ready in {cluster.timings['total']:.1f}s: KUBECONFIG={cluster.kubeconfig}")
        return cluster

    def _boot(self, bindir: Path, daemon: bool, etcd: int, peer: int, api: int, kcm: int, sched: int) -> None:
        certs = pki.Pki(self.workdir / "pki")
        serving = certs.issue("apiserver", "kube-apiserver", hosts=(
            "127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ))
        sa = certs.service_account_keys()
        kube = {
            "admin": certs.issue("admin", "kubernetes-admin", organization="system:masters"),
            "kcm": certs.issue("kcm", "system:kube-controller-manager"),
            "scheduler": certs.issue("scheduler", "system:kube-scheduler"),
            "kwok": certs.issue("kwok", "kwok-controller", organization="system:masters"),
        }
        cfg = {name: pki.write_kubeconfig(self.workdir / f"{name}.kubeconfig", server=self.server, ca=certs.ca.cert,
                                          user=name, client=pair) for name, pair in kube.items()}
        self._ssl = ssl.create_default_context(cafile=str(certs.ca.cert))
        self._ssl.load_cert_chain(str(kube["admin"].cert), str(kube["admin"].key))

        def spawn(name: str, *argv: str) -> None:
            self.spawn(name, str(bindir / argv[0]), *argv[1:], daemon=daemon)

        spawn("etcd", binaries.ETCD, "--name=test", f"--data-dir={self.workdir / 'etcd'}",
              f"--listen-client-urls=http://127.0.0.1:{etcd}", f"--advertise-client-urls=http://127.0.0.1:{etcd}",
              f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
              f"--initial-cluster=test=http://127.0.0.1:{peer}", "--unsafe-no-fsync", "--log-level=warn")
        self._wait("etcd", lambda: http_ok(f"http://127.0.0.1:{etcd}/health", None, b'"health":"true"'))
        ca, pk = str(certs.ca.cert), str(certs.ca.key)
        spawn("kube-apiserver", binaries.APISERVER, f"--etcd-servers=http://127.0.0.1:{etcd}",
              "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api}",
              f"--cert-dir={self.workdir / 'apiserver'}", f"--tls-cert-file={serving.cert}",
              f"--tls-private-key-file={serving.key}", f"--client-ca-file={ca}", "--authorization-mode=Node,RBAC",
              "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
              f"--service-account-key-file={sa.cert}", f"--service-account-signing-key-file={sa.key}",
              f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true", "--profiling=false",
              "--enable-priority-and-fairness=false")
        self._wait("kube-apiserver", lambda: http_ok(f"{self.server}/readyz", self._ssl, b"ok"))
        # `create`, not server-side apply: the etcd is always fresh, and computing managed fields
        # of the multi-megabyte Argo/KServe schemas costs more than half a minute on 2 cores.
        crd_applies = [self._kubectl_popen("create", f"-f={f}") for f in sorted(binaries.crds_dir(bindir).glob("*/*.yaml"))]
        try:
            common = ("--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false")
            spawn("kube-controller-manager", binaries.CONTROLLER_MANAGER, *common, f"--secure-port={kcm}",
                  f"--kubeconfig={cfg['kcm']}", f"--authentication-kubeconfig={cfg['kcm']}",
                  f"--authorization-kubeconfig={cfg['kcm']}", f"--cert-dir={self.workdir / 'kcm'}",
                  "--use-service-account-credentials=true", f"--service-account-private-key-file={sa.key}",
                  f"--root-ca-file={ca}", f"--cluster-signing-cert-file={ca}", f"--cluster-signing-key-file={pk}",
                  f"--service-cluster-ip-range={SERVICE_CIDR}", "--controllers=*")
            spawn("kube-scheduler", binaries.SCHEDULER, *common, f"--secure-port={sched}",
                  f"--kubeconfig={cfg['scheduler']}", f"--authentication-kubeconfig={cfg['scheduler']}",
                  f"--authorization-kubeconfig={cfg['scheduler']}", f"--cert-dir={self.workdir / 'scheduler'}")
            stages = self.workdir / binaries.KWOK_STAGES_FILE
            stages.write_text(kwok_stages((bindir / binaries.KWOK_STAGES_FILE).read_text()))
            self.pod_network_problem = podnet.ensure_local()
            if self.pod_network_problem:
                _log(f"the pod runner's processes cannot bind their pod IPs: {self.pod_network_problem}")
            subnet, lock = podnet.take_subnet()
            try:
                spawn("kwok", binaries.KWOK, f"--kubeconfig={cfg['kwok']}", f"--config={stages}",
                      "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                      f"--cidr={subnet}", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40")
                self.spawn("pod-runner", sys.executable, str(Path(__file__).with_name("podrunner.py")),
                           f"--kubeconfig={cfg['kwok']}", f"--workdir={self.workdir}", f"--images={json.dumps(IMAGES)}",
                           daemon=daemon, pass_fds=(lock,))  # the runner's copy holds the subnet's lock
            finally:
                podnet.release(lock)
            self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(_node_list()))
            for apply in crd_applies:
                _, err = apply.communicate(timeout=START_TIMEOUT)
                _log(f"applied {apply.args[-1].rsplit('/', 1)[-1]} at {time.monotonic() - self._t0:.1f}s")
                if apply.returncode != 0:
                    raise ClusterError(f"installing CRDs failed: {' '.join(apply.args[2:])}: {err.strip()}")
            insecure = ssl._create_unverified_context()
            self._wait("kube-controller-manager", lambda: http_ok(f"https://127.0.0.1:{kcm}/healthz", insecure, b"ok"))
            self._wait("kube-scheduler", lambda: http_ok(f"https://127.0.0.1:{sched}/healthz", insecure, b"ok"))
            self._wait("CRDs established", self._crds_established)
            self._wait("kwok nodes Ready", self._nodes_ready)
            self._wait("default ServiceAccount", lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default"))
        finally:
            for apply in crd_applies:
                if apply.poll() is None:
                    apply.kill()
                    apply.wait()

    # ------------------------------------------------------------------ helpers
    def spawn(self, name: str, *argv: str, daemon: bool = False, env: dict[str, str] | None = None,
              pass_fds: tuple[int, ...] = ()) -> Proc:
        """Start a component in its own process group, logging to ``<workdir>/<name>.log``."""
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv), cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out, env=env, pass_fds=pass_fds,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=None if daemon else die_with_parent,
            )
        proc = Proc(name, popen.pid, proc_start_time(popen.pid), log, None if daemon else popen)
        self.procs.append(proc)
        if daemon:  # recorded at once: `down` finds them even if this process dies mid-start
            self.save_state()
        return proc

    def _wait(self, what: str, ready: Callable[[], Any], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for proc in self.procs:
                if not proc.alive():
                    raise ClusterError(f"{proc.name} exited while waiting for {what}: {proc.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    self.timings[what] = time.monotonic() - self._t0
                    _log(f"{what}: ok at {self.timings[what]:.1f}s")
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what} (logs in {self.workdir})")
            time.sleep(0.2)

    def get(self, path: str) -> Any:
        """GET a path of the API server as the admin; None on 404."""
        ctx = self._ssl or pki.kubeconfig_ssl_context(self.kubeconfig)
        try:
            with urllib.request.urlopen(self.server + path, context=ctx, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def _crds_established(self) -> bool:
        items = self.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        return bool(items) and all(
            any(c["type"] == "Established" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions") or [])
            for i in items
        )

    def _nodes_ready(self) -> bool:
        nodes = self.get("/api/v1/nodes")["items"]
        ready = [n for n in nodes for c in (n.get("status") or {}).get("conditions") or [] if c["type"] == "Ready" and
                 c["status"] == "True"]
        return len(ready) == len(NODES)

    def _kubectl_popen(self, *args: str) -> subprocess.Popen[str]:
        argv = [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, preexec_fn=die_with_parent)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; raise ClusterError with its stderr on failure."""
        argv = [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def token_kubeconfig(self, namespace: str, service_account: str) -> Path:
        """Kubeconfig holding a fresh token of ServiceAccount namespace/name (created if missing)."""
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": service_account, "namespace": namespace}}
        self.kubectl("apply", "-f", "-", input=json.dumps(sa))
        token = self.kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").stdout.strip()
        ca = self.workdir / "pki" / "ca.crt"
        path = self.workdir / f"sa-{namespace}-{service_account}.kubeconfig"
        return pki.write_kubeconfig(path, server=self.server, ca=ca, user=service_account, token=token,
                                    namespace=namespace)

    def save_state(self) -> None:
        procs = [{"name": p.name, "pid": p.pid, "start_time": p.start_time, "log": str(p.log)} for p in self.procs]
        state = {"procs": procs, "kubeconfig": str(self.kubeconfig)}
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    def stop(self) -> None:
        """Stop every component (newest first) and remove the working folder if it was ours."""
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def attach(cls, kubeconfig: Path) -> Cluster:
        """A handle on a running cluster (for example one from ``make cluster-up``); stop() is a no-op."""
        config = json.loads(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        return cls(kubeconfig.parent, server, kubeconfig, str(binaries.bin_dir() / binaries.KUBECTL), owns_workdir=False,
                   pod_network_problem=None if podnet.is_local() else f"{podnet.POD_NETWORK} is not local")


def _remove_stale_workdirs() -> None:
    """Work folders left by a process that was killed (its components died with it)."""
    for path in RUN_ROOT.glob("cluster-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def kwok_stages(upstream: str) -> str:
    """kwok's default stages with the pod runner's pods taken out of the pod stages (it runs them), plus
    one stage that only gives those pods their IP from kwok's --cidr."""
    docs = upstream.split("\n---\n")
    marker = "  selector:\n    matchExpressions:\n"
    excluded = f"    - key: '.metadata.labels[\"{podrunner.OPT_IN_LABEL}\"]'\n      operator: 'DoesNotExist'\n"
    out = []
    for doc in docs:
        if "kind: Pod\n" in doc:
            if marker not in doc:
                raise ClusterError("kwok's pod stage has no selector.matchExpressions to extend")
            doc = doc.replace(marker, marker + excluded, 1)
        out.append(doc)
    ready = next(d for d in docs if "name: pod-ready\n" in d)
    ips = ready[ready.index("      {{ $hostIPs := NodeIPsWith"):ready.index("      phase: Running")]
    out.append(f"""# the pod runner's pods: only their IPs from kwok (harness.py)
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-runner-ip
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["{podrunner.OPT_IN_LABEL}"]'
      operator: 'In'
      values: ['true']
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
{ips}      phase: Pending
""")
    return "\n---\n".join(out)


def _node_list() -> dict[str, Any]:
    items = []
    for name, allocatable in NODES:
        gpu = "nvidia.com/gpu" in allocatable
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "type": "kwok", **({"nvidia.com/gpu.present": "true"} if gpu else {})}
        spec = {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]} if gpu else {}
        items.append({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": name, "labels": labels, "annotations": {KWOK_NODE_ANNOTATION: "fake"}},
                      "spec": spec, "status": {"allocatable": allocatable, "capacity": allocatable}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


# ---------------------------------------------------------------------- background cluster (make cluster-up)
def _state_file() -> Path:
    return UP_DIR / "state.json"


def _background() -> tuple[list[Proc], Path] | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        state = json.loads(_state_file().read_text())
        procs = [Proc(p["name"], p["pid"], p["start_time"], Path(p["log"])) for p in state["procs"]]
        return procs, Path(state["kubeconfig"])
    return None


@contextlib.contextmanager
def _up_lock() -> Any:
    """Serialize up/down of the shared background cluster between processes."""
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    with (RUN_ROOT / "up.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def up() -> list[str]:
    """Start (or find) the background cluster with its data plane; the lines a user needs."""
    with _up_lock():
        kubeconfig = _up()
    lines = [f"KUBECONFIG={kubeconfig}"]
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((UP_DIR / dataplane.STATE_FILE).read_text())
        lines += [f"GATEWAY_URL={state['gateway_url']}", f"PROMETHEUS_URL={state['prometheus_url']}",
                  f"MLFLOW_TRACKING_URI={state['mlflow_tracking_uri']}"]
    return lines


def _up() -> Path:
    found = _background()
    if found and (UP_DIR / "ready").is_file() and all(p.alive() for p in found[0]):
        with contextlib.suppress(Exception):
            if http_ok(Cluster.attach(found[1]).server + "/readyz", pki.kubeconfig_ssl_context(found[1]), b"ok"):
                return found[1]
    _down()
    cluster = Cluster.start(UP_DIR, daemon=True)
    if binaries.traefik_built():
        plane = dataplane.start(cluster, daemon=True)
        mlflow = dataplane.start_mlflow(cluster, daemon=True)
        plane.save(UP_DIR, mlflow_tracking_uri=mlflow)
    else:
        print(f"cluster: Traefik is not built ({binaries.traefik_dir()}): no gateway, Prometheus or MLflow started",
              file=sys.stderr)
    (UP_DIR / "ready").touch()
    return cluster.kubeconfig


def down() -> bool:
    """Stop the background cluster; True if something was running."""
    with _up_lock():
        return _down()


def _down() -> bool:
    found = _background()
    running = bool(found) and any(p.alive() for p in found[0])
    for proc in reversed(found[0] if found else []):
        proc.stop()
    shutil.rmtree(UP_DIR, ignore_errors=True)
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.py", description="Real Kubernetes control plane for the tests.")
    parser.add_argument("command", choices=["build", "up", "down", "status"])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    args = parser.parse_args(argv)
    binaries.VERBOSE[0] = not args.quiet and (args.command == "build" or bool(os.environ.get("CLUSTER_VERBOSE")))
    try:
        if args.command == "build":
            binaries.build()
        elif args.command == "up":
            print("\n".join(up()))
        elif args.command == "down":
            print("cluster stopped" if down() else "no cluster running")
        else:
            found = _background()
            alive = bool(found) and all(p.alive() for p in found[0])
            print(f"running: KUBECONFIG={found[1]}" if found and alive else "not running")
            return 0 if alive else 1
    except ClusterError as exc:
        print(f"cluster: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cluster: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
