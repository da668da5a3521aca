"""Every ``kubectl`` command of every runbook runs on the real API server, as the on-call identity of
manifests/rbac/oncall.yaml, against a rollout the real controller holds at 50 % with a canary
Deployment and its pods, and a validation Workflow submitted by the Argo engine; each command
succeeds and shows what its runbook says it shows.

Not run here: ``kubectl logs`` (kwok's fake kubelet has no container logs to serve; it needs pods that
really run, which the test cluster does not have yet): it is checked as far as the API server goes,
by the same identity reading the canary's pods and being allowed ``pods/log``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.common import ROLE_LABEL
from controlplane.app import runbooks
from controlplane.workflows import VALIDATION_DAG, request_from_ref
from tests.k8s.conftest import ROOT, ControllerProcess, apply, get_rollout, http_route, stable_objects, wait_for
from tests.k8s.test_rbac_k8s import render as render_rbac

pytestmark = [pytest.mark.k8s, pytest.mark.slow]
TEMPLATE = ROOT / "workflows" / "validation-template.yaml"


def kubectl_lines() -> list[tuple[str, list[str]]]:
    """(runbook, argv) of every kubectl line, rendered for an incident on minilm:v3."""
    lines = []
    for rid, book in sorted(runbooks.load_runbooks().items()):
        body = runbooks.render(book, model="minilm", version=3, stable=2, incident=7)
        for line in runbooks.shell_commands(body):
            argv = shlex.split(line)
            if argv[0] == "kubectl":
                lines.append((rid, argv))
    return lines


def test_every_runbook_kubectl_command_works_for_on_call(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = k8s_namespace
    monkeypatch.setenv("CONTROLPLANE_NAMESPACE", ns)
    apply(k8s_cluster, *render_rbac(ROOT / "manifests" / "rbac" / "oncall.yaml", ns, ns))
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    k8s_cluster.kubectl("apply", "--server-side", "-n", ns, "-f", str(TEMPLATE))
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path))
    env = {**os.environ, "KUBECONFIG": str(k8s_cluster.kubeconfig), "CONTROLPLANE_NAMESPACE": ns}
    started = subprocess.run(
        [sys.executable, "-m", "controlplane.cli.main", "promote", "minilm:v3", "--target", "kubernetes",
         "--steps", "50,100", "--step-duration", "10m", "--skip-validation", "--no-wait"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 0, started.stderr
    wait_for(lambda: (get_rollout(kube, ns).get("status") or {}).get("weight") == 50, 90, "the canary at 50 %")
    wait_for(lambda: [p for p in kube.list_custom("", "v1", "pods", ns, f"{ROLE_LABEL}=canary")
                      if (p.get("status") or {}).get("phase") == "Running"], 60, "running canary pods")
    from controlplane.workflows.argo_engine import ArgoEngine

    ArgoEngine(kube, mlflow_tracking_uri="http://mlflow.example:5000", namespace=ns).submit(
        request_from_ref("minilm:v3", None, VALIDATION_DAG))

    oncall = k8s_cluster.token_kubeconfig(ns, "attn-controlplane-oncall")
    ran: list[str] = []
    # the reads first, then the one mitigation that changes the cluster (a restart replaces the canary's pods)
    for rid, argv in sorted(kubectl_lines(), key=lambda line: line[1][3] == "rollout"):
        if argv[3] == "logs":
            continue  # see the module docstring
        result = subprocess.run([k8s_cluster.kubectl_bin, f"--kubeconfig={oncall}", *argv[1:]],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{rid}: {shlex.join(argv)}\n{result.stderr}"
        _shows_what_the_runbook_says(rid, argv, result.stdout)
        ran.append(argv[3])
    assert {"get", "describe", "rollout"} <= set(ran)

    can_i = [k8s_cluster.kubectl_bin, f"--kubeconfig={oncall}", "-n", ns, "auth", "can-i"]
    assert subprocess.run([*can_i, "get", "pods", "--subresource=log"], capture_output=True, check=False).returncode == 0
    for denied in (["get", "secrets"], ["delete", "pods"], ["patch", "modelrollouts", "--subresource=status"]):
        assert subprocess.run([*can_i, *denied], capture_output=True, check=False).returncode != 0, denied


def _shows_what_the_runbook_says(rid: str, argv: list[str], out: str) -> None:
    verb, rest = argv[3], argv[4:]
    if verb == "describe":  # the canary's pods, none of the stable's
        assert "Name:" in out and "-canary-" in out, f"{rid}: {out[:500]}"
        assert f"{ROLE_LABEL}=stable" not in out, rid
    elif verb == "get" and rest[0] == "pods":
        assert "minilm-canary-" in out and "Running" in out, f"{rid}: {out}"
    elif verb == "get" and rest[0] == "deploy":
        names = {line.split()[0] for line in out.splitlines()[1:]}
        assert names == {"minilm", "minilm-canary"}, f"{rid}: {out}"
    elif verb == "get" and rest[0] == "modelrollout":
        assert "weight: 50" in out and "phase: Progressing" in out, f"{rid}: {out}"
    elif verb == "get" and rest[0] == "workflows":
        assert "validate-minilm-v3" in out, f"{rid}: {out}"
    elif verb == "rollout":
        assert "restarted" in out, f"{rid}: {out}"
