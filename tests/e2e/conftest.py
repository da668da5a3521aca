"""What the end-to-end tests share.

* `ctl` as a subprocess under a throw-away CONTROLPLANE_HOME (``Ctl``), the one-line error check, the
  packaged all-MiniLM-L6-v2, and the demo's story (controlplane/demo.py) run once per module: v1
  registered and promoted; its per-channel int8 variant v2 promoted through 5/25/50/100 %; a v3 whose
  position table was cut to 64 rows (long inputs fail at inference) forced past the gates and rolled
  back by the canary analysis on real errors, with an incident.
* For the on-call modules: one home with v1 (fp32, production) and v2 (its int8 variant) registered,
  built once per session and copied per module (databases copied, artifacts hard-linked), so each
  module starts from the same registry without exporting the model again; runner pids and waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

STEP = "6s"
SERVER_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CONTROLPLANE_DB_URL", "CONTROLPLANE_INCIDENT_WEBHOOK")


class Ctl:
    """`ctl` in a subprocess. ``env``: what to set on top of a clean environment (by default none of the
    servers' variables, so the embedded SQLite defaults under ``home`` apply)."""

    def __init__(self, home: Path, env: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
        self.env.update({"CONTROLPLANE_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})})

    def __call__(self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controlplane.cli.main", *args],
            env={**self.env, **(env or {})},
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> Any:
        proc = self(*args, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def wait_phase(self, model: str, *phases: str, timeout: float = 180) -> dict[str, Any]:
        """Poll `ctl status MODEL` until the rollout is in one of ``phases``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.json("status", model)
            if status["phase"] in phases:
                return status
            assert time.monotonic() < deadline, f"{model} never reached {phases}: {status}"
            time.sleep(0.5)

    def latest(self, model: str, ref: str) -> dict[str, Any]:
        """The newest rollout of ``ref`` in `ctl history`, with its events and analyses."""
        return max((r for r in self.json("history", model) if r["ref"] == ref), key=lambda r: r["id"])


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(err.splitlines()) == 1, err
    assert fragment and fragment in err, err


def kinds(rollout: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in rollout["events"]]


def step_weights(rollout: dict[str, Any]) -> list[int]:
    return [e["evidence"]["weight"] for e in rollout["events"] if e["kind"] == "StepStarted"]


@pytest.fixture(scope="module")
def minilm() -> Path:
    from controlplane.models import minilm_dir

    return minilm_dir()


def run_story(ctl: Ctl, model: str, minilm: Path, workdir: Path, *, v1_checks: str | None = None,
              v3_env: Mapping[str, str] | None = None) -> dict[str, subprocess.CompletedProcess[str]]:
    """The demo's story for ``model``; returns each command's result by name. ``v1_checks``: run these
    gates on v1 (else --skip-validation); ``v3_env``: extra environment of v3's promote."""
    from controlplane.models.variants import cut_positions

    gate = ["--checks", v1_checks] if v1_checks else ["--skip-validation"]
    runs: dict[str, subprocess.CompletedProcess[str]] = {}
    runs["register v1"] = ctl("register", model, "--model-dir", str(minilm))
    runs["promote v1"] = ctl("promote", f"{model}:v1", *gate, "--step-duration", STEP)
    runs["register v2"] = ctl("register", model, "--model-dir", str(minilm), "--quantize", "int8")
    runs["promote v2"] = ctl("promote", f"{model}:v2", "--skip-validation", "--steps", "5,25,50,100",
                             "--step-duration", STEP)
    broken = cut_positions(minilm, workdir / "minilm-short", 64)
    runs["register v3"] = ctl("register", model, "--model-dir", str(broken))
    runs["promote v3"] = ctl("promote", f"{model}:v3", "--skip-validation", "--step-duration", STEP, env=v3_env)
    return runs


def assert_rolled_back_on_errors(ctl: Ctl, model: str, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """v3 was rolled back because its canary failed requests (slo-burn-errors), not for any other reason
    (a latency regression against the faster int8 stable would also roll it back): the judge's verdict,
    the audit event and the incident all name that failure mode; the incident links its runbook."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    v3 = ctl.latest(model, f"{model}:v3")
    assert (v3["phase"], v3["weight"]) == ("RolledBack", 0), v3["message"]
    failing = [a for a in v3["analysis"] if a["verdict"] == "fail"]
    assert len(failing) == 1 and failing[0] == v3["analysis"][-1], v3["analysis"]
    evidence = failing[0]["evidence"]
    assert evidence["failure_mode"] == "slo-burn-errors", (failing[0]["reason"], evidence.get("failure_mode"))
    assert evidence["canary"]["errors"] > 0, evidence["canary"]
    fired = [b for b in evidence["burn"] if b["status"] == "fired" and b["objective"] == "availability"]
    assert fired and fired[0]["long_burn"] > fired[0]["burn_threshold"], evidence["burn"]
    rolled = [e for e in v3["events"] if e["kind"] == "RolledBack"]
    assert len(rolled) == 1 and rolled[0]["evidence"]["failure_mode"] == "slo-burn-errors"
    assert "StepStarted" in kinds(v3) and kinds(v3)[-1] == "RolledBack"
    mine = [i for i in ctl.json("incident", "list") if i["ref"] == f"{model}:v3"]
    assert [(i["failure_mode"], i["severity"], i["state"], i["runbook"]) for i in mine] == [
        ("slo-burn-errors", "page", "open", "runbooks/slo-burn-errors.md")], mine
    return v3


WAIT_S = 180.0  # generous: a shared 2-core machine


@pytest.fixture(scope="session")
def registered_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 (fp32) promoted to production, v2 (its int8 variant) registered; nothing active."""
    from controlplane.models import minilm_dir

    ctl = Ctl(tmp_path_factory.mktemp("registered"))
    model = str(minilm_dir())
    for args in (
        ("register", "minilm", "--model-dir", model),
        ("promote", "minilm:v1", "--skip-validation", "--step-duration", "1s"),
        ("register", "minilm", "--model-dir", model, "--quantize", "int8"),
    ):
        proc = ctl(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return ctl.home


def copy_home(template: Path, dest: Path) -> Path:
    """A copy of a home: the databases copied (they are written), everything else hard-linked."""

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".db"):
            shutil.copy2(src, dst)
        else:
            os.link(src, dst)

    shutil.copytree(template, dest, copy_function=link_or_copy, ignore=shutil.ignore_patterns("runners", "logs"))
    return dest


@pytest.fixture(scope="module")
def home_ctl(registered_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctl]:
    """A module's own copy of the registered home; any runner still alive at the end is killed."""
    ctl = Ctl(copy_home(registered_home, tmp_path_factory.mktemp("copy") / "home"))
    yield ctl
    for pid in runner_pids(ctl.home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def runner_pids(home: Path) -> list[int]:
    """Pids of the live runners of ``home`` (the holders of their leases)."""
    from controlplane.app.runner_lease import holder_pid

    found = []
    for lease in sorted((home / "runners").glob("rollout-*.lock")):
        pid = holder_pid(home, int(lease.stem.split("-")[1]))
        if pid is not None:
            found.append(pid)
    return found


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_S, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}", pytrace=False)


class Rollouts:
    """Reads a home's store directly (fast polling; the assertions go through `ctl`)."""

    def __init__(self, home: Path) -> None:
        from controlplane.store import SqlStore

        self.home = home
        self.store = SqlStore(f"sqlite:///{home / 'state.db'}")

    def latest(self, model: str = "minilm") -> Any:
        return max(self.store.list_rollouts(model), key=lambda r: r.id)

    def phase(self, model: str = "minilm") -> str:
        return str(self.latest(model).status.get("phase"))

    def log(self, rollout_id: int) -> Path:
        return self.home / "logs" / f"rollout-{rollout_id}.log"

    def wait_phase(self, phase: str, model: str = "minilm", timeout: float = WAIT_S) -> Any:
        record = self.latest(model)
        return wait_for(lambda: (r := self.latest(model)).status.get("phase") == phase and r,
                        f"rollout #{record.id} {phase}", timeout, self.log(record.id))

    def runner_pid(self, rollout_id: int) -> int:
        from controlplane.app.runner_lease import holder_pid

        return int(wait_for(lambda: holder_pid(self.home, rollout_id), f"the runner of #{rollout_id}",
                            log=self.log(rollout_id)))

    def kill_runner(self, rollout_id: int) -> None:
        """SIGKILL the runner driving the rollout and wait until its lease is free."""
        from controlplane.app.runner_lease import is_driven

        os.kill(self.runner_pid(rollout_id), signal.SIGKILL)
        wait_for(lambda: not is_driven(self.home, rollout_id), f"the runner of #{rollout_id} to die")
