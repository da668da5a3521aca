"""One runner per local rollout, enforced by an OS file lock (released when the process dies,
so a crashed runner never leaves a stale lease behind)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from controlplane.errors import ConflictError


def lease_path(home: Path, rollout_id: int) -> Path:
    return home / "runners" / f"rollout-{rollout_id}.lock"


@contextlib.contextmanager
def hold(home: Path, rollout_id: int) -> Iterator[None]:
    path = lease_path(home, rollout_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise ConflictError(f"rollout #{rollout_id} is already driven by another runner (pid {owner})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_driven(home: Path, rollout_id: int) -> bool:
    """Whether a live process holds the rollout's lease."""
    path = lease_path(home, rollout_id)
    if not path.exists():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
