"""`ctl dashboard` in a subprocess on a free port, for the tests that read its pages."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator

from tests.e2e.conftest import Ctl


@contextlib.contextmanager
def dashboard(ctl: Ctl) -> Iterator[str]:
    """Start `ctl dashboard --port 0` on ``ctl``'s home; yield its base URL; stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli.main", "dashboard", "--port", "0"],
        env=ctl.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the URL line, printed once listening
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield match.group(0).rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
