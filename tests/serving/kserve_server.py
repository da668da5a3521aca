"""A tiny KServe Python ModelServer for the preset tests (run by the venv's python, not the project's).

``python kserve_server.py --name m --http_port P --fail_every N --delay_ms D``: a v1/v2 predict that sums
its input, raising on every N-th request (0: never) after sleeping D ms.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import kserve  # type: ignore[import-not-found]


class FlakyModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, fail_every: int, delay_ms: float) -> None:
        super().__init__(name)
        self.fail_every = fail_every
        self.delay_s = delay_ms / 1000.0
        self.served = 0
        self.ready = True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        self.served += 1
        if isinstance(payload, bytes | str):  # the v1 endpoint hands over the raw body
            payload = json.loads(payload)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_every and self.served % self.fail_every == 0:
            raise RuntimeError("injected failure")
        return {"predictions": [sum(row) for row in payload["instances"]]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--name", required=True)
    parser.add_argument("--fail_every", type=int, default=0)
    parser.add_argument("--delay_ms", type=float, default=0.0)
    args, _ = parser.parse_known_args()
    model = FlakyModel(args.name, args.fail_every, args.delay_ms)
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start([model])
