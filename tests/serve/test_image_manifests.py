"""The Containerfile, the example manifests and the CLI agree (the image cannot be built in this CI):
entrypoint and command, port, probe paths, environment variables, scrape annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer.main
import yaml

from controlplane.adapters.routers.common import MODEL_URI_ENV, ROLE_LABEL
from controlplane.cli.main import app
from controlplane.serve import options
from controlplane.serve.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> dict[str, list[str]]:
    """Containerfile instruction → arguments (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Containerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.setdefault(word.upper(), []).append(rest.strip())
    return found


def server_container() -> tuple[dict[str, Any], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/example/workload.yaml").read_text()) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    return dep["spec"]["template"], dep["spec"]["template"]["spec"]["containers"][0]


def parse_serve(args: list[str]) -> dict[str, Any]:
    """The parameters `ctl` would call `serve` with (click parses them exactly as the CLI does)."""
    command = typer.main.get_command(app).commands[args[0]]  # type: ignore[attr-defined]
    with command.make_context(args[0], list(args[1:])) as ctx:
        return dict(ctx.params)


def test_containerfile_runs_ctl_serve_on_the_default_port() -> None:
    found = instructions()
    assert json.loads(found["ENTRYPOINT"][-1]) == ["ctl"]
    command = json.loads(found["CMD"][-1])
    params = parse_serve(command)
    assert params["port"] == options.DEFAULT_PORT
    assert found["EXPOSE"] == [str(options.DEFAULT_PORT)]
    env = " ".join(found["ENV"])
    assert "CONTROLPLANE_HOME=/var/cache/ctl" in env
    assert any("EXTRAS=serve" in a for a in found["ARG"])  # the serving extra (uvicorn, Starlette) is installed


def test_example_workload_runs_the_project_image_with_ctl_serve() -> None:
    template, container = server_container()
    controller = yaml.safe_load((ROOT / "manifests/controller/deployment.yaml").read_text())
    assert container["image"] == controller["spec"]["template"]["spec"]["containers"][0]["image"]  # one image
    assert "command" not in container  # the image's ENTRYPOINT (ctl)
    params = parse_serve(container["args"])
    port = container["ports"][0]
    assert params["port"] == port["containerPort"] and params["model_ref"] is None  # the model comes from MODEL_URI
    assert params["drain_seconds"] < template["spec"]["terminationGracePeriodSeconds"]


def test_probes_hit_the_oip_health_endpoints() -> None:
    _, container = server_container()
    paths = openapi_document("m", 1)["paths"]
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/v2/health/live"
    for probe in probes.values():
        assert probe["path"] in paths and probe["port"] == container["ports"][0]["name"]


def test_environment_gives_model_uri_role_and_registry() -> None:
    template, container = server_container()
    env = {e["name"]: e for e in container["env"]}
    assert options.MODEL_URI_ENV == MODEL_URI_ENV  # what the controller rewrites on the canary copy
    assert env[MODEL_URI_ENV]["value"] == template["metadata"]["annotations"][f"{ROLE_LABEL.split('/')[0]}/model-uri"]
    role = env[options.ROLE_ENV]["valueFrom"]["fieldRef"]["fieldPath"]
    assert role == f"metadata.labels['{ROLE_LABEL}']" and ROLE_LABEL in template["metadata"]["labels"]
    assert env["MLFLOW_TRACKING_URI"]["value"].startswith("http")
    cache = env["CONTROLPLANE_HOME"]["value"]
    assert cache in {m["mountPath"] for m in container["volumeMounts"]}  # writable under a read-only root
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]


def test_prometheus_scrapes_the_metrics_endpoint() -> None:
    template, container = server_container()
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
    assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in openapi_document("m", 1)["paths"]


def test_metric_names_match_what_the_slo_judge_reads() -> None:
    """The judge's default preset queries the names the servers export (serving_metrics)."""
    from controlplane import serving_metrics as metrics
    from controlplane.analysis.presets import DEFAULT_PRESET, PRESETS

    preset = PRESETS[DEFAULT_PRESET]
    assert preset.errors is not None and preset.total.name == preset.errors.name == f"{metrics.REQUESTS}_total"
    assert preset.histogram is not None and preset.histogram.name == metrics.DURATION
    assert preset.outcome_label == "outcome" and "error" in metrics.OUTCOMES


def test_every_image_the_project_names_is_one_the_containerfile_builds() -> None:
    """The manifests, the WorkflowTemplate and the README name only images whose build line (tag and
    EXTRAS) the Containerfile documents; the serving image installs the serve and controller extras."""
    from controlplane.workflows.template import DEFAULT_IMAGE

    header = (ROOT / "Containerfile").read_text()
    built = set(re.findall(r"-t (ghcr\.io/\S+)", header))
    named = {DEFAULT_IMAGE}
    for path in [*(ROOT / "manifests").rglob("*.yaml"), ROOT / "workflows" / "validation-template.yaml"]:
        named |= set(re.findall(r"image: (ghcr\.io/\S+)", path.read_text()))
    assert named and named <= built, named - built
    assert re.search(r"controlplane-validate:\S+ \\\n#\s+--build-arg EXTRAS=validate,minilm", header)
    assert "ARG EXTRAS=serve,controller" in header
    assert set(re.findall(r"-t (ghcr\.io/\S+)", (ROOT / "README.md").read_text())) <= built
