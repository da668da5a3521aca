"""What the pages show, read from the application layer (never written): plain dicts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from controlplane.app import runbooks
from controlplane.app.context import Context
from controlplane.app.incidents import to_dict as incident_dict
from controlplane.app.rollouts import describe
from controlplane.engine.types import TERMINAL_PHASES
from controlplane.ports import IncidentRecord


def rollouts(ctx: Context) -> list[dict[str, Any]]:
    """Every rollout, newest first, with its live phase and weight."""
    return [describe(ctx, r) for r in sorted(ctx.store.list_rollouts(), key=lambda r: r.id, reverse=True)]


def rollout(ctx: Context, rollout_id: int) -> dict[str, Any]:
    """One rollout with its events, analyses, validations and incidents (NotFoundError if unknown)."""
    record = ctx.store.get_rollout(rollout_id)
    data = describe(ctx, record, with_events=True)
    data["validations"] = [
        {"check": v.check, "status": v.status, "metrics": v.metrics, "findings": v.findings,
         "thresholds": v.thresholds, "at": v.created_at}
        for v in ctx.store.list_validations(record.model, record.version)
    ]
    stable = record.spec.get("stable_version")
    data["incidents"] = [
        incident_view(i, stable if isinstance(stable, int) else None)
        for i in ctx.store.list_incidents(model=record.model)
        if i.rollout_id == record.id
    ]
    return data


def incident(ctx: Context, incident_id: int) -> dict[str, Any]:
    record = ctx.store.get_incident(incident_id)
    stable = None
    if record.rollout_id is not None:
        value = ctx.store.get_rollout(record.rollout_id).spec.get("stable_version")
        stable = value if isinstance(value, int) else None
    return incident_view(record, stable)


def incident_view(record: IncidentRecord, stable: int | None) -> dict[str, Any]:
    """The incident with its runbook rendered for it and the `ctl` commands the runbook gives."""
    data = incident_dict(record)
    book = runbooks.runbook_for(record.failure_mode)
    body = runbooks.render(book, model=record.model, version=record.version, stable=stable, incident=record.id)
    data["runbook_title"] = book.title
    data["runbook_markdown"] = body
    data["commands"] = [f"ctl runbook {record.id}", *runbooks.ctl_commands(body)]
    return data


def terminal(phase: str | None) -> bool:
    return phase in {p.value for p in TERMINAL_PHASES}


def etag(data: Any) -> str:
    """A short fingerprint of what a page shows: the page script reloads when it changes."""
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
