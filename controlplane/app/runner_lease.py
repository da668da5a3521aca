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


@contextlib.contextmanager
def try_hold(home: Path, rollout_id: int) -> Iterator[bool]:
    """Hold the lease if it is free: yields True while held, False when a runner holds it."""
    try:
        lease = hold(home, rollout_id)
        lease.__enter__()
    except ConflictError:
        yield False
        return
    try:
        yield True
    finally:
        lease.__exit__(None, None, None)


def holder_pid(home: Path, rollout_id: int) -> int | None:
    """The pid of the live runner holding the lease, None when nobody holds it."""
    if not is_driven(home, rollout_id):
        return None
    text = lease_path(home, rollout_id).read_text().strip()
    return int(text) if text.isdigit() else None


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
