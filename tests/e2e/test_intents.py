"""On-call intents through the real `ctl`, whatever state the runner is in: alive, killed with
SIGKILL, never started; while Validating, Progressing, Paused. A real background runner
(`ctl promote --no-wait`) drives the real MiniLM on the local target; each test asserts what
on-call cares about: the phase, all traffic back on stable (weight 0), the production alias
untouched, and the audit trail holding exactly one request and one transition.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.app.runner_lease import is_driven
from tests.e2e.conftest import Ctl, Rollouts, assert_one_line_error, wait_for

pytestmark = pytest.mark.slow

LONG_STEP = "10m"  # steps never end by themselves: only the intents move the rollout


@pytest.fixture(scope="module")
def ctl(home_ctl: Ctl) -> Ctl:
    return home_ctl


@pytest.fixture(scope="module")
def rollouts(ctl: Ctl) -> Rollouts:
    return Rollouts(ctl.home)


@pytest.fixture(autouse=True)
def nothing_left_active(ctl: Ctl, rollouts: Rollouts) -> Iterator[None]:
    """Each test starts and ends with no active rollout (an abort cleans up after a failure)."""
    yield
    if rollouts.store.active_rollout("minilm") is not None:
        ctl("abort", "minilm")


def start(ctl: Ctl, *extra: str, validate: bool = False) -> int:
    args = ["promote", "minilm:v2", "--no-wait", "--step-duration", LONG_STEP, "-o", "json", *extra]
    proc = ctl(*args, *(() if validate else ("--skip-validation",)))
    assert proc.returncode == 0, proc.stderr
    return int(json.loads(proc.stdout)["id"])


def intent(ctl: Ctl, *args: str) -> dict[str, Any]:
    proc = ctl(*args, "-o", "json")
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert proc.stderr.strip() == "", proc.stderr
    return json.loads(proc.stdout)


def rollout(ctl: Ctl, rollout_id: int) -> dict[str, Any]:
    return next(r for r in ctl.json("history", "minilm") if r["id"] == rollout_id)  # type: ignore[union-attr]


def kinds(data: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in data["events"]]


def production(ctl: Ctl) -> str:
    return str(ctl.json("models", "show", "minilm@production")["ref"])  # type: ignore[index]


def progressing(rollouts: Rollouts, rollout_id: int) -> None:
    record = rollouts.wait_phase("Progressing")
    assert (record.id, record.status["weight"]) == (rollout_id, 5)


def test_rollback_with_a_killed_runner_ends_the_rollout_at_once(ctl: Ctl, rollouts: Rollouts) -> None:
    rid = start(ctl)
    progressing(rollouts, rid)
    rollouts.kill_runner(rid)
    done = intent(ctl, "rollback", "minilm")
    assert (done["id"], done["phase"], done["weight"]) == (rid, "RolledBack", 0)
    assert done["recorded"] and done["ended_here"] and not done["runner_started"]
    assert not is_driven(ctl.home, rid), "no runner was started just to roll back"
    data = rollout(ctl, rid)
    assert (data["phase"], data["weight"]) == ("RolledBack", 0)
    assert kinds(data).count("RollbackRequested") == 1 and kinds(data).count("RolledBack") == 1, kinds(data)
    assert kinds(data)[-2:] == ["RollbackRequested", "RolledBack"]
    assert production(ctl) == "minilm:v1"

    again = intent(ctl, "rollback", "minilm")  # twice in a row: answered, nothing recorded
    assert (again["id"], again["phase"], again["recorded"]) == (rid, "RolledBack", False)
    assert "already ended" in again["note"]
    abort = ctl("abort", "minilm")  # another intent on the finished rollout: refused
    assert_one_line_error(abort, 2, f"rollout #{rid} of minilm already ended: RolledBack")
    assert kinds(rollout(ctl, rid)) == kinds(data), "nothing more was recorded"


def test_abort_with_a_killed_runner_while_validating(ctl: Ctl, rollouts: Rollouts) -> None:
    rid = start(ctl, validate=True)
    rollouts.wait_phase("Validating")
    rollouts.kill_runner(rid)
    done = intent(ctl, "abort", "minilm")
    assert (done["phase"], done["weight"], done["ended_here"]) == ("Aborted", 0, True)
    data = rollout(ctl, rid)
    assert "ValidationStarted" in kinds(data) and "StepStarted" not in kinds(data), kinds(data)
    assert kinds(data)[-2:] == ["AbortRequested", "Aborted"], kinds(data)
    assert production(ctl) == "minilm:v1"


def test_rollback_with_a_live_runner_while_validating(ctl: Ctl, rollouts: Rollouts) -> None:
    rid = start(ctl, validate=True)
    rollouts.wait_phase("Validating")
    done = intent(ctl, "rollback", "minilm")
    assert (done["phase"], done["weight"]) == ("RolledBack", 0)
    assert not done["ended_here"], "the live runner carried it out"
    data = rollout(ctl, rid)
    assert "StepStarted" not in kinds(data) and kinds(data)[-2:] == ["RollbackRequested", "RolledBack"], kinds(data)
    wait_for(lambda: not is_driven(ctl.home, rid), "the runner to exit")
    assert production(ctl) == "minilm:v1"


def test_pause_resume_live_then_resume_after_a_kill_while_paused(ctl: Ctl, rollouts: Rollouts) -> None:
    rid = start(ctl)
    progressing(rollouts, rid)
    paused = intent(ctl, "pause", "minilm")
    assert paused["recorded"] and not paused["runner_started"]
    record = rollouts.wait_phase("Paused")
    assert record.status["weight"] == 5, "a pause holds the canary's weight"
    assert not intent(ctl, "pause", "minilm")["recorded"], "a second pause records nothing"
    rollouts.kill_runner(rid)
    resumed = intent(ctl, "resume", "minilm")
    assert resumed["recorded"] and resumed["runner_started"]
    progressing(rollouts, rid)
    rollouts.runner_pid(rid)  # the new runner drives it
    done = intent(ctl, "rollback", "minilm")
    assert (done["phase"], done["weight"], done["ended_here"]) == ("RolledBack", 0, False)
    data = rollout(ctl, rid)
    for kind in ("PauseRequested", "Paused", "ResumeRequested", "Resumed", "RollbackRequested", "RolledBack"):
        assert kinds(data).count(kind) == 1, (kind, kinds(data))
    assert production(ctl) == "minilm:v1"


def test_pause_with_a_killed_runner_starts_one_that_holds_the_weight(ctl: Ctl, rollouts: Rollouts) -> None:
    rid = start(ctl)
    progressing(rollouts, rid)
    rollouts.kill_runner(rid)
    paused = intent(ctl, "pause", "minilm")
    assert paused["recorded"] and paused["runner_started"]
    record = rollouts.wait_phase("Paused")
    assert record.status["weight"] == 5
    rollouts.runner_pid(rid)
    done = intent(ctl, "abort", "minilm")
    assert (done["phase"], done["weight"]) == ("Aborted", 0)
    assert production(ctl) == "minilm:v1"


def test_intents_on_a_rollout_whose_runner_never_started(ctl: Ctl, rollouts: Rollouts) -> None:
    """A rollout row with no runner at all (its runner died before its first reconcile)."""
    from controlplane.app.context import open_context
    from controlplane.app.rollouts import start_rollout
    from controlplane.settings import load_settings

    ctx = open_context(load_settings(ctl.env))

    def orphan() -> int:
        return start_rollout(ctx, "minilm:v2", target="local", router="local", skip_validation=True,
                             step_duration_s=600.0).id

    rid = orphan()
    done = intent(ctl, "rollback", "minilm")
    assert (done["id"], done["phase"], done["weight"], done["ended_here"]) == (rid, "RolledBack", 0, True)
    assert kinds(rollout(ctl, rid)) == ["RollbackRequested", "RolledBack"]

    rid = orphan()
    resumed = intent(ctl, "resume", "minilm")  # nothing to resume, but nobody drives it: a runner is started
    assert (resumed["recorded"], resumed["runner_started"]) == (False, True)
    progressing(rollouts, rid)
    done = intent(ctl, "abort", "minilm")
    assert (done["phase"], done["weight"]) == ("Aborted", 0)
    assert production(ctl) == "minilm:v1"


def test_timeout_deadline_survives_a_killed_runner(ctl: Ctl, rollouts: Rollouts) -> None:
    """The --timeout deadline is stored with the rollout: the runner started after the kill enforces it."""
    rid = start(ctl, "--timeout", "25s")
    progressing(rollouts, rid)
    rollouts.kill_runner(rid)
    deadline = rollout(ctl, rid)["deadline_at"]
    wait_for(lambda: time.time() > deadline, "the deadline to pass", timeout=60)
    assert rollouts.phase() == "Progressing", "nobody enforced it while no runner was alive"
    resumed = intent(ctl, "resume", "minilm")
    assert resumed["runner_started"]
    rollouts.wait_phase("Aborted")
    data = rollout(ctl, rid)
    assert data["weight"] == 0
    asked = [e for e in data["events"] if e["kind"] == "AbortRequested"]
    assert [e["evidence"]["reason"] for e in asked] == ["not finished within the --timeout of 25s"]
    assert kinds(data)[-1] == "Aborted"
    assert production(ctl) == "minilm:v1"


def test_two_rollbacks_racing_record_one_transition(ctl: Ctl, rollouts: Rollouts) -> None:
    rid = start(ctl)
    progressing(rollouts, rid)
    rollouts.kill_runner(rid)
    cmd = [sys.executable, "-m", "controlplane.cli.main", "rollback", "minilm", "-o", "json"]
    procs = [subprocess.Popen(cmd, env=ctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    answers = [json.loads(out) for out, _ in results]
    assert sorted(a["recorded"] for a in answers) == [False, True], answers
    assert all((a["id"], a["phase"], a["weight"]) == (rid, "RolledBack", 0) for a in answers), answers
    data = rollout(ctl, rid)
    assert kinds(data).count("RollbackRequested") == 1 and kinds(data).count("RolledBack") == 1, kinds(data)
    assert production(ctl) == "minilm:v1"


def test_intents_on_an_unknown_model_or_a_model_without_rollouts(ctl: Ctl) -> None:
    assert_one_line_error(ctl("rollback", "nosuch"), 2, "unknown model 'nosuch'")
    assert_one_line_error(ctl("pause", "bad name!"), 2, "invalid model name")
    assert_one_line_error(ctl("resume", "minilm", "--target", "moon"), 2, "unknown --target 'moon'")
