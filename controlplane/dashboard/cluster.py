"""The dashboard under the controller (``ctl controller run --dashboard-port``): the same pages for cluster
rollouts, read from the API server with the controller's own identity, so it shows exactly what the
controller's RBAC lets it read. A namespace or a rollout it may not read is a one-line notice (the API
server's 403), never a guess. Read-only; loopback unless asked otherwise (``server.check_bind``); reached
with ``kubectl port-forward``.

A rollout's page is built from its resource: ``status.history`` (the decisions, analyses and incidents the
controller recorded, scalars only) and ``status`` (phase, weight, step). Burn windows, comparison series
and validation metrics are not kept in the resource, so those sections stay empty here (incidents show as
``Incident`` entries of the audit log); the audit store (``--audit-db``) keeps the full evidence.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.app import kube_rollout as cr_
from controlplane.dashboard import data, pages
from controlplane.dashboard.server import Response, as_json, dispatch, html, make_server, static
from controlplane.errors import ControlPlaneError, NotFoundError, PermanentError

NAME = r"([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"  # a DNS-1123 label
_VERDICT = re.compile(r": (pass|fail|inconclusive) \(")


class ClusterDashboard:
    """Routes for the cluster rollouts of ``namespaces`` (None in it: every namespace), read through ``client``."""

    def __init__(self, client: KubeClient, namespaces: Sequence[str | None]) -> None:
        self.client, self.namespaces = client, list(namespaces)
        self.routes: list[tuple[re.Pattern[str], Callable[..., Response]]] = [
            (re.compile(r"/"), self.index),
            (re.compile(rf"/rollouts/{NAME}/{NAME}"), self.rollout),
            (re.compile(r"/api/rollouts"), self.api_rollouts),
            (re.compile(rf"/api/rollouts/{NAME}/{NAME}"), self.api_rollout),
            (re.compile(r"/static/([a-z.]+)"), static),
        ]

    def handle(self, path: str) -> Response:
        # PermanentError: a 401/403, what the controller's RBAC does not let it read
        return dispatch(self.routes, path, errors=((PermanentError, HTTPStatus.FORBIDDEN),))

    def listing(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every readable rollout, and one line per namespace that could not be listed."""
        rows, problems = [], []
        for namespace in self.namespaces:
            try:
                items = self.client.list_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace)
            except ControlPlaneError as exc:
                problems.append(f"namespace {namespace or '(all)'}: {exc}")
                continue
            rows += [summary(cr) for cr in items]
        return sorted(rows, key=lambda r: r["id"]), problems

    def detail(self, namespace: str, name: str) -> dict[str, Any]:
        if None not in self.namespaces and namespace not in self.namespaces:
            shown = ", ".join(n for n in self.namespaces if n)
            raise NotFoundError(f"namespace {namespace} is not one this dashboard shows ({shown})")
        return details(self.client.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name))

    def index(self) -> Response:
        rows, problems = self.listing()
        return html(pages.rollouts_page(rows, data.etag([rows, problems]), problems))

    def rollout(self, namespace: str, name: str) -> Response:
        r = self.detail(namespace, name)
        return html(pages.rollout_page(r, data.etag(r), live=not data.terminal(r["phase"])))

    def api_rollouts(self) -> Response:
        rows, problems = self.listing()
        return as_json({"etag": data.etag([rows, problems]), "terminal": False, "rollouts": rows, "problems": problems})

    def api_rollout(self, namespace: str, name: str) -> Response:
        r = self.detail(namespace, name)
        return as_json({"etag": data.etag(r), "terminal": data.terminal(r["phase"]), "rollout": r})


def summary(cr: dict[str, Any]) -> dict[str, Any]:
    """A ModelRollout as a row of the rollouts list (the shape ``app.rollouts.describe`` gives local ones)."""
    meta, spec, status = cr.get("metadata") or {}, cr_.spec_of(cr), cr.get("status") or {}
    history = status.get("history") or []
    created = _epoch(meta.get("creationTimestamp"))
    return {
        "id": f"{meta.get('namespace')}/{meta.get('name')}",
        "model": spec.get("model"),
        "version": spec.get("version"),
        "ref": f"{spec.get('model')}:v{spec.get('version')}",
        "stable_version": status.get("stableVersion"),
        "phase": status.get("phase") or "Pending",
        "weight": status.get("weight", 0),
        "step": status.get("stepIndex"),
        "steps": spec.get("steps"),
        "message": status.get("message"),
        "deadline_at": (status.get("state") or {}).get("deadline_at"),
        "created_at": created,
        "updated_at": history[-1].get("at") if history else created,
    }


def details(cr: dict[str, Any]) -> dict[str, Any]:
    """One rollout's page data from its resource's history."""
    out = summary(cr)
    history = (cr.get("status") or {}).get("history") or []
    events = [
        {"at": e.get("at"), "kind": e.get("kind"), "phase": e.get("phase"), "message": e.get("message", ""),
         "evidence": {**(e.get("evidence") or {}), "weight": e.get("weight")}}
        for e in history if e.get("kind") != "Analysis"
    ]  # fmt: skip
    analysis = []
    for e in history:
        if e.get("kind") == "Analysis":
            verdict = _VERDICT.search(str(e.get("message", "")))
            analysis.append({"step": e.get("stepIndex"), "weight": e.get("weight"), "reason": e.get("message", ""),
                             "verdict": verdict.group(1) if verdict else "recorded", "evidence": e.get("evidence") or {}})
    out.update(events=events, analysis=analysis, validations=[], incidents=[])
    return out


def _epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def start(client: KubeClient, namespaces: Sequence[str | None], host: str, port: int) -> ThreadingHTTPServer:
    """Serve the cluster dashboard from a daemon thread (``port`` 0: a free one); the caller shuts it down."""
    server = make_server(ClusterDashboard(client, namespaces), host, port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="dashboard", daemon=True).start()
    return server
