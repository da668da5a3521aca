"""Incidents: opened on rollback, failed validation and inconclusive pauses; acknowledged and resolved by people.

An incident is typed by failure mode, carries the decision's evidence and links the matching runbook.
Opening is deduplicated: while an incident for the same model, version, failure mode and rollout is
open or acknowledged, opening it again returns that one instead of paging twice.

``$CONTROLPLANE_INCIDENT_WEBHOOK`` (optional): a Slack-compatible JSON POST per new incident, sent from a
daemon thread with retries, so a slow or dead webhook never blocks a rollback.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from typing import Any

from controlplane.app.runbooks import runbook_link
from controlplane.errors import InputError, PermanentError, TemporaryError
from controlplane.ports import IncidentRecord, Store
from controlplane.retry import with_retry

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
ACTIVE_STATES = (OPEN, ACKNOWLEDGED)
SEVERITIES = ("page", "ticket")
WEBHOOK_ENV = "CONTROLPLANE_INCIDENT_WEBHOOK"


def open_incident(
    store: Store,
    *,
    failure_mode: str,
    severity: str,
    summary: str,
    evidence: dict[str, Any],
    rollout_id: int | None,
    model: str,
    version: int | None,
    now: float,
    webhook: str | None = None,
) -> IncidentRecord:
    """Open (or return the still-active duplicate of) an incident, linked to its runbook."""
    if severity not in SEVERITIES:
        raise InputError(f"incident severity must be page or ticket, got {severity!r}")
    for existing in store.list_incidents(model=model):
        if (
            existing.state in ACTIVE_STATES
            and existing.failure_mode == failure_mode
            and existing.version == version
            and existing.rollout_id == rollout_id
        ):
            return existing
    record = store.open_incident(
        rollout_id, model, version, failure_mode, severity, summary, evidence, runbook_link(failure_mode), now
    )
    url = webhook if webhook is not None else os.environ.get(WEBHOOK_ENV)
    if url:
        notify_async(url, record)
    return record


def list_incidents(store: Store, model: str | None = None, state: str | None = None) -> list[IncidentRecord]:
    if state == "active":
        return [i for i in store.list_incidents(model=model) if i.state in ACTIVE_STATES]
    return store.list_incidents(model=model, state=state)


def acknowledge(store: Store, incident_id: int, now: float) -> IncidentRecord:
    """open → acknowledged (idempotent); a resolved incident cannot be acknowledged."""
    current = store.get_incident(incident_id)
    if current.state == ACKNOWLEDGED:
        return current
    if current.state == RESOLVED:
        raise InputError(f"incident #{incident_id} is already resolved")
    return store.set_incident_state(incident_id, ACKNOWLEDGED, now)


def resolve(store: Store, incident_id: int, now: float) -> IncidentRecord:
    """open or acknowledged → resolved (idempotent)."""
    current = store.get_incident(incident_id)
    if current.state == RESOLVED:
        return current
    return store.set_incident_state(incident_id, RESOLVED, now)


def to_dict(incident: IncidentRecord) -> dict[str, Any]:
    return {
        "id": incident.id,
        "rollout_id": incident.rollout_id,
        "model": incident.model,
        "version": incident.version,
        "ref": f"{incident.model}:v{incident.version}" if incident.version is not None else incident.model,
        "failure_mode": incident.failure_mode,
        "severity": incident.severity,
        "state": incident.state,
        "summary": incident.summary,
        "runbook": incident.runbook,
        "opened_at": incident.opened_at,
        "updated_at": incident.updated_at,
        "evidence": incident.evidence,
    }


# ---- webhook ---------------------------------------------------------------------------


def slack_payload(incident: IncidentRecord) -> dict[str, Any]:
    ref = f"{incident.model}:v{incident.version}" if incident.version is not None else incident.model
    text = (
        f"[{incident.severity.upper()}] incident #{incident.id} {incident.failure_mode} on {ref}: "
        f"{incident.summary}\nrunbook: {incident.runbook} (`ctl runbook {incident.id}`)"
    )
    return {"text": text, "incident": {k: v for k, v in to_dict(incident).items() if k != "evidence"}}


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float = 3.0, attempts: int = 3) -> None:
    """POST JSON; 5xx, 429 and network errors are retried, anything else raises PermanentError."""
    body = json.dumps(payload, default=str).encode()

    def once() -> None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise TemporaryError(f"webhook HTTP {exc.code}", 0.5) from None
            raise PermanentError(f"webhook HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TemporaryError(f"webhook unreachable: {exc}", 0.5) from None

    with_retry(once, attempts=attempts, max_delay=2.0)


def notify_async(url: str, incident: IncidentRecord) -> threading.Thread:
    """Send the notification from a daemon thread; failures are swallowed (the store has the incident)."""

    def send() -> None:
        try:
            post_webhook(url, slack_payload(incident))
        except Exception:  # a notifier must never take the control loop down
            return

    thread = threading.Thread(target=send, name=f"incident-webhook-{incident.id}", daemon=True)
    thread.start()
    return thread
