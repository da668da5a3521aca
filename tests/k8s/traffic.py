"""A load generator for the gateway: embeddings requests at a fixed rate (open loop: a slow answer never
delays the next request), drawing each request's length from a mix (seeded random, not a cycle: a weighted
round robin sends the canary every n-th request, which a cycle would always fill with the same length),
every answer recorded."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

SENTENCE = ("the model server answers embeddings for short queries and for long documents alike while the "
            "canary takes a growing share of the traffic through the gateway")
WORDS = tuple(SENTENCE.split(" "))


def text(tokens: int) -> str:
    """About ``tokens`` word-piece tokens of plain English."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(tokens))


#: (name, approximate tokens, share of the requests): short queries, sentences, and passages longer than 64
#: tokens (what a model with its position table cut to 64 rows cannot embed).
MIX = (("short", 6, 0.4), ("medium", 40, 0.3), ("long", 110, 0.3))


@dataclass
class Answer:
    at: float  # time.time() when sent
    kind: str
    status: int  # 0: no HTTP answer
    latency_s: float


@dataclass
class Load:
    url: str
    host: str
    rate: float = 10.0
    answers: list[Answer] = field(default_factory=list)

    seed: int = 14

    def __post_init__(self) -> None:
        self._bodies = [(name, {"input": text(tokens)}) for name, tokens, _ in MIX]
        self._weights = [share for _, _, share in MIX]
        self._random = random.Random(self.seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._run, name="load-scheduler", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def _client(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(base_url=self.url, headers={"Host": self.host}, timeout=30)
        return self._local.client  # type: ignore[no-any-return]

    def _send(self, kind: str, body: dict[str, str]) -> None:
        sent, started = time.time(), time.monotonic()
        try:
            status = self._client().post("/v1/embeddings", json=body).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.answers.append(Answer(sent, kind, status, time.monotonic() - started))

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            kind, body = self._random.choices(self._bodies, self._weights)[0]
            self._pool.submit(self._send, kind, body)
            next_at += 1.0 / self.rate
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pool.shutdown(wait=True)

    def statuses(self, since: float = 0.0) -> Counter[int]:
        with self._lock:
            return Counter(a.status for a in self.answers if a.at >= since)

    def failed(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.status != 200]
