"""The one retry loop. Only TemporaryError is retried; everything else propagates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from controlplane.errors import TemporaryError

T = TypeVar("T")


def with_retry(
    fn: Callable[[], T],
    *,
    attempts: int = 4,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on TemporaryError wait its delay (capped, doubling) and try again."""
    delay_floor = 0.1
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TemporaryError as exc:
            if attempt == attempts:
                raise
            sleep(min(max(exc.delay, delay_floor), max_delay))
            delay_floor *= 2
    raise AssertionError("unreachable")
