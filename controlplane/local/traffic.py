"""Traffic for the local target: real inference requests from a corpus, at a bounded rate."""

from __future__ import annotations

import itertools
import threading
import time

from controlplane.local.fleet import Fleet
from controlplane.local.router import LocalRouter


class TrafficGenerator:
    """Sends one text per request through the router to the fleet, ``rate`` requests per second
    per worker, on ``workers`` threads, until stopped."""

    def __init__(self, fleet: Fleet, router: LocalRouter, corpus: list[str], rate: float = 40.0, workers: int = 2):
        self.fleet = fleet
        self.router = router
        self.corpus = corpus
        self.rate = rate
        self.workers = workers
        self.sent = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._texts = itertools.cycle(corpus)
        self._lock = threading.Lock()

    def _next_text(self) -> str:
        with self._lock:
            self.sent += 1
            return next(self._texts)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        while not self._stop.is_set():
            started = time.perf_counter()
            role = self.router.pick()
            if self.fleet.get(role) is None:
                role = "stable"
            self.fleet.serve(role, [self._next_text()])
            self._stop.wait(max(0.0, interval - (time.perf_counter() - started)))

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"traffic-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
