"""Runbooks are code: their commands sit in fenced ``sh`` blocks and their queries in ``promql`` blocks,
every name in them comes from the definitions the controller and the manifests use, and a failure
mode no detector raises is marked ``detector: none``. (The commands run against a real cluster in
tests/k8s/test_runbook_kubectl.py and the queries against a real Prometheus in
tests/integration/test_runbook_promql.py.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from controlplane.adapters.routers.common import ROLE_LABEL
from controlplane.analysis.judge import FAILURE_MODES
from controlplane.app import runbooks
from controlplane.app.gate import CHECK_FAILURE_MODES
from controlplane.errors import InputError

BOOKS = runbooks.load_runbooks()
#: Every failure mode something in the project raises (the analysis, the gates, the gate's fallback).
DETECTED = {*FAILURE_MODES, *CHECK_FAILURE_MODES.values(), "validation-failed"}
ENV = {"CONTROLPLANE_NAMESPACE": "models", "PROMETHEUS_URL": "http://prom.example:9090",
       "MLFLOW_TRACKING_URI": "http://mlflow.example:5000"}
LEFT_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


def rendered(book: runbooks.Runbook) -> str:
    return runbooks.render(book, model="minilm", version=3, stable=2, incident=7)


@pytest.mark.parametrize("rid", sorted(BOOKS))
def test_every_placeholder_is_filled_in_commands_and_queries(rid: str) -> None:
    body = rendered(BOOKS[rid])
    code = runbooks.blocks(body, "sh") + runbooks.blocks(body, "promql")
    assert code, f"{rid} has no sh or promql block"
    for block in code:
        assert not LEFT_PLACEHOLDER.findall(block), f"{rid}: unfilled {LEFT_PLACEHOLDER.findall(block)} in {block!r}"


@pytest.mark.parametrize("rid", sorted(BOOKS))
def test_kubectl_lines_name_what_the_controller_defines(rid: str) -> None:
    for line in runbooks.shell_commands(rendered(BOOKS[rid])):
        argv = shlex.split(line)
        if argv[0] != "kubectl":
            assert argv[0] in ("ctl", "curl"), f"{rid}: unexpected command {line!r}"
            continue
        assert argv[1:3] == ["-n", "models"], f"{rid}: {line!r} must name the namespace ctl uses"
        selectors = [argv[i + 1] for i, a in enumerate(argv) if a == "-l"]
        allowed = {f"{ROLE_LABEL}=canary", f"{runbooks.WORKFLOW_TEMPLATE_LABEL}=attention-model-validation"}
        assert set(selectors) <= allowed, f"{rid}: selector {selectors} is not one the controller or Argo sets"
        names = [a for a in argv if a.startswith("deploy/") or a in ("minilm", "minilm-canary")]
        assert all(n.removeprefix("deploy/") in ("minilm", "minilm-canary") for n in names), line


def test_commands_are_outside_prose() -> None:
    """No command hides in inline code where the suite cannot find it."""
    for rid, book in BOOKS.items():
        prose = re.sub(r"```.*?```", "", book.body, flags=re.DOTALL)
        assert not re.search(r"`\s*(kubectl|curl)\s", prose), f"{rid}: a kubectl/curl command outside an sh block"


def test_undetected_failure_modes_are_marked_and_said() -> None:
    for rid, book in BOOKS.items():
        if book.detected:
            assert set(book.triggers) <= DETECTED, f"{rid} claims a detector for {set(book.triggers) - DETECTED}"
        else:
            assert not set(book.triggers) & DETECTED, f"{rid} is marked detector: none but something raises it"
            assert rendered(book).startswith(runbooks.NO_DETECTOR_NOTE)
    assert not BOOKS["kv-cache-inconsistency"].detected
    assert not BOOKS["registry-unavailable"].detected


def test_an_unknown_detector_value_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x-mode.md"
    path.write_text("---\nid: x-mode\ntitle: X\nseverity: page\ndetector: maybe\n---\nbody\n")
    with pytest.raises(InputError, match="detector must be 'none'"):
        runbooks.parse_runbook(path)


def test_blocks_by_language() -> None:
    text = "a\n```sh\nctl status m\n```\n```promql\nup\n```\n```\nplain\n```\n"
    assert runbooks.blocks(text, "sh") == ["ctl status m"]
    assert runbooks.blocks(text, "promql") == ["up"]
    assert runbooks.ctl_commands(text) == ["ctl status m"]


def test_registry_uri_is_filled_only_for_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    body = rendered(BOOKS["registry-unavailable"])
    assert "curl -fsS {mlflow_uri}/health" in body
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert "curl -fsS http://mlflow.example:5000/health" in rendered(BOOKS["registry-unavailable"])
