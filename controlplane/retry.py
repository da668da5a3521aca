"""The one retry loop of the project, used by every adapter and the action interpreter.

Only ``TemporaryError`` is retried (timeouts, 409, 429, 5xx); a ``PermanentError`` or anything else
propagates at once. The wait honours the error's own delay (an HTTP ``Retry-After``), never less than
an exponential floor (0.1 s, 0.2 s, 0.4 s, ...), with a little jitter so that replicas do not retry
in step, and capped at ``max_delay``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from controlplane.errors import TemporaryError

T = TypeVar("T")
FLOOR_S = 0.1


def with_retry(
    fn: Callable[[], T],
    *,
    attempts: int = 4,
    max_delay: float = 5.0,
    jitter: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` up to ``attempts`` times; between tries wait as the module says."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TemporaryError as exc:
            if attempt >= attempts:
                raise
            base = max(exc.delay, FLOOR_S * 2 ** (attempt - 1))
            sleep(min(max_delay, base * (1 + random.random() * jitter)))
    raise AssertionError("unreachable")
