"""The controller's work queue (pure logic: the clock is passed in; real threads for close)."""

from __future__ import annotations

import threading

from controlplane.app.controller_queue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_key_once_earliest_due_wins() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add(("ns", "a"), after=5)
    q.add(("ns", "a"), after=1)  # earlier wins
    q.add(("ns", "a"), after=9)  # later is ignored
    q.add(("ns", "b"), after=3)
    assert len(q) == 2
    assert q.get(timeout=0) is None
    clock.now = 1.0
    assert q.get(timeout=0) == ("ns", "a")
    assert q.get(timeout=0) is None
    clock.now = 3.0
    assert q.get(timeout=0) == ("ns", "b")


def test_a_key_being_processed_is_not_handed_out_twice() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add(("ns", "a"))
    key = q.get(timeout=0)
    q.add(("ns", "a"))  # an event while a worker holds it
    assert q.get(timeout=0) is None
    q.done(key)  # type: ignore[arg-type]
    assert q.get(timeout=0) == ("ns", "a")


def test_forget_and_close() -> None:
    q = WorkQueue()
    q.add(("ns", "a"))
    q.forget(("ns", "a"))
    assert q.get(timeout=0.01) is None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    waiter.start()
    q.close()
    waiter.join(2)
    assert got == [None] and not waiter.is_alive()
