"""The one retry loop: what it retries, how long it waits, when it gives up."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controlplane.errors import InputError, PermanentError, TemporaryError
from controlplane.retry import with_retry


def flaky(failures: list[Exception], result: str = "ok") -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return result

    return fn, calls


def test_temporary_errors_are_retried_with_their_delay_floor_and_cap() -> None:
    slept: list[float] = []
    fn, calls = flaky([TemporaryError("503", delay=0.0), TemporaryError("429", delay=3.0), TemporaryError("x", 60.0)])
    assert with_retry(fn, attempts=4, max_delay=5.0, jitter=0.0, sleep=slept.append) == "ok"
    assert len(calls) == 4
    assert slept == [0.1, 3.0, 5.0]  # the floor, the server's Retry-After, the cap


def test_gives_up_after_the_attempts_with_the_last_error() -> None:
    slept: list[float] = []
    fn, calls = flaky([TemporaryError(f"try {i}") for i in range(5)])
    with pytest.raises(TemporaryError, match="try 2"):
        with_retry(fn, attempts=3, sleep=slept.append)
    assert len(calls) == 3 and len(slept) == 2


@pytest.mark.parametrize("error", [PermanentError("403"), InputError("bad"), ValueError("bug")])
def test_anything_but_a_temporary_error_propagates_at_once(error: Exception) -> None:
    slept: list[float] = []
    fn, calls = flaky([error])
    with pytest.raises(type(error)):
        with_retry(fn, sleep=slept.append)
    assert len(calls) == 1 and slept == []


def test_jitter_stays_within_its_share() -> None:
    slept: list[float] = []
    fn, _ = flaky([TemporaryError("x", delay=1.0)] * 3)
    with_retry(fn, attempts=4, jitter=0.2, sleep=slept.append)
    assert all(1.0 <= s <= 1.2 for s in slept)
