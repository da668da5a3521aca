"""The validation DAG: its committed Argo template, the local engine, request validation."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.errors import InputError
from controlplane.ports import CheckOutcome, ValidationRequest
from controlplane.workflows import (
    VALIDATION_DAG,
    LocalEngine,
    make_engine,
    request_from_ref,
    state_to_dict,
    validate_with_engine,
)
from controlplane.workflows.results import CHECK_KEYS, RESULT_KEYS
from controlplane.workflows.template import render_yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "workflows" / "validation-template.yaml"
ALL = ("tokenizer-parity", "quantization-accuracy", "head-collapse", "long-seq-memory")


def test_committed_template_is_the_rendering_of_the_python_definition() -> None:
    assert TEMPLATE.read_text() == render_yaml()


def test_template_dag_order_gpu_step_and_status_outputs() -> None:
    doc = yaml.safe_load(TEMPLATE.read_text())
    assert doc["kind"] == "WorkflowTemplate"
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    dag = {t["name"]: t.get("depends") for t in templates[doc["spec"]["entrypoint"]]["dag"]["tasks"]}
    done = "({0}.Succeeded || {0}.Failed || {0}.Errored || {0}.Skipped)".format
    assert dag == {  # each waits for its dependencies to finish, whatever their verdict
        "tokenizer-parity": None,
        "quantization-accuracy": done("tokenizer-parity"),
        "head-collapse": done("tokenizer-parity"),
        "long-seq-memory": f"{done('quantization-accuracy')} && {done('head-collapse')}",
    }
    assert templates[doc["spec"]["entrypoint"]]["dag"]["failFast"] is False
    for check in ALL:
        step = templates[check]
        assert [p["name"] for p in step["outputs"]["parameters"]] == ["status"]
        assert {"name": "CHECK", "value": check} in step["script"]["env"]
        assert 'ctl "$@"' in step["script"]["source"] and "--checks" in step["script"]["source"]
    gpu = templates["long-seq-memory"]
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert gpu["script"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nodeSelector" not in templates["head-collapse"]


def _recording_runner(log: list[tuple[str, str, float]], fail: str | None = None, delay: float = 0.3) -> Any:
    lock = threading.Lock()

    def run(request: ValidationRequest, check: str) -> CheckOutcome:
        with lock:
            log.append(("start", check, time.monotonic()))
        time.sleep(delay)
        with lock:
            log.append(("end", check, time.monotonic()))
        status = "failed" if check == fail else "passed"
        return CheckOutcome(check, status, f"{check} {status}", {"score": 1.0})

    return run


def _times(log: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    return {(event, check): t for event, check, t in log}


def test_local_engine_honours_dependencies_and_runs_branches_concurrently() -> None:
    log: list[tuple[str, str, float]] = []
    engine = LocalEngine(_recording_runner(log))
    began = time.monotonic()
    handle = engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG))
    state = engine.wait(handle, timeout=30)
    whole = time.monotonic() - began
    assert state.phase == "Succeeded"
    assert [o.check for o in state.checks] == list(ALL)
    assert all(o.status == "passed" for o in state.checks)
    t = _times(log)
    for o in state.checks:  # each check's own time (ms): at least its runner's call, at most the whole run
        own = t["end", o.check] - t["start", o.check]
        assert o.seconds is not None and own - 0.001 <= o.seconds <= whole + 0.001, (o, own, whole)
    assert t["end", "tokenizer-parity"] <= t["start", "quantization-accuracy"]
    assert t["end", "tokenizer-parity"] <= t["start", "head-collapse"]
    # the two middle checks overlap: the branch really runs in parallel
    assert t["start", "head-collapse"] < t["end", "quantization-accuracy"]
    assert t["start", "quantization-accuracy"] < t["end", "head-collapse"]
    assert max(t["end", "quantization-accuracy"], t["end", "head-collapse"]) <= t["start", "long-seq-memory"]
    assert engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG)) == handle  # idempotent


def test_local_engine_runs_every_check_after_a_failure_in_the_dag_order() -> None:
    """A failed check is a verdict, not a reason to stop: the dependents still run (after it)
    and report their own verdicts, as the template's failFast: false does in Argo."""
    log: list[tuple[str, str, float]] = []
    engine = LocalEngine(_recording_runner(log, fail="tokenizer-parity", delay=0.05))
    state = engine.wait(engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG)), timeout=30)
    assert state.phase == "Failed"
    assert [(o.check, o.status) for o in state.checks] == [
        ("tokenizer-parity", "failed"), ("quantization-accuracy", "passed"), ("head-collapse", "passed"),
        ("long-seq-memory", "passed")]
    t = _times(log)
    assert t["end", "tokenizer-parity"] <= min(t["start", "quantization-accuracy"], t["start", "head-collapse"])
    assert state.message.startswith("tokenizer-parity failed")


def test_local_engine_stops_on_bad_input() -> None:
    """Bad input (a missing artifact, an absent device) is not a verdict: nothing more runs."""
    log: list[tuple[str, str, float]] = []

    def runner(request: ValidationRequest, check: str) -> CheckOutcome:
        log.append(("start", check, time.monotonic()))
        raise InputError(f"{check}: the model's tokenizer.json is missing")

    engine = LocalEngine(runner)
    state = engine.wait(engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG)), timeout=30)
    assert state.phase == "Failed"
    first, *rest = state.checks
    assert (first.status, first.input_error) == ("error", True) and "tokenizer.json" in first.summary
    assert {o.status for o in rest} == {"skipped"} and all("bad input" in o.summary for o in rest)
    assert [c for _, c, _ in log] == ["tokenizer-parity"]


def test_local_engine_selected_checks_and_result_shape() -> None:
    engine = LocalEngine(_recording_runner([], delay=0.01))
    request = request_from_ref("minilm:v2", "long-seq-memory,tokenizer-parity", VALIDATION_DAG)
    state = engine.wait(engine.submit(request), timeout=30)
    data = state_to_dict(state, ref="minilm:v2", engine="local")
    assert set(data) == RESULT_KEYS
    assert [c["check"] for c in data["checks"]] == ["tokenizer-parity", "long-seq-memory"]
    assert set(data["checks"][0]) == CHECK_KEYS


def test_local_engine_timeout_terminates() -> None:
    engine = LocalEngine(_recording_runner([], delay=2.0))
    state = engine.wait(engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG)), timeout=0.2)
    assert state.phase == "Failed" and "timed out" in state.message
    assert {o.status for o in state.checks} <= {"error", "skipped"}


@pytest.mark.parametrize(
    ("ref", "checks", "message"),
    [
        ("minilm:v2", "tokenizer-parity,nope", "unknown check(s) 'nope'"),
        ("minilm", None, "invalid model reference 'minilm': expected NAME:vN"),
        ("minilm:vx", None, "invalid model reference 'minilm:vx'"),
        ("Bad Name:v1", None, "invalid model reference 'Bad Name:v1'"),
    ],
)
def test_bad_requests_are_refused_before_submission(ref: str, checks: str | None, message: str) -> None:
    with pytest.raises(InputError) as err:
        request_from_ref(ref, checks, VALIDATION_DAG)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_engine_settings_are_refused() -> None:
    with pytest.raises(InputError, match="unknown workflow engine"):
        make_engine("airflow")
    with pytest.raises(InputError, match="MLflow"):
        make_engine("argo", kube=object(), mlflow_tracking_uri="file:///tmp/mlruns")  # type: ignore[arg-type]


def test_validate_with_engine_local_returns_the_common_shape() -> None:
    result, passed = validate_with_engine("minilm:v2", "head-collapse", runner=_recording_runner([], delay=0.01))
    assert passed and result["phase"] == "Succeeded"
    assert [c["check"] for c in result["checks"]] == ["head-collapse"]
    with pytest.raises(InputError, match="unknown check"):
        validate_with_engine("minilm:v2", "bogus", runner=_recording_runner([]))
