"""A crash of ctl is its own exit code (70, sysexits EX_SOFTWARE), never 1 ("the rollout failed")
nor 2 ("bad input"): one line naming the error and the log holding its traceback; --debug shows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from controlplane.cli.common import handle_errors
from controlplane.errors import EXIT_FAILED, EXIT_SOFTWARE, EXIT_USAGE, CheckFailed, InputError


def test_exit_codes_are_distinct() -> None:
    assert len({EXIT_FAILED, EXIT_USAGE, EXIT_SOFTWARE}) == 3 and EXIT_SOFTWARE == 70


@pytest.mark.parametrize(
    ("exc", "code"),
    [(InputError("bad ref"), EXIT_USAGE), (CheckFailed("gate failed"), EXIT_FAILED), (KeyError("phase"), EXIT_SOFTWARE),
     (TypeError("f() missing 1 required positional argument: 'timeout_s'"), EXIT_SOFTWARE)],
)
def test_handle_errors_maps_each_kind_to_its_code(exc: Exception, code: int, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONTROLPLANE_HOME", str(tmp_path))

    @handle_errors
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as raised:
        command()
    assert raised.value.exit_code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    if code == EXIT_SOFTWARE:
        assert err.startswith(f"error: unexpected {type(exc).__name__}: ")
        (log,) = logs
        assert str(log) in err
        assert "Traceback (most recent call last)" in log.read_text() and type(exc).__name__ in log.read_text()
    else:
        assert not logs, "an expected error is no crash: nothing logged"


def _broken_home(home: Path) -> None:
    """A store holding a rollout in a phase this ctl does not know (as a newer version would write)."""
    from controlplane.store import SqlStore

    with SqlStore(f"sqlite:///{home / 'state.db'}") as store:
        store.create_rollout({"model": "minilm", "version": 2, "stable_version": 1},
                             {"phase": "Quarantined", "weight": 5, "step_index": 0}, 0.0)


def _ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTROLPLANE_HOME": str(home)}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CONTROLPLANE_DB_URL"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_crash_through_the_cli_exits_70_with_one_line_and_a_log(tmp_path: Path) -> None:
    _broken_home(tmp_path)
    proc = _ctl(tmp_path, "pause", "minilm")
    assert proc.returncode == EXIT_SOFTWARE, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stdout + proc.stderr, err
    assert "unexpected ValueError: 'Quarantined' is not a valid Phase" in err, err
    match = re.search(r"traceback in (\S+\.log);", err)
    assert match, err
    log = Path(match.group(1))
    assert log.parent == tmp_path / "logs" and "Traceback (most recent call last)" in log.read_text()
    assert "ctl pause minilm" in log.read_text()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    _broken_home(tmp_path)
    proc = _ctl(tmp_path, "--debug", "pause", "minilm")
    assert proc.returncode == EXIT_SOFTWARE and "Traceback (most recent call last)" in proc.stderr
    assert "ValueError: 'Quarantined' is not a valid Phase" in proc.stderr
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").glob("crash-*.log"))
