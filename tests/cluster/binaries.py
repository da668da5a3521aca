"""Build the test cluster's pinned upstream binaries and fetch its upstream CRDs.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl are built from the
``k8s.io/kubernetes`` / ``go.etcd.io/etcd`` modules pinned in ``go.mod`` next to this file,
kwok (fake nodes whose bound pods turn Running and Ready) from ``kwok/go.mod``; kwok's stage
files and the CRDs named in ``crds.json`` are copied out of their upstream Go modules. The
result lands in ``bin/<versions>/``: only the first build pays. Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN_ROOT = HERE / "bin"
RUN_ROOT = HERE / ".run"
KWOK_MODULE_DIR = HERE / "kwok"
CRDS_FILE = HERE / "crds.json"
ARGO_MODULE_DIR = HERE / "argo"
ARGO_CONTROLLER = "workflow-controller"
TRAEFIK_MODULE_DIR = HERE / "traefik"
TRAEFIK = "traefik"
TRAEFIK_MODULE = "github.com/traefik/traefik/v3"
#: Upstream files the Traefik folder holds besides the binary: its Gateway provider's ClusterRole (from the
#: Traefik module) and the Gateway API CRDs its informers watch beyond those crds.json installs for every
#: cluster (from the Gateway API module of crds.json, checked against its pinned sum).
TRAEFIK_RBAC = "docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml"
TRAEFIK_EXTRA_CRDS = (
    "config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml",
    "config/crd/standard/gateway.networking.k8s.io_backendtlspolicies.yaml",
)

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KUBECTL = "kubectl"
KWOK = "kwok"
BINARIES = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KUBECTL, KWOK)

#: Files whose content decides the cache key of bin/<key>/.
PIN_FILES = (HERE / "go.mod", HERE / "go.sum", KWOK_MODULE_DIR / "go.mod", KWOK_MODULE_DIR / "go.sum")

BUILD_JOBS = 2
#: kwok's own default stages (what kwokctl gives a cluster), copied from the kwok module.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
KWOK_STAGES_FILE = "kwok-stages.yaml"

VERBOSE = [True]


class ClusterError(RuntimeError):
    """The test cluster could not be built, started, reached or stopped."""


class BinariesMissing(ClusterError):
    """The binaries are not built yet (``make cluster-build``)."""


def _log(msg: str) -> None:
    if VERBOSE[0]:
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


def extra_crds(group: str) -> list[Path]:
    """CRD files fetched for ``group`` (a crds.json name) but not installed at start."""
    return sorted(crds_dir().glob(f"*-{group}/extra/*.yaml"))


def crds_dir(target: Path | None = None) -> Path:
    """Folder of the CRDs, keyed by crds.json (changing it does not rebuild the binaries)."""
    return (target or bin_dir()) / f"crds-{hashlib.sha256(CRDS_FILE.read_bytes()).hexdigest()[:12]}"


def is_built(target: Path | None = None) -> bool:
    target = target or bin_dir()
    files = [*(target / name for name in BINARIES), target / KWOK_STAGES_FILE, crds_dir(target) / ".complete"]
    return all(f.is_file() for f in files)


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
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"  # go.mod/go.sum are the pins: never rewritten
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


def argo_controller() -> Path:
    """Argo's workflow-controller, built from argo/go.mod into its own cache folder."""
    gomod = ARGO_MODULE_DIR / "go.mod"
    digest = hashlib.sha256(gomod.read_bytes() + (ARGO_MODULE_DIR / "go.sum").read_bytes()).hexdigest()[:12]
    version = _module_version(gomod, "github.com/argoproj/argo-workflows/v3")
    return BIN_ROOT / f"argo-{version}_{digest}" / ARGO_CONTROLLER


def build_argo_controller(*, jobs: int = BUILD_JOBS) -> Path:
    target = argo_controller()
    if target.is_file():
        return target
    go = find_go()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{ARGO_CONTROLLER}.tmp")
    argv = [go, "build", f"-p={jobs}", "-trimpath", "-ldflags=-s -w", f"-o={staging}",
            "github.com/argoproj/argo-workflows/v3/cmd/workflow-controller"]
    _run_checked(argv, cwd=ARGO_MODULE_DIR, env=_go_env(), what="build workflow-controller")
    os.replace(staging, target)
    return target


def traefik_dir() -> Path:
    """Traefik's own cache folder ``bin/traefik-<version>_<digest>/``, keyed by traefik/go.mod, go.sum and
    the upstream files it holds (the k8s binaries' key is untouched by it)."""
    gomod = TRAEFIK_MODULE_DIR / "go.mod"
    digest = hashlib.sha256(gomod.read_bytes() + (TRAEFIK_MODULE_DIR / "go.sum").read_bytes()
                            + "\0".join((TRAEFIK_RBAC, *TRAEFIK_EXTRA_CRDS)).encode()).hexdigest()[:12]
    return BIN_ROOT / f"traefik-{_module_version(gomod, TRAEFIK_MODULE)}_{digest}"


def traefik_built(target: Path | None = None) -> bool:
    target = target or traefik_dir()
    return all((target / name).is_file() for name in (TRAEFIK, "rbac.yaml", ".complete"))


def build_traefik(*, jobs: int = BUILD_JOBS) -> Path:
    """Traefik v3 (the Gateway API controller and data plane) from traefik/go.mod, plus its upstream RBAC
    and the extra Gateway API CRDs, into its own cache folder; only the first build pays (~15 min on 2 cores)."""
    target = traefik_dir()
    if traefik_built(target):
        return target
    go = find_go()
    env = _go_env()
    target.mkdir(parents=True, exist_ok=True)
    if not (target / TRAEFIK).is_file():
        version = _module_version(TRAEFIK_MODULE_DIR / "go.mod", TRAEFIK_MODULE)
        staging = target / f".{TRAEFIK}.tmp"
        ldflags = f"-s -w -X {TRAEFIK_MODULE}/pkg/version.Version={version}"
        argv = [go, "build", f"-p={jobs}", "-trimpath", f"-ldflags={ldflags}", f"-o={staging}",
                f"{TRAEFIK_MODULE}/cmd/traefik"]
        _run_checked(argv, cwd=TRAEFIK_MODULE_DIR, env=env, what="build traefik")
        os.replace(staging, target / TRAEFIK)
    traefik_src = _module_dir(go, TRAEFIK_MODULE, TRAEFIK_MODULE_DIR, env)
    shutil.copyfile(traefik_src / TRAEFIK_RBAC, target / "rbac.yaml")
    gateway = next(spec for spec in _crd_specs() if spec["module"] == "sigs.k8s.io/gateway-api")
    gateway_src = _download(go, f"{gateway['module']}@{gateway['version']}", gateway["sum"], target)
    (target / "crds").mkdir(exist_ok=True)
    for rel in TRAEFIK_EXTRA_CRDS:
        shutil.copyfile(gateway_src / rel, target / "crds" / Path(rel).name)
    (target / ".complete").write_text("\n".join((TRAEFIK_RBAC, *TRAEFIK_EXTRA_CRDS)) + "\n")
    _log(f"built {target}")
    return target


def _module_dir(go: str, module: str, cwd: Path, env: dict[str, str]) -> Path:
    result = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", module], cwd=cwd, env=env, capture_output=True,
                            text=True, check=False)
    found = Path(result.stdout.strip())
    if result.returncode != 0 or not found.is_dir():
        raise ClusterError(f"cannot locate the {module} module: {result.stderr.strip()}")
    return found


def _download(go: str, ref: str, expected_sum: str, scratch: Path) -> Path:
    """``go mod download`` of ``ref`` outside any module, checked against its pinned ``h1:`` sum."""
    env = dict(os.environ)
    env["GOFLAGS"] = ""
    result = subprocess.run([go, "mod", "download", "-json", ref], cwd=scratch, env=env, capture_output=True,
                            text=True, check=False)
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or info.get("Error"):
        raise ClusterError(f"go mod download {ref} failed: {info.get('Error') or result.stderr.strip()}")
    if info.get("Sum") != expected_sum:
        raise ClusterError(f"{ref}: checksum {info.get('Sum')} does not match the pinned {expected_sum}")
    return Path(info["Dir"])


def build(*, jobs: int = BUILD_JOBS) -> Path:
    """Build whatever is missing in bin/<versions>/ (and Argo's controller, Traefik) and return that folder."""
    versions = Versions.read()
    target = BIN_ROOT / versions.key
    if is_built(target):
        build_argo_controller(jobs=jobs)
        build_traefik(jobs=jobs)
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
        if not (target / KWOK_STAGES_FILE).is_file():
            fetch_kwok_stages(target / KWOK_STAGES_FILE, go=go, env=env)
        if not (crds_dir(target) / ".complete").is_file():
            fetch_crds(crds_dir(target), go=go)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    current = BIN_ROOT / "current"
    with contextlib.suppress(OSError):
        if current.is_symlink() or current.exists():
            current.unlink()
        current.symlink_to(target.name)
    if not is_built(target):
        raise ClusterError(f"build finished but {target} is incomplete")
    build_argo_controller(jobs=jobs)
    build_traefik(jobs=jobs)
    _log(f"built {target}")
    return target


def fetch_kwok_stages(dest: Path, *, go: str, env: dict[str, str]) -> Path:
    """Concatenate kwok's upstream default Stage files into one kwok --config file."""
    result = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=KWOK_MODULE_DIR, env=env, capture_output=True, text=True, check=False,
    )
    module_dir = Path(result.stdout.strip())
    if result.returncode != 0 or not module_dir.is_dir():
        raise ClusterError(f"cannot locate the sigs.k8s.io/kwok module: {result.stderr.strip()}")
    docs = [f"# {rel} from sigs.k8s.io/kwok\n" + (module_dir / rel).read_text().strip() + "\n" for rel in KWOK_STAGES]
    tmp = dest.with_suffix(".tmp")
    tmp.write_text("---\n".join(docs))
    os.replace(tmp, dest)
    return dest


def _yaml_documents(text: str) -> list[str]:
    """Split a multi-document YAML stream at its ``---`` lines (documents kept verbatim)."""
    docs = re.split(r"^---[ \t]*$\n?", text, flags=re.MULTILINE)
    return [d if d.endswith("\n") else d + "\n" for d in docs if d.strip() and not _only_comments(d)]


def _only_comments(doc: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in doc.splitlines())


def _metadata_name(doc: str) -> str | None:
    """``metadata.name`` of a CRD document (the only two-space-indented ``name:`` key of one)."""
    match = re.search(r"^metadata:\n(?:[ #].*\n|\n)*?  name: ['\"]?([^'\"\s]+)", doc, re.MULTILINE)
    return match.group(1) if match else None


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
            keep = set(spec.get("keep") or ())
            found: set[str] = set()
            for file in files:
                if not keep:
                    shutil.copyfile(file, group / file.name)
                    continue
                docs = [d for d in _yaml_documents(file.read_text()) if _metadata_name(d) in keep]
                found |= {_metadata_name(d) for d in docs}
                if docs:
                    origin = f"# {len(docs)} document(s) of {ref} {file.relative_to(module_dir)}, verbatim\n"
                    (group / file.name).write_text(origin + "---\n".join(docs))
            if keep - found:
                raise ClusterError(f"{ref}: no CRD named {', '.join(sorted(keep - found))} in {spec['files']}")
            extra = sorted({f for pattern in spec.get("extra") or () for f in module_dir.glob(pattern) if f.is_file()})
            if extra:  # fetched, not installed at start (e.g. what Argo's controller needs besides)
                (group / "extra").mkdir()
                for file in extra:
                    shutil.copyfile(file, group / "extra" / file.name)
        (staging / ".complete").write_text(json.dumps(_crd_specs(), indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest

