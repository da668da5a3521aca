"""Each role installed on its own, as its users install it: a fresh venv per role from the local wheel
(pip's cache, constraints.txt), and that role's commands run through the venv's own `ctl`.

The CI role (the base install) drives a real rollout on the test cluster, reconciled by a controller
running from the controller role's venv; neither has torch, transformers or onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri
from tests.install.venvs import CONSTRAINTS, RoleVenv, build_wheel, clean_env, make_role_venv
from tests.k8s.conftest import ControllerProcess, apply, get_rollout, http_route, stable_objects, wait_for

pytestmark = pytest.mark.slow

HEAVY = ("torch", "transformers", "onnxruntime", "onnx")
SLO = {"model": "minilm", "objectives": {"availability": {"target": 99.9}, "latency": {"target": 95, "threshold": "1s"}}}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture(scope="session")
def ci_venv(wheel: Path, venvs: Path) -> RoleVenv:
    return make_role_venv(venvs / "ci", wheel)


@pytest.fixture(scope="session")
def controller_venv(wheel: Path, venvs: Path) -> RoleVenv:
    return make_role_venv(venvs / "controller", wheel, "controller")


@pytest.fixture(scope="session")
def registry_venv(wheel: Path, venvs: Path) -> RoleVenv:
    return make_role_venv(venvs / "registry", wheel, "registry")


@pytest.fixture(scope="session")
def serve_venv(wheel: Path, venvs: Path) -> RoleVenv:
    return make_role_venv(venvs / "serve", wheel, "serve")


def ctl(env: RoleVenv, cwd: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The venv's `ctl`, run outside this checkout so nothing but the venv is importable."""
    return subprocess.run([str(env.bin / "ctl"), *args], cwd=cwd, env=clean_env(**extra_env), capture_output=True,
                          text=True, timeout=180, check=False)


def test_ci_role_has_no_model_libraries_and_runs_the_cli(ci_venv: RoleVenv, tmp_path: Path) -> None:
    for module in (*HEAVY, "mlflow", "flask", "sqlalchemy", "numpy", "scipy"):
        assert not ci_venv.importable(module), f"{module} is installed by the base (CI) role"
    assert ci_venv.importable("kubernetes")
    shown = ctl(ci_venv, tmp_path, "--help")
    assert shown.returncode == 0 and "promote" in shown.stdout, shown.stderr
    slo = tmp_path / "slo.yaml"
    slo.write_text(yaml.safe_dump(SLO))
    checked = ctl(ci_venv, tmp_path, "slo", "validate", str(slo), "-o", "json")
    assert checked.returncode == 0, checked.stderr
    assert '"model": "minilm"' in checked.stdout


@pytest.mark.parametrize(("args", "group"), [
    (("validate", "minilm:v1"), "validate"),
    (("register", "minilm", "--model-dir", "."), "validate"),
    (("promote", "minilm:v1"), "all"),
    (("status",), "store"),
    (("models", "list"), "registry"),
    (("controller", "run"), "controller"),
    (("slo", "dashboards", "slo.yaml"), "grafana"),
])
def test_a_missing_extra_is_one_line_naming_it(ci_venv: RoleVenv, tmp_path: Path, args: tuple[str, ...],
                                               group: str) -> None:
    done = ctl(ci_venv, tmp_path, *args, CONTROLPLANE_HOME=str(tmp_path / "home"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"pip install 'attn-controlplane[{group}]'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_grafana_role_writes_the_dashboards(wheel: Path, venvs: Path, tmp_path: Path) -> None:
    """The base install plus [grafana] is all `ctl slo dashboards` needs (no torch, no controller extra)."""
    env = make_role_venv(venvs / "grafana", wheel, "grafana")
    assert not env.importable("torch") and not env.importable("scipy")
    slo = tmp_path / "slo.yaml"
    slo.write_text(yaml.safe_dump(SLO))
    done = ctl(env, tmp_path, "slo", "dashboards", str(slo), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "minilm-debug.json", "minilm-executive.json", "minilm-oncall.json"]


def test_registry_role_reads_the_local_sqlite_registry_without_the_mlflow_server(
    registry_venv: RoleVenv, tmp_path: Path,
) -> None:
    assert not registry_venv.importable("flask") and not registry_venv.importable("torch")
    listed = ctl(registry_venv, tmp_path, "models", "list", "-o", "json", CONTROLPLANE_HOME=str(tmp_path / "home"))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"


def test_serve_role_has_no_torch_and_runs_ctl_serve(serve_venv: RoleVenv, tmp_path: Path) -> None:
    assert not serve_venv.importable("torch") and not serve_venv.importable("transformers")
    assert serve_venv.importable("onnxruntime")
    shown = ctl(serve_venv, tmp_path, "serve", "--help")
    if "No such command 'serve'" in shown.stderr:
        pytest.skip("this checkout has no `ctl serve` yet")
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr


@pytest.mark.parametrize(("extra", "runtime"), [("gpu", "onnxruntime-gpu"), ("all", "onnxruntime")])
def test_a_workstation_gets_exactly_one_onnxruntime(wheel: Path, tmp_path: Path, extra: str, runtime: str) -> None:
    """pip's resolver (a dry run, nothing installed): `gpu` holds every CUDA twin, `all` every CPU role."""
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--report",
                    str(report), "-c", str(CONSTRAINTS), f"{wheel}[{extra}]"], env=clean_env(), check=True,
                   capture_output=True, text=True, timeout=600)
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {n for n in names if n.startswith("onnxruntime")} == {runtime}
    assert "torch" in names


@pytest.mark.k8s
def test_ci_role_promotes_and_rolls_back_on_kubernetes(
    ci_venv: RoleVenv, controller_venv: RoleVenv, k8s_cluster: Any, k8s_namespace: str, crd: str,
    controllers: list[Any], tmp_path: Path,
) -> None:
    for module in HEAVY:
        assert not controller_venv.importable(module), f"{module} is installed by the controller role"
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, ctl=str(controller_venv.bin / "ctl")))
    env = {"KUBECONFIG": str(k8s_cluster.kubeconfig), "CONTROLPLANE_NAMESPACE": ns}

    done = ctl(ci_venv, tmp_path, "promote", "minilm:v3", "--target", "kubernetes", "--steps", "50,100",
               "--step-duration", "1s", "--skip-validation", "-o", "json", **env)
    assert done.returncode == 0, done.stderr + done.stdout + controllers[0].output()
    assert '"phase": "Promoted"' in done.stdout
    kube = KubeClient(str(k8s_cluster.kubeconfig))
    try:
        assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
        started = ctl(ci_venv, tmp_path, "promote", "minilm:v4", "--target", "kubernetes", "--steps", "50,100",
                      "--step-duration", "10m", "--skip-validation", "--no-wait", **env)
        assert started.returncode == 0, started.stderr
        wait_for(lambda: (get_rollout(kube, ns).get("status") or {}).get("weight") == 50, 60, "v4 at 50%")
        shown = ctl(ci_venv, tmp_path, "status", "minilm", "--target", "kubernetes", "-o", "json", **env)
        assert shown.returncode == 0, shown.stderr
        assert '"phase": "Progressing"' in shown.stdout and '"weight": 50' in shown.stdout
        back = ctl(ci_venv, tmp_path, "rollback", "minilm", "--target", "kubernetes", **env)
        assert back.returncode == 0, back.stderr
        cr = wait_for(lambda: (c := get_rollout(kube, ns)) and c["status"]["phase"] == "RolledBack" and c, 60,
                      "rollback")
        assert (cr["status"]["version"], cr["status"]["weight"]) == (4, 0)
        assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
    finally:
        kube.close()
