"""The pod runner: the kubelet's process part for the pods that opt in, as plain local processes.

kwok plays the kubelet for every pod of the fake nodes (status only, nothing runs). A pod labelled
``test-cluster.attn-controlplane.dev/process: "true"`` is left to this runner instead (the harness takes
it out of kwok's ready/complete/delete stages; kwok still gives it its pod IP from ``--cidr``, a loopback
range). For each such pod bound to a node the runner

- starts every container's command and args (the image's entrypoint and default arguments come from
  the harness's image table) as a local process in its own process group, with the pod's environment:
  ``value`` (with ``$(VAR)`` expansion), the downward API's ``fieldRef`` fields, ConfigMap and Secret
  keys, ``envFrom``; ``emptyDir`` mount paths in env values and args are mapped to a folder of the pod;
- reports the containers' state and, from their ``startupProbe``/``readinessProbe`` (``httpGet`` and
  ``tcpSocket`` against the pod IP), the pod's Ready condition; a failing ``livenessProbe`` restarts it;
- restarts exited containers per ``restartPolicy`` (backoff 1 s doubling to 10 s);
- on deletion runs the ``preStop`` hook (``sleep`` or ``exec``), sends SIGTERM, waits the pod's grace
  period, SIGKILLs, then deletes the pod object (as the kubelet does once its containers are gone);
- appends each container's output to ``<workdir>/pods/<namespace>_<pod>/<container>.log``.

These are real processes with NO container isolation: they share the host's file system, users and
network (a server must bind its pod IP, e.g. ``--host=$(POD_IP)`` with ``POD_IP`` from
``status.podIP``), and no image is pulled. Standard library (plus pki's ``cryptography``) only.

    python podrunner.py --kubeconfig K --workdir D --images JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from . import pki
    from .procs import die_with_parent
except ImportError:  # run as a script
    import pki  # type: ignore[no-redef]
    from procs import die_with_parent  # type: ignore[no-redef]

OPT_IN_LABEL = "test-cluster.attn-controlplane.dev/process"
TICK_S = 0.25
MAX_BACKOFF_S = 10.0


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Api:
    """The few API server calls the runner makes, as the identity of a client-certificate kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.server = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        self.ssl = pki.kubeconfig_ssl_context(kubeconfig)

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             timeout: float = 15) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, context=self.ssl, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    def stream(self, path: str, timeout: float) -> Any:
        return urllib.request.urlopen(self.server + path, context=self.ssl, timeout=timeout)


# ---------------------------------------------------------------------------- pod spec → process


def _field(pod: dict[str, Any], path: str) -> str:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"), "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"), "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path}")
    return str(simple[path] or "")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` escapes, unknown ones kept."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


@dataclass
class Mounts:
    """emptyDir volumes of a container as folders of the pod: mount path → local folder."""

    paths: dict[str, str] = field(default_factory=dict)

    def map(self, text: str) -> str:
        for mount, local in sorted(self.paths.items(), key=lambda kv: -len(kv[0])):
            if text == mount or text.startswith(mount.rstrip("/") + "/"):
                return local + text[len(mount.rstrip("/")):]
        return text


class PodEnv:
    def __init__(self, api: Api, pod: dict[str, Any]) -> None:
        self.api, self.pod = api, pod
        self.namespace = pod["metadata"]["namespace"]

    def _key(self, kind: str, ref: dict[str, Any]) -> str | None:
        obj = self._object(kind, ref["name"], bool(ref.get("optional")))
        if obj is None:
            return None
        value = (obj.get("data") or {}).get(ref["key"])
        if value is None and not ref.get("optional"):
            raise ValueError(f"{kind} {ref['name']} has no key {ref['key']}")
        if value is not None and kind == "secrets":
            import base64

            value = base64.b64decode(value).decode()
        return value

    def _object(self, kind: str, name: str, optional: bool) -> dict[str, Any] | None:
        try:
            return self.api.call("GET", f"/api/v1/namespaces/{self.namespace}/{kind}/{name}")  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and optional:
                return None
            raise ValueError(f"{kind} {self.namespace}/{name}: HTTP {exc.code}") from None

    def resolve(self, container: dict[str, Any], mounts: Mounts, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        for source in container.get("envFrom") or []:
            kind, ref = ("configmaps", source["configMapRef"]) if "configMapRef" in source else ("secrets", source["secretRef"])
            obj = self._object(kind, ref["name"], bool(ref.get("optional"))) or {}
            for key, value in (obj.get("data") or {}).items():
                if kind == "secrets":
                    import base64

                    value = base64.b64decode(value).decode()
                env[source.get("prefix", "") + key] = value
        for var in container.get("env") or []:
            if "valueFrom" not in var:
                env[var["name"]] = mounts.map(expand(var.get("value", ""), env))
                continue
            source = var["valueFrom"]
            if "fieldRef" in source:
                env[var["name"]] = _field(self.pod, source["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in source or "secretKeyRef" in source:
                kind = "configmaps" if "configMapKeyRef" in source else "secrets"
                value = self._key(kind, source.get("configMapKeyRef") or source["secretKeyRef"])
                if value is not None:
                    env[var["name"]] = value
            else:
                raise ValueError(f"env {var['name']}: unsupported valueFrom {sorted(source)}")
        return env


# ---------------------------------------------------------------------------- probes


def probe(spec: dict[str, Any], host: str, ports: dict[str, int]) -> bool:
    timeout = float(spec.get("timeoutSeconds", 1))

    def port_of(value: Any) -> int:
        return ports[value] if isinstance(value, str) and not value.isdigit() else int(value)

    try:
        if "httpGet" in spec:
            get = spec["httpGet"]
            url = f"http://{get.get('host') or host}:{port_of(get['port'])}{get.get('path', '/')}"
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return 200 <= resp.status < 400
        if "tcpSocket" in spec:
            with socket.create_connection((host, port_of(spec["tcpSocket"]["port"])), timeout=timeout):
                return True
        if "exec" in spec:
            return subprocess.run(spec["exec"]["command"], timeout=timeout, capture_output=True).returncode == 0
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False
    return False


@dataclass
class ProbeState:
    spec: dict[str, Any] | None
    started_at: float = 0.0
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    passing: bool = False

    def due(self, now: float) -> bool:
        if self.spec is None:
            return False
        return now >= max(self.next_at, self.started_at + float(self.spec.get("initialDelaySeconds", 0)))

    def exhausted(self) -> bool:
        """A startup or liveness probe that failed ``failureThreshold`` times in a row: restart."""
        return self.spec is not None and self.failures >= int(self.spec.get("failureThreshold", 3))

    def record(self, ok: bool, now: float) -> None:
        assert self.spec is not None
        self.next_at = now + float(self.spec.get("periodSeconds", 10))
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            self.passing = self.passing or self.successes >= int(self.spec.get("successThreshold", 1))
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= int(self.spec.get("failureThreshold", 3)):
                self.passing = False


# ---------------------------------------------------------------------------- containers


@dataclass
class Container:
    spec: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None  # final state: not restarted any more
    restart_at: float = 0.0
    backoff: float = 1.0
    startup: ProbeState = field(default_factory=lambda: ProbeState(None))
    readiness: ProbeState = field(default_factory=lambda: ProbeState(None))
    liveness: ProbeState = field(default_factory=lambda: ProbeState(None))

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start {shlex.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        self.started_at = _now()
        now = time.monotonic()
        self.startup = ProbeState(self.spec.get("startupProbe"), started_at=now)
        self.startup.passing = self.startup.spec is None
        self.readiness = ProbeState(self.spec.get("readinessProbe"), started_at=now)
        self.liveness = ProbeState(self.spec.get("livenessProbe"), started_at=now)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def ready(self) -> bool:
        if not self.running() or not self.startup.passing:
            return False
        return self.readiness.passing if self.readiness.spec is not None else True

    def status(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.running():
            state = {"running": {"startedAt": self.started_at}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            state = {"waiting": {"reason": "CrashLoopBackOff" if self.restarts else "ContainerCreating"}}
        out = {"name": self.name, "image": self.spec.get("image", ""), "ready": self.ready(),
               "started": self.running() and self.startup.passing, "restartCount": self.restarts, "state": state}
        if self.last_exit is not None:
            out["lastState"] = {"terminated": self.last_exit}
        return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class PodWorker(threading.Thread):
    """Runs one pod: its containers, probes, restarts, status and termination."""

    def __init__(self, runner: Runner, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.runner, self.pod = runner, pod
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.uid = meta["uid"]
        self.dir = runner.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"
        self.containers: list[Container] = []
        self.lock = threading.Lock()
        self.gone = threading.Event()
        self._last_status: str | None = None

    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.pod = pod

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # one pod's failure never stops the runner
            log(f"{self.key}: runner error: {exc!r}")
            self._patch_status({"phase": "Failed", "message": f"pod runner: {exc}", "reason": "PodRunnerError"})
        finally:
            self.runner.forget(self.uid)

    def _run(self) -> None:
        while not self._snapshot()["status"].get("podIP"):  # kwok's stage gives it the IP
            if self._deleting() or self.gone.wait(TICK_S):
                self._finish()
                return
        self._prepare()
        while not self.gone.is_set():
            if self._deleting():
                self._terminate()
                return
            self._tick(time.monotonic())
            self._report()
            if self._phase() in ("Succeeded", "Failed"):
                return
            self.gone.wait(TICK_S)
        self._stop_all(0.0)  # the object went away without a graceful deletion (e.g. forced)

    def _snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.pod

    def _deleting(self) -> bool:
        return bool(self._snapshot()["metadata"].get("deletionTimestamp"))

    def _prepare(self) -> None:
        pod = self._snapshot()
        self.dir.mkdir(parents=True, exist_ok=True)
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        resolver = PodEnv(self.runner.api, pod)
        for spec in pod["spec"]["containers"]:
            mounts = Mounts()
            for mount in spec.get("volumeMounts") or []:
                if "emptyDir" in volumes.get(mount["name"], {}):
                    local = self.dir / "volumes" / mount["name"]
                    local.mkdir(parents=True, exist_ok=True)
                    mounts.paths[mount["mountPath"]] = str(local)
            image = self.runner.images.get(spec.get("image", "").rsplit(":", 1)[0], {})
            base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir),
                    "HOSTNAME": pod["metadata"]["name"], "TMPDIR": mounts.map("/tmp") if "/tmp" in mounts.paths
                    else str(self.dir), **image.get("env", {})}
            env = resolver.resolve(spec, mounts, base)
            command = spec.get("command") or []
            # The image table's entrypoint is a host path (the harness's python): never remapped into an
            # emptyDir, even one mounted at /tmp while the checkout itself lives under /tmp.
            entrypoint = [] if command else list(image.get("entrypoint") or [])
            args = spec.get("args") if "args" in spec or spec.get("command") else image.get("cmd", [])
            argv = entrypoint + [mounts.map(expand(a, env)) for a in [*command, *(args or [])]]
            if not argv:
                raise ValueError(f"container {spec['name']}: no command, and image {spec.get('image')} is not in the "
                                 "runner's image table")
            self.containers.append(Container(spec, argv, env, self.dir, self.dir / f"{spec['name']}.log"))

    def _ports(self, c: Container) -> dict[str, int]:
        return {p["name"]: int(p["containerPort"]) for p in c.spec.get("ports") or [] if p.get("name")}

    def _tick(self, now: float) -> None:
        pod = self._snapshot()
        policy = pod["spec"].get("restartPolicy", "Always")
        ip = pod["status"]["podIP"]
        for c in self.containers:
            if c.terminated is not None:
                continue
            if c.popen is None:
                c.start()
                log(f"{self.key}/{c.name}: started pid {c.popen.pid if c.popen else '?'}")
                continue
            code = c.popen.poll()
            if code is not None:
                if c.restart_at == 0.0:  # just exited
                    c.last_exit = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                   "startedAt": c.started_at, "finishedAt": _now()}
                    again = policy == "Always" or (policy == "OnFailure" and code != 0)
                    log(f"{self.key}/{c.name}: exited {code}" + (f", restart in {c.backoff:.0f}s" if again else ""))
                    if not again:
                        c.terminated = c.last_exit
                        continue
                    c.restart_at = now + c.backoff
                    c.backoff = min(c.backoff * 2, MAX_BACKOFF_S)
                if now >= c.restart_at:
                    c.restarts += 1
                    c.restart_at = 0.0
                    c.start()
                continue
            for state in (c.startup, c.readiness, c.liveness):
                gated = not c.startup.passing if state is not c.startup else c.startup.passing
                if not gated and state.due(now):
                    state.record(probe(state.spec or {}, ip, self._ports(c)), now)
            if c.startup.exhausted() or c.liveness.exhausted():
                log(f"{self.key}/{c.name}: probe failed, restarting")
                self._stop(c, float(pod["spec"].get("terminationGracePeriodSeconds", 30)))

    def _stop(self, c: Container, grace: float) -> None:
        if not c.running():
            return
        c.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while c.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if c.running():
            c.signal_group(signal.SIGKILL)
        if c.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.popen.wait(5)

    def _stop_all(self, grace: float) -> None:
        threads = [threading.Thread(target=self._stop, args=(c, grace)) for c in self.containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _phase(self) -> str:
        if self.containers and all(c.terminated is not None for c in self.containers):
            return "Succeeded" if all(c.terminated and c.terminated["exitCode"] == 0 for c in self.containers) else "Failed"
        return "Running"

    def _report(self) -> None:
        ready = bool(self.containers) and all(c.ready() for c in self.containers)
        flag = "True" if ready else "False"
        status = {
            "phase": self._phase(),
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": flag},
                {"type": "Ready", "status": flag},
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        text = json.dumps(status, sort_keys=True)
        if text == self._last_status:
            return
        for cond in status["conditions"]:
            cond["lastTransitionTime"] = _now()
        if self._patch_status(status):
            self._last_status = text

    def _patch_status(self, status: dict[str, Any]) -> bool:
        meta = self._snapshot()["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        try:
            self.runner.api.call("PATCH", path, {"status": status}, "application/merge-patch+json")
            return True
        except (OSError, urllib.error.HTTPError) as exc:
            log(f"{self.key}: status patch failed: {exc}")
            return False

    def _terminate(self) -> None:
        pod = self._snapshot()
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds",
                                          pod["spec"].get("terminationGracePeriodSeconds", 30)))
        deadline = time.monotonic() + grace
        log(f"{self.key}: deleting (grace {grace:.0f}s)")

        def stop(c: Container) -> None:
            hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
            if c.running() and "sleep" in hook:
                time.sleep(min(float(hook["sleep"]["seconds"]), max(0.0, deadline - time.monotonic())))
            elif c.running() and "exec" in hook:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    subprocess.run(hook["exec"]["command"], env=c.env, cwd=c.cwd, capture_output=True,
                                   timeout=max(0.1, deadline - time.monotonic()))
            self._stop(c, max(0.0, deadline - time.monotonic()))

        threads = [threading.Thread(target=stop, args=(c,)) for c in self.containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for c in self.containers:
            if c.popen is not None and c.terminated is None:
                c.terminated = {"exitCode": c.popen.returncode, "reason": "Completed" if c.popen.returncode == 0
                                else "Error", "startedAt": c.started_at, "finishedAt": _now()}
        self._report()
        self._finish()

    def _finish(self) -> None:
        meta = self._snapshot()["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        if not meta.get("deletionTimestamp"):
            return
        with contextlib.suppress(urllib.error.HTTPError, OSError):
            self.runner.api.call("DELETE", path, body)
        log(f"{self.key}: containers stopped, pod deleted")


class Runner:
    """Watches the opted-in pods and keeps one PodWorker per pod that is bound to a node."""

    def __init__(self, api: Api, workdir: Path, images: dict[str, dict[str, Any]]) -> None:
        self.api, self.workdir, self.images = api, workdir, images
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.gone.set()
                return
            if worker is not None:
                worker.update(pod)
                return
            if not pod["spec"].get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            pod.setdefault("status", {})
            worker = self.workers[uid] = PodWorker(self, pod)
        worker.start()

    def run(self) -> None:
        selector = urllib.parse.quote(f"{OPT_IN_LABEL}=true")
        while not self.stopping.is_set():
            try:
                listing = self.api.call("GET", f"/api/v1/pods?labelSelector={selector}")
                for pod in listing["items"]:
                    self.handle("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                path = f"/api/v1/pods?labelSelector={selector}&watch=1&resourceVersion={rv}&timeoutSeconds=240"
                with self.api.stream(path, timeout=300) as resp:
                    for line in resp:
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break
                        self.handle(event["type"], event["object"])
            except (OSError, ValueError, ssl.SSLError, urllib.error.URLError) as exc:
                if not self.stopping.is_set():
                    log(f"watch failed: {exc}; listing again")
                    time.sleep(1)

    def shutdown(self) -> None:
        """SIGTERM to the runner: stop every container (its processes must not outlive the runner)."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.gone.set()
        for worker in workers:
            worker._stop_all(5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--images", default="{}", help="JSON: image (no tag) → {entrypoint, cmd, env}")
    args = parser.parse_args(argv)
    runner = Runner(Api(args.kubeconfig), args.workdir, json.loads(args.images))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    threading.Thread(target=runner.run, name="watch", daemon=True).start()
    log(f"pod runner watching pods labelled {OPT_IN_LABEL}=true")
    done.wait()
    runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
