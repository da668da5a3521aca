"""The controller's work queue: each key at most once in the queue and never processed by two
workers at once (as client-go's workqueue), with a due time per key for requeues."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

Key = tuple[str, str]  # (namespace, name)


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[Key, float] = {}  # queued keys and when they are due
        self._heap: list[tuple[float, Key]] = []
        self._active: set[Key] = set()  # being processed
        self._again: dict[Key, float] = {}  # added while active: queued when done
        self._cond = threading.Condition()
        self._closed = False

    def add(self, key: Key, after: float = 0.0) -> None:
        """Queue ``key`` to be due in ``after`` seconds (an earlier due time wins)."""
        with self._cond:
            due = self._clock() + max(0.0, after)
            if key in self._active:
                self._again[key] = min(due, self._again.get(key, due))
                return
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cond.notify()

    def forget(self, key: Key) -> None:
        with self._cond:
            self._due.pop(key, None)
            self._again.pop(key, None)

    def get(self, timeout: float = 1.0) -> Key | None:
        """The next due key (marked active), or None after ``timeout`` or when closed."""
        deadline = self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # stale entry
                if self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    self._active.add(key)
                    return key
                wait = deadline - now
                if wait <= 0:
                    return None
                if self._heap:
                    wait = min(wait, self._heap[0][0] - now)
                self._cond.wait(max(wait, 0.001))
            return None

    def done(self, key: Key) -> None:
        with self._cond:
            self._active.discard(key)
            due = self._again.pop(key, None)
        if due is not None:
            self.add(key, max(0.0, due - self._clock()))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)
