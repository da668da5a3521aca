"""A tiny BentoML 1.4 service for the preset tests (served by a real ``bentoml serve`` in its own venv).

``POST /predict {"text": "..."}`` answers the text's length; with ``FAIL_EVERY=N`` in the environment
(0 or unset: never) every N-th request raises, which BentoML answers with a 500.
"""

from __future__ import annotations

import os
import threading

import bentoml  # type: ignore[import-not-found]


@bentoml.service(name="sentiment", workers=1)  # type: ignore[misc]
class Sentiment:
    def __init__(self) -> None:
        self.fail_every = int(os.environ.get("FAIL_EVERY", "0"))
        self.served = 0
        self.lock = threading.Lock()

    @bentoml.api  # type: ignore[misc]
    def predict(self, text: str) -> int:
        with self.lock:
            self.served += 1
            served = self.served
        if self.fail_every and served % self.fail_every == 0:
            raise RuntimeError("injected failure")
        return len(text)
