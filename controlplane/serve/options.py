"""What ``ctl serve`` is told: the model reference, where to listen, and the batching and input limits.

The pod template sets ``MODEL_URI`` (kept current by the controller) and ``MODEL_ROLE`` (from the pod's
``rollouts.attn-controlplane.dev/role`` label through the downward API).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from controlplane.errors import InputError

MODEL_URI_ENV = "MODEL_URI"
ROLE_ENV = "MODEL_ROLE"
DEFAULT_ROLE = "standalone"
DEFAULT_PORT = 8000
PROVIDERS_ENV = "SERVE_PROVIDERS"  # e.g. "CPUExecutionProvider" to keep a GPU image on CPU


@dataclass(frozen=True)
class ServeOptions:
    model_ref: str
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    role: str = DEFAULT_ROLE
    max_batch_tokens: int = 16384  # padded tokens (texts x longest) per inference call
    max_wait_ms: float = 1.0  # how long a batch may wait for more requests once one is queued
    max_queue_texts: int = 1024  # texts accepted but not yet run; beyond: 503 + Retry-After
    max_request_texts: int = 256  # texts in one request; beyond: 413
    max_body_bytes: int = 4 << 20
    truncate: bool = True  # texts longer than the model's length: cut (counted) or refused (413)
    drain_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    threads: int | None = None  # onnxruntime intra-op threads (None: one per core)

    def __post_init__(self) -> None:
        checks = {
            "--port": 0 <= self.port <= 65535,
            "--max-batch-tokens": self.max_batch_tokens >= 1,
            "--max-wait-ms": self.max_wait_ms >= 0,
            "--max-queue": self.max_queue_texts >= 1,
            "--max-request-texts": self.max_request_texts >= 1,
            "--drain-seconds": self.drain_s >= 0,
        }
        if self.max_request_texts > self.max_queue_texts:
            raise InputError("--max-request-texts must not exceed --max-queue")
        bad = [flag for flag, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"{bad[0]} is out of range")


def model_ref_from(argument: str | None, env: dict[str, str] | None = None) -> str:
    """The argument, else ``$MODEL_URI``; InputError when neither is given."""
    env = dict(os.environ if env is None else env)
    ref = argument or env.get(MODEL_URI_ENV, "").strip()
    if not ref:
        raise InputError(f"no model to serve: pass MODEL_REF (models:/NAME/N, NAME:vN, NAME@alias) or set {MODEL_URI_ENV}")
    return ref


def role_from(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ if env is None else env)
    return env.get(ROLE_ENV, "").strip() or DEFAULT_ROLE
