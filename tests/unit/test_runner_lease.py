"""One runner per local rollout: the lease is an OS lock, so a dead runner never blocks a new one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.app.runner_lease import hold, is_driven
from controlplane.errors import ConflictError


def test_a_second_runner_is_refused_while_the_first_holds_the_lease(tmp_path: Path) -> None:
    assert not is_driven(tmp_path, 7)
    with hold(tmp_path, 7):
        assert is_driven(tmp_path, 7)
        with pytest.raises(ConflictError, match="already driven"), hold(tmp_path, 7):
            pass
        assert not is_driven(tmp_path, 8)
    assert not is_driven(tmp_path, 7)


def test_a_killed_runner_leaves_no_stale_lease(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; from controlplane.app.runner_lease import hold\n"
        f"with hold(Path({str(tmp_path)!r}), 3):\n    print('held', flush=True); os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "held" and proc.returncode == 9
    assert not is_driven(tmp_path, 3)
    with hold(tmp_path, 3):
        assert is_driven(tmp_path, 3)
