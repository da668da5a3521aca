"""`ctl promote NAME:vN --target kubernetes` and `ctl rollback --target kubernetes` as CI runs
them: a subprocess with only a kubeconfig, against the real API server and controller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri
from tests.k8s.conftest import ROOT, ControllerProcess, apply, get_rollout, http_route, stable_objects, wait_for

pytestmark = pytest.mark.k8s


def ctl(kubeconfig: Path, namespace: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "CONTROLPLANE_NAMESPACE": namespace}
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_ctl_promote_and_rollback_on_kubernetes(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any], tmp_path: Path,
) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path))
    cfg = k8s_cluster.kubeconfig
    done = ctl(cfg, ns, "promote", "minilm:v3", "--target", "kubernetes", "--steps", "50,100",
               "--step-duration", "1s", "--skip-validation", "-o", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    assert '"phase": "Promoted"' in done.stdout
    assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"

    started = ctl(cfg, ns, "promote", "minilm:v4", "--target", "kubernetes", "--steps", "50,100",
                  "--step-duration", "10m", "--skip-validation", "--no-wait")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: (get_rollout(kube, ns).get("status") or {}).get("weight") == 50, 60, "v4 at 50%")
    shown = ctl(cfg, ns, "status", "minilm", "--target", "kubernetes", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert '"phase": "Progressing"' in shown.stdout and '"weight": 50' in shown.stdout and '"version": 4' in shown.stdout
    busy = ctl(cfg, ns, "promote", "minilm:v5", "--target", "kubernetes", "--skip-validation", "--no-wait")
    assert busy.returncode == 2 and "still Progressing" in busy.stderr
    back = ctl(cfg, ns, "rollback", "minilm", "--target", "kubernetes")
    assert back.returncode == 0, back.stderr
    cr = wait_for(lambda: (c := get_rollout(kube, ns)) and c["status"]["phase"] == "RolledBack" and c, 60, "rollback")
    assert cr["status"]["version"] == 4 and cr["status"]["weight"] == 0
    assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
    assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 0
    late = ctl(cfg, ns, "promote", "minilm:v7", "--target", "kubernetes", "--steps", "50,100",
               "--step-duration", "10m", "--skip-validation", "--timeout", "3s")
    assert late.returncode == 1 and "not finished within the --timeout of 3s" in late.stderr, late.stderr
    # one error line; the --skip-validation warning (on stderr, so that -o json stays parseable) is its own line
    assert [line for line in late.stderr.splitlines() if line.startswith("error:")] == late.stderr.strip().splitlines()[-1:]
    assert "validation gates skipped" in late.stderr
    cr = get_rollout(kube, ns)
    assert (cr["status"]["version"], cr["status"]["phase"], cr["status"]["weight"]) == (7, "Aborted", 0)
    assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
    bad = ctl(cfg, ns, "promote", "minilm:v6", "--target", "kubernetes", "--router", "nginx", "--no-wait")
    assert bad.returncode == 2 and "unknown traffic router 'nginx'" in bad.stderr
    missing = ctl(cfg, ns, "status", "nothing-here", "--target", "kubernetes")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
