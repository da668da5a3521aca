"""The demo's whole story on the real servers: a real `mlflow server` (MLFLOW_TRACKING_URI, artifacts
proxied over HTTP) as the registry and a real PostgreSQL (CONTROLPLANE_DB_URL) as the store, through the
real `ctl` in subprocesses, with real onnxruntime inference on the local target.

The story of test_local_flow.py (v1 promoted through its tokenizer gate, an int8 v2 promoted through
5/25/50/100 %, a v3 with cut position embeddings rolled back on real errors while the incident webhook
hangs), then `history`, `incident list/show`, `runbook`, and pause/resume/abort on a driven rollout.
Nothing is written under CONTROLPLANE_HOME's embedded databases: the servers hold the state.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import HangingEndpoint, fresh_database, pg_query

from .conftest import Ctl, assert_rolled_back_on_errors, kinds, run_story, step_weights

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server, pytest.mark.postgres]

MODEL = "story-minilm"  # its own name on the session's MLflow server


@pytest.fixture(scope="module")
def db_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def webhook() -> Iterator[HangingEndpoint]:
    endpoint = HangingEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, db_url: str) -> Ctl:
    return Ctl(tmp_path_factory.mktemp("home-real"), env={"MLFLOW_TRACKING_URI": mlflow_server,
                                                          "CONTROLPLANE_DB_URL": db_url})


@pytest.fixture(scope="module")
def story(ctl: Ctl, minilm: Path, tmp_path_factory: pytest.TempPathFactory,
          webhook: HangingEndpoint) -> dict[str, subprocess.CompletedProcess[str]]:
    return run_story(ctl, MODEL, minilm, tmp_path_factory.mktemp("short-real"), v1_checks="tokenizer-parity",
                     v3_env={"CONTROLPLANE_INCIDENT_WEBHOOK": webhook.url})


def _client(mlflow_server: str) -> Any:
    from mlflow import MlflowClient  # the test reads the server directly to see what it holds

    return MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)


def test_v1_and_int8_v2_are_promoted_and_the_server_holds_the_alias(ctl: Ctl, story: dict, mlflow_server: str) -> None:
    for name in ("register v1", "promote v1", "register v2", "promote v2", "register v3"):
        assert story[name].returncode == 0, (name, story[name].stdout, story[name].stderr)
    assert [story[f"register v{n}"].stdout.strip().splitlines()[-1] for n in (1, 2, 3)] == [
        f"{MODEL}:v1", f"{MODEL}:v2", f"{MODEL}:v3"]
    history = ctl.json("history", MODEL)
    assert [(r["ref"], r["phase"]) for r in history] == [
        (f"{MODEL}:v1", "Promoted"), (f"{MODEL}:v2", "Promoted"), (f"{MODEL}:v3", "RolledBack")]
    v1, v2 = history[0], history[1]
    assert kinds(v1)[:2] == ["ValidationStarted", "ValidationPassed"], kinds(v1)  # the gate ran, on the server
    assert v2["stable_version"] == 1 and step_weights(v2) == [5, 25, 50, 100] and "ValidationSkipped" in kinds(v2)
    passes = [a["step"] for a in v2["analysis"] if a["verdict"] == "pass"]
    assert passes == [0, 1, 2, 3] and "fail" not in [a["verdict"] for a in v2["analysis"]], v2["analysis"]
    assert ctl.json("models", "show", f"{MODEL}@production")["ref"] == f"{MODEL}:v2"

    client = _client(mlflow_server)
    assert client.get_model_version_by_alias(MODEL, "production").version == "2"
    v1_tags = client.get_model_version(MODEL, "1").tags
    assert v1_tags["validation.tokenizer-parity"] == "passed"
    run = client.get_run(v1_tags["validation.run_id"])  # the gate's run, logged to the server
    assert run.info.status == "FINISHED"
    assert client.get_model_version(MODEL, "2").tags["lineage.source"] == f"{MODEL}:v1"


def test_v3_rolls_back_on_errors_and_a_hanging_webhook_does_not_hold_the_command(
    ctl: Ctl, story: dict, webhook: HangingEndpoint, mlflow_server: str
) -> None:
    v3 = assert_rolled_back_on_errors(ctl, MODEL, story["promote v3"])
    assert v3["stable_version"] == 2
    assert _client(mlflow_server).get_model_version_by_alias(MODEL, "production").version == "2"
    # the command returned (exit 1 above) with the incident recorded while its webhook never answered
    assert webhook.accepted >= 1 and b"POST /hook" in webhook.received
    assert b"slo-burn-errors" in webhook.received and f"{MODEL}:v3".encode() in webhook.received


def test_incident_show_and_runbook_of_the_rollback(ctl: Ctl, story: dict) -> None:
    [incident] = [i for i in ctl.json("incident", "list") if i["ref"] == f"{MODEL}:v3"]
    shown = ctl.json("incident", "show", str(incident["id"]))
    assert (shown["failure_mode"], shown["state"], shown["runbook"]) == (
        "slo-burn-errors", "open", "runbooks/slo-burn-errors.md")
    v3 = ctl.latest(MODEL, f"{MODEL}:v3")
    assert shown["rollout_id"] == v3["id"] and shown["evidence"]["canary"]["errors"] > 0
    table = ctl("incident", "show", str(incident["id"]))
    assert table.returncode == 0 and "slo-burn-errors" in table.stdout, table.stdout + table.stderr
    book = ctl.json("runbook", str(incident["id"]))
    assert book["id"] == "slo-burn-errors" and book["incident"] == incident["id"]
    assert f"ctl rollback {MODEL}" in book["commands"] and f"ctl incident show {incident['id']}" in book["commands"]


def test_the_state_is_on_the_servers_not_in_the_home(ctl: Ctl, story: dict, db_url: str) -> None:
    assert not (ctl.home / "state.db").exists() and not (ctl.home / "mlflow.db").exists()
    history = ctl.json("history", MODEL)
    rows = pg_query(db_url, f"SELECT id, version, phase FROM rollouts WHERE model = '{MODEL}' ORDER BY id")
    assert rows == [(r["id"], r["version"], r["phase"]) for r in history]
    for r in history:
        events = pg_query(db_url, f"SELECT kind FROM rollout_events WHERE rollout_id = {r['id']} ORDER BY id")
        assert [k for (k,) in events] == kinds(r)
    incidents = pg_query(db_url, f"SELECT version, failure_mode, runbook FROM incidents WHERE model = '{MODEL}'")
    assert incidents == [(3, "slo-burn-errors", "runbooks/slo-burn-errors.md")]


def test_pause_resume_abort_on_a_driven_rollout(ctl: Ctl, story: dict, mlflow_server: str, db_url: str) -> None:
    """A rollout driven by its background runner (`promote --no-wait`): pause holds the weight, resume
    continues, abort returns all traffic to stable; production stays on v2 throughout."""
    started = ctl("promote", f"{MODEL}:v1", "--skip-validation", "--step-duration", "10m",
                  "--analysis-interval", "10m", "--no-wait")  # nothing judged meanwhile
    assert started.returncode == 0, started.stderr
    rollout_id = ctl.json("status", MODEL)["id"]
    assert f"rollout #{rollout_id} started" in started.stdout
    try:
        assert ctl.wait_phase(MODEL, "Progressing")["weight"] == 5
        for intent, phase in (("pause", "Paused"), ("resume", "Progressing"), ("abort", "Aborted")):
            asked = ctl(intent, MODEL, "-o", "json")
            assert asked.returncode == 0, (intent, asked.stderr)
            answer = json.loads(asked.stdout)
            assert {k: answer[k] for k in ("id", "intent", "recorded", "runner_started", "ended_here")} == {
                "id": rollout_id, "intent": intent, "recorded": True, "runner_started": False, "ended_here": False}
            status = ctl.wait_phase(MODEL, phase, timeout=120)
            assert status["id"] == rollout_id
            assert status["weight"] == (0 if intent == "abort" else 5), (intent, status)
    finally:
        if ctl.json("status", MODEL)["phase"] not in ("Aborted", "RolledBack", "Promoted", "Failed"):
            ctl("abort", MODEL)
    rollout = ctl.latest(MODEL, f"{MODEL}:v1")
    assert rollout["id"] == rollout_id and rollout["phase"] == "Aborted"
    assert [k for k in kinds(rollout) if k != "ValidationSkipped"] == [
        "StepStarted", "PauseRequested", "Paused", "ResumeRequested", "Resumed", "AbortRequested", "Aborted"]
    assert ctl.json("models", "show", f"{MODEL}@production")["ref"] == f"{MODEL}:v2"
    assert _client(mlflow_server).get_model_version_by_alias(MODEL, "production").version == "2"
    assert pg_query(db_url, f"SELECT phase, active FROM rollouts WHERE id = {rollout_id}") == [("Aborted", False)]
