"""The dashboard's HTTP server (the standard library's threading server: nothing to install). Read-only:
GET and HEAD only. Loopback by default; any other address only when asked for explicitly."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol

from controlplane.app.context import Context
from controlplane.dashboard import data, pages
from controlplane.errors import InputError, NotFoundError

STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Response = tuple[int, str, bytes]


def check_bind(host: str, allow_remote: bool, flag: str = "--allow-remote") -> None:
    """InputError unless ``host`` is a loopback address (or ``allow_remote``): the dashboard has no login."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InputError(
            f"refusing to bind the dashboard to {host!r}: not a loopback address and the dashboard has no "
            f"authentication (use {flag} to bind it anyway)"
        )


class Dashboard:
    """Routes to responses; kept apart from the socket so a benchmark can render pages directly."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.store  # noqa: B018  open the store (and run its migrations) once, before any request thread
        self.routes: list[tuple[re.Pattern[str], Callable[..., Response]]] = [
            (re.compile(r"/"), self.index),
            (re.compile(r"/rollouts/(\d+)"), self.rollout),
            (re.compile(r"/incidents/(\d+)"), self.incident),
            (re.compile(r"/api/rollouts"), self.api_rollouts),
            (re.compile(r"/api/rollouts/(\d+)"), self.api_rollout),
            (re.compile(r"/static/([a-z.]+)"), self.static),
        ]

    def handle(self, path: str) -> Response:
        return dispatch(self.routes, path)

    def index(self) -> Response:
        rollouts = data.rollouts(self.ctx)
        return html(pages.rollouts_page(rollouts, data.etag(rollouts)))

    def rollout(self, rollout_id: str) -> Response:
        r = data.rollout(self.ctx, int(rollout_id))
        return html(pages.rollout_page(r, data.etag(r), live=not data.terminal(r["phase"])))

    def incident(self, incident_id: str) -> Response:
        return html(pages.incident_page(data.incident(self.ctx, int(incident_id))))

    def api_rollouts(self) -> Response:
        rollouts = data.rollouts(self.ctx)
        return as_json({"etag": data.etag(rollouts), "terminal": False, "rollouts": rollouts})

    def api_rollout(self, rollout_id: str) -> Response:
        r = data.rollout(self.ctx, int(rollout_id))
        return as_json({"etag": data.etag(r), "terminal": data.terminal(r["phase"]), "rollout": r})

    def static(self, name: str) -> Response:
        return static(name)


def static(name: str) -> Response:
    """One of the package's own assets (no CDN)."""
    if name not in STATIC:
        raise NotFoundError(f"no asset {name}")
    body = resources.files("controlplane.dashboard").joinpath("static", name).read_bytes()
    return HTTPStatus.OK, STATIC[name], body


class Handles(Protocol):
    def handle(self, path: str) -> Response: ...


def html(text: str, status: int = HTTPStatus.OK) -> Response:
    return status, "text/html; charset=utf-8", text.encode()


def as_json(payload: Any, status: int = HTTPStatus.OK) -> Response:
    return status, "application/json", json.dumps(payload, default=str).encode()


def make_server(dashboard: Handles, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ctl-dashboard"

        def do_GET(self) -> None:
            self._respond(send_body=True)

        def do_HEAD(self) -> None:
            self._respond(send_body=False)

        def _respond(self, send_body: bool) -> None:
            status, content_type, body = dashboard.handle(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
            return

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    try:
        server = Server((host, port), Handler)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server


def dispatch(routes: list[tuple[re.Pattern[str], Callable[..., Response]]], path: str,
             errors: tuple[tuple[type[Exception], HTTPStatus], ...] = ()) -> Response:
    """The first route matching ``path`` (query string ignored); a NotFoundError, or one of ``errors``,
    becomes an error page with its status."""
    for pattern, view in routes:
        match = pattern.fullmatch(path.split("?", 1)[0])
        if match:
            try:
                return view(*match.groups())
            except NotFoundError as exc:
                return html(pages.not_found(str(exc)), HTTPStatus.NOT_FOUND)
            except tuple(kind for kind, _ in errors) as exc:
                status = next(code for kind, code in errors if isinstance(exc, kind))
                return html(pages.not_found(str(exc)), status)
    return html(pages.not_found(f"no page at {path}"), HTTPStatus.NOT_FOUND)
