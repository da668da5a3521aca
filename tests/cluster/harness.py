"""A real Kubernetes control plane for the test suite, built from upstream Go modules.

No mocks: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl are
built from the pinned ``k8s.io/kubernetes`` / ``go.etcd.io/etcd`` modules in ``go.mod``
next to this file, kwok (fake nodes that turn bound pods Running and Ready) from
``kwok/go.mod``, and the CRDs listed in ``crds.json`` are taken from their upstream Go
modules. Everything listens on 127.0.0.1 only.

Command line (from anywhere; ``python tests/cluster/harness.py COMMAND``)::

    build    build the binaries and fetch the CRDs (cached in bin/<versions>/)
    up       start a cluster in the background, print ``KUBECONFIG=<path>``
    down     stop the background cluster, leaving no process behind
    status   say whether the background cluster runs

From Python::

    cluster = Cluster.start()          # or Cluster.attach(kubeconfig)
    cluster.kubeconfig, cluster.server
    cluster.kubectl("get", "nodes")
    cluster.token_kubeconfig("ns", "sa")   # least-privilege identity
    cluster.stop()

This module uses only the standard library (plus ``cryptography`` when installed, else
the ``openssl`` command) so that it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN_ROOT = HERE / "bin"
RUN_ROOT = HERE / ".run"
KWOK_MODULE_DIR = HERE / "kwok"
CRDS_FILE = HERE / "crds.json"

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KUBECTL = "kubectl"
KWOK = "kwok"
BINARIES = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KUBECTL, KWOK)

#: Files whose content decides the cache key of bin/<key>/.
PIN_FILES = (HERE / "go.mod", HERE / "go.sum", KWOK_MODULE_DIR / "go.mod", KWOK_MODULE_DIR / "go.sum", CRDS_FILE)

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
DEFAULT_NODES = 2
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
BUILD_JOBS = 2

_VERBOSE = True


class ClusterError(RuntimeError):
    """The test cluster could not be built, started, reached or stopped."""


class BinariesMissing(ClusterError):
    """The binaries are not built yet (``make cluster-build``)."""


def _log(msg: str) -> None:
    if _VERBOSE:
        print(f"[cluster] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- versions


def _module_version(gomod: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod.read_text(), re.MULTILINE)
    if not match:
        raise ClusterError(f"{module} is not required in {gomod}")
    return match.group(1)


@dataclass(frozen=True)
class Versions:
    """Pinned versions, read from the Go modules next to this file."""

    kubernetes: str
    etcd: str
    kwok: str
    digest: str

    @classmethod
    def read(cls) -> Versions:
        digest = hashlib.sha256()
        for path in PIN_FILES:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return cls(
            kubernetes=_module_version(HERE / "go.mod", "k8s.io/kubernetes"),
            etcd=_module_version(HERE / "go.mod", "go.etcd.io/etcd/server/v3"),
            kwok=_module_version(KWOK_MODULE_DIR / "go.mod", "sigs.k8s.io/kwok"),
            digest=digest.hexdigest()[:12],
        )

    @property
    def key(self) -> str:
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}_{self.digest}"


def bin_dir() -> Path:
    """Folder holding the binaries and CRDs of the pinned versions."""
    return BIN_ROOT / Versions.read().key


def _crd_specs() -> list[dict[str, Any]]:
    return list(json.loads(CRDS_FILE.read_text())["crds"])


def is_built(target: Path | None = None) -> bool:
    target = target or bin_dir()
    return all((target / name).is_file() for name in BINARIES) and (target / "crds" / ".complete").is_file()


# --------------------------------------------------------------------------- build


def find_go() -> str:
    """The Go toolchain: $GO, then PATH, then Go's default install location."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ClusterError("no Go toolchain found: set GO=/path/to/go or put go on PATH")


def _run_checked(argv: Sequence[str], *, cwd: Path, env: dict[str, str], what: str) -> None:
    _log(f"{what}: {' '.join(argv)}")
    result = subprocess.run(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise ClusterError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"  # static binaries, no C toolchain needed (as upstream releases)
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def _kube_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build(*, jobs: int = BUILD_JOBS) -> Path:
    """Build whatever is missing in bin/<versions>/ and return that folder."""
    versions = Versions.read()
    target = BIN_ROOT / versions.key
    if is_built(target):
        return target
    go = find_go()
    env = _go_env()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=BIN_ROOT))
    try:
        common = [go, "build", f"-p={jobs}", "-trimpath"]
        kube = {
            APISERVER: "k8s.io/kubernetes/cmd/kube-apiserver",
            CONTROLLER_MANAGER: "k8s.io/kubernetes/cmd/kube-controller-manager",
            SCHEDULER: "k8s.io/kubernetes/cmd/kube-scheduler",
            KUBECTL: "k8s.io/kubernetes/cmd/kubectl",
        }
        missing = [name for name in kube if not (target / name).is_file()]
        if missing:
            argv = [*common, "-tags=notest", f"-ldflags={_kube_ldflags(versions.kubernetes)}", f"-o={staging}/"]
            _run_checked([*argv, *(kube[n] for n in missing)], cwd=HERE, env=env, what=f"build {', '.join(missing)}")
        if not (target / ETCD).is_file():
            argv = [*common, "-ldflags=-s -w", f"-o={staging / ETCD}", "go.etcd.io/etcd/server/v3"]
            _run_checked(argv, cwd=HERE, env=env, what="build etcd")
        if not (target / KWOK).is_file():
            ldflags = f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={versions.kwok.lstrip('v')}"
            argv = [*common, f"-ldflags={ldflags}", f"-o={staging / KWOK}", "sigs.k8s.io/kwok/cmd/kwok"]
            _run_checked(argv, cwd=KWOK_MODULE_DIR, env=env, what="build kwok")
        for built in staging.iterdir():
            if built.is_file():
                os.replace(built, target / built.name)
        if not (target / "crds" / ".complete").is_file():
            fetch_crds(target / "crds", go=go)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    current = BIN_ROOT / "current"
    with contextlib.suppress(OSError):
        if current.is_symlink() or current.exists():
            current.unlink()
        current.symlink_to(target.name)
    if not is_built(target):
        raise ClusterError(f"build finished but {target} is incomplete")
    _log(f"built {target}")
    return target


def fetch_crds(dest: Path, *, go: str | None = None) -> Path:
    """Copy the CRD files named in crds.json out of their upstream Go modules."""
    go = go or find_go()
    env = dict(os.environ)
    env["GOFLAGS"] = ""
    staging = Path(tempfile.mkdtemp(prefix=".crds-", dir=dest.parent))
    try:
        for index, spec in enumerate(_crd_specs()):
            ref = f"{spec['module']}@{spec['version']}"
            _log(f"go mod download {ref}")
            # Run outside any module so that nothing here touches go.mod/go.sum.
            result = subprocess.run(
                [go, "mod", "download", "-json", ref],
                cwd=staging,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            info = json.loads(result.stdout or "{}")
            if result.returncode != 0 or info.get("Error"):
                raise ClusterError(f"go mod download {ref} failed: {info.get('Error') or result.stderr.strip()}")
            if info.get("Sum") != spec["sum"]:
                raise ClusterError(f"{ref}: checksum {info.get('Sum')} does not match the pinned {spec['sum']}")
            module_dir = Path(info["Dir"])
            files = sorted({f for pattern in spec["files"] for f in module_dir.glob(pattern) if f.is_file()})
            if not files:
                raise ClusterError(f"{ref}: no file matches {spec['files']}")
            group = staging / f"{index:02d}-{spec['name']}"
            group.mkdir()
            for file in files:
                shutil.copyfile(file, group / file.name)
        (staging / ".complete").write_text(json.dumps(_crd_specs(), indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest

