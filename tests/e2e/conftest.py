"""Shared by the on-call end-to-end modules: one home with the real all-MiniLM-L6-v2 registered
(v1 fp32 holding production, v2 its int8 variant), built once per session and copied per module
(databases copied, artifacts hard-linked), so each module starts from the same registry without
exporting the model again. The `ctl` runner and the one-line check are test_local_flow's."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_local_flow import Ctl

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
