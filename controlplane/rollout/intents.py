"""Recording a user's intent (pause, resume, abort, rollback) on a rollout, for both targets:
optimistic concurrency, read → check → conditional write, again while the write loses a race."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from controlplane.errors import ConflictError

T = TypeVar("T")
ATTEMPTS = 5


def record_intent(attempt: Callable[[], T | None], what: str, where: str, attempts: int = ATTEMPTS) -> T:
    """``attempt`` reads the rollout, checks the intent applies (raising when it does not) and
    writes conditionally on what it read; it returns None when that write conflicted."""
    for _ in range(attempts):
        result = attempt()
        if result is not None:
            return result
    raise ConflictError(f"could not record {what} on {where}: the rollout kept changing; try again")
