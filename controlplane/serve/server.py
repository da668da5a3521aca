"""Run the server: resolve and verify before listening, then uvicorn (httptools, uvloop) with the model
loading in the background. SIGTERM/SIGINT: stop accepting, finish in-flight requests (at most
``drain_s``), exit 0. A model that fails to load makes the server stop and ``serve`` raise InputError.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from types import FrameType

from controlplane.errors import InputError
from controlplane.serve.options import ServeOptions


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(options: ServeOptions) -> None:
    """Blocks until SIGTERM (then returns) or a load failure (then raises InputError)."""
    from controlplane.extras import require

    require("serve", "ctl serve")  # the one-line hint naming the extra, before any import that would fail
    import uvicorn

    from controlplane.serve import loader
    from controlplane.serve.app import ServerState, create_app

    started = time.perf_counter()
    fetched = loader.resolve_and_fetch(options.model_ref)
    state = ServerState(fetched, options, lambda: loader.load(fetched, options.truncate, options.threads), started)
    sock = listen(options.host, options.port)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    config = uvicorn.Config(
        create_app(state),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=options.drain_s,
        timeout_keep_alive=30,
    )
    server = _graceful_server(uvicorn.Server)(config)

    def stop(message: str) -> None:
        server.should_exit = True

    state.on_fatal = stop
    print(f"serving {fetched.version.ref} on http://{options.host}:{sock.getsockname()[1]} (role {options.role})",
          file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    if state.fatal:
        raise InputError(f"cannot serve {fetched.version.ref}: {state.fatal}")


def _graceful_server(base: type) -> type:
    """uvicorn's Server, except that after draining on SIGTERM the process exits 0: uvicorn re-raises the
    signal it caught, which would end the process with -15 on every pod rotation."""

    class GracefulServer(base):  # type: ignore[misc, valid-type]
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting for in-flight requests
            else:
                self.should_exit = True

    return GracefulServer
