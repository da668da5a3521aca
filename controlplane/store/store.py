"""SqlStore: ``ports.Store`` on SQLite (default) or PostgreSQL. Every mutating call is one
transaction; the database enforces at most one active rollout per model."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.errors import ConflictError, InputError, NotFoundError
from controlplane.ports import AnalysisRecord, EventRecord, IncidentRecord, RolloutRecord, ValidationRecord
from controlplane.store import records
from controlplane.store.db import make_engine, parse_url, safe_url, translate_errors, writer
from controlplane.store.migrate import upgrade
from controlplane.store.models import (
    AnalysisResult,
    Incident,
    Rollout,
    RolloutEvent,
    ValidationRun,
    is_active,
    phase_of,
)

INCIDENT_STATES = ("open", "acknowledged", "resolved")


class SqlStore:
    """The durable record. ``url``: ``sqlite:///PATH`` or ``postgresql+psycopg://...``.
    Opening runs the shipped migrations (``upgrade head``)."""

    def __init__(self, url: str) -> None:
        self._url = parse_url(url)
        self._engine: Engine = make_engine(self._url)
        self._writer: Engine = writer(self._engine)
        with translate_errors(self._url):
            upgrade(self._writer)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return safe_url(self._url)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, write: bool = False, unique_checked: bool = False) -> Iterator[Session]:
        """One transaction. ``unique_checked``: the caller turns IntegrityError into a ConflictError."""
        engine = self._writer if write else self._engine
        with translate_errors(self._url, keep_integrity_errors=unique_checked), Session(engine) as s, s.begin():
            yield s

    # ---- rollouts ------------------------------------------------------------------------

    def create_rollout(self, spec: dict[str, Any], status: dict[str, Any], now: float) -> RolloutRecord:
        spec, status = _json(spec, "spec"), _json(status, "status")
        model, version = _model_version(spec)
        row = Rollout(
            model=model,
            version=version,
            spec=spec,
            status=status,
            phase=phase_of(status),
            active=is_active(status),
            revision=1,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._tx(write=True, unique_checked=True) as s:
                holder = _active_row(s, model) if row.active else None
                if holder is not None:
                    raise ConflictError(_busy(holder))
                s.add(row)
                s.flush()
                return records.rollout(row)
        except IntegrityError:  # a concurrent writer won the race for the model's slot
            pass
        holder_rec = self.active_rollout(model)
        raise ConflictError(_busy(holder_rec) if holder_rec else f"model {model!r} already has an active rollout")

    def get_rollout(self, rollout_id: int) -> RolloutRecord:
        with self._tx() as s:
            return records.rollout(_get_rollout(s, rollout_id))

    def active_rollout(self, model: str) -> RolloutRecord | None:
        with self._tx() as s:
            row = _active_row(s, model)
            return records.rollout(row) if row else None

    def list_rollouts(self, model: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        query = select(Rollout).order_by(Rollout.id)
        if model is not None:
            query = query.where(Rollout.model == model)
        if active_only:
            query = query.where(Rollout.active.is_(True))
        with self._tx() as s:
            return [records.rollout(r) for r in s.scalars(query)]

    def save_rollout(
        self,
        rollout_id: int,
        expected_revision: int,
        spec: dict[str, Any],
        status: dict[str, Any],
        events: Sequence[tuple[str, str, dict[str, Any]]],
        now: float,
    ) -> RolloutRecord:
        spec, status = _json(spec, "spec"), _json(status, "status")
        new_events = [(str(k), str(m), _json(ev, "event evidence")) for k, m, ev in events]
        phase, active = phase_of(status), is_active(status)
        try:
            with self._tx(write=True, unique_checked=True) as s:
                row = _get_rollout(s, rollout_id)
                if (spec.get("model"), spec.get("version")) != (row.model, row.version):
                    raise InputError(f"rollout #{rollout_id} is for {row.model}:v{row.version}; that cannot change")
                result = s.execute(
                    update(Rollout)
                    .where(Rollout.id == rollout_id, Rollout.revision == expected_revision)
                    .values(
                        spec=spec,
                        status=status,
                        phase=phase,
                        active=active,
                        revision=expected_revision + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:
                    raise ConflictError(
                        f"rollout #{rollout_id} was changed by another writer (revision {row.revision}, "
                        f"expected {expected_revision}); reload it and retry"
                    )
                s.add_all(
                    RolloutEvent(rollout_id=rollout_id, at=now, kind=k, message=m, evidence=ev, phase=phase)
                    for k, m, ev in new_events
                )
                s.flush()
                return RolloutRecord(
                    id=row.id,
                    model=row.model,
                    version=row.version,
                    spec=spec,
                    status=status,
                    revision=expected_revision + 1,
                    created_at=row.created_at,
                    updated_at=now,
                )
        except IntegrityError:  # re-activating while another rollout of the model is active
            pass
        holder = self.active_rollout(spec["model"])
        raise ConflictError(_busy(holder) if holder else f"rollout #{rollout_id} cannot become active")

    def list_events(self, rollout_id: int) -> list[EventRecord]:
        with self._tx() as s:
            _get_rollout(s, rollout_id)
            query = select(RolloutEvent).where(RolloutEvent.rollout_id == rollout_id).order_by(RolloutEvent.id)
            return [records.event(r) for r in s.scalars(query)]

    # ---- analysis and validation -----------------------------------------------------------

    def add_analysis(
        self,
        rollout_id: int,
        step_index: int,
        weight: int,
        verdict: str,
        reason: str,
        evidence: dict[str, Any],
        now: float,
    ) -> AnalysisRecord:
        with self._tx(write=True) as s:
            _get_rollout(s, rollout_id)
            row = AnalysisResult(
                rollout_id=rollout_id,
                step_index=step_index,
                weight=weight,
                verdict=str(verdict),
                reason=reason,
                evidence=_json(evidence, "evidence"),
                at=now,
            )
            s.add(row)
            s.flush()
            return records.analysis(row)

    def list_analysis(self, rollout_id: int) -> list[AnalysisRecord]:
        with self._tx() as s:
            _get_rollout(s, rollout_id)
            query = select(AnalysisResult).where(AnalysisResult.rollout_id == rollout_id).order_by(AnalysisResult.id)
            return [records.analysis(r) for r in s.scalars(query)]

    def add_validation(
        self,
        model: str,
        version: int,
        check: str,
        status: str,
        metrics: dict[str, Any],
        findings: list[str],
        thresholds: dict[str, Any],
        run_id: str | None,
        now: float,
    ) -> ValidationRecord:
        row = ValidationRun(
            model=model,
            version=version,
            check_name=check,
            status=str(status),
            metrics=_json(metrics, "metrics"),
            findings=[str(f) for f in findings],
            thresholds=_json(thresholds, "thresholds"),
            run_id=run_id,
            created_at=now,
        )
        with self._tx(write=True) as s:
            s.add(row)
            s.flush()
            return records.validation(row)

    def list_validations(self, model: str, version: int | None = None) -> list[ValidationRecord]:
        query = select(ValidationRun).where(ValidationRun.model == model).order_by(ValidationRun.id)
        if version is not None:
            query = query.where(ValidationRun.version == version)
        with self._tx() as s:
            return [records.validation(r) for r in s.scalars(query)]

    # ---- incidents -------------------------------------------------------------------------

    def open_incident(
        self,
        rollout_id: int | None,
        model: str,
        version: int | None,
        failure_mode: str,
        severity: str,
        summary: str,
        evidence: dict[str, Any],
        runbook: str,
        now: float,
    ) -> IncidentRecord:
        with self._tx(write=True) as s:
            if rollout_id is not None:
                _get_rollout(s, rollout_id)
            row = Incident(
                rollout_id=rollout_id,
                model=model,
                version=version,
                failure_mode=failure_mode,
                severity=severity,
                summary=summary,
                evidence=_json(evidence, "evidence"),
                runbook=runbook,
                state="open",
                opened_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return records.incident(row)

    def get_incident(self, incident_id: int) -> IncidentRecord:
        with self._tx() as s:
            return records.incident(_get_incident(s, incident_id))

    def list_incidents(self, model: str | None = None, state: str | None = None) -> list[IncidentRecord]:
        query = select(Incident).order_by(Incident.id)
        if model is not None:
            query = query.where(Incident.model == model)
        if state is not None:
            query = query.where(Incident.state == _incident_state(state))
        with self._tx() as s:
            return [records.incident(r) for r in s.scalars(query)]

    def set_incident_state(self, incident_id: int, state: str, now: float) -> IncidentRecord:
        state = _incident_state(state)
        with self._tx(write=True) as s:
            row = _get_incident(s, incident_id)
            row.state, row.updated_at = state, now
            s.flush()
            return records.incident(row)


# ---- helpers ---------------------------------------------------------------------------------


def _json(value: Any, what: str) -> Any:
    """A deep, JSON-clean copy (tuples become lists); InputError if it is not JSON."""
    try:
        return json.loads(json.dumps(value if value is not None else {}))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not JSON-serialisable: {exc}") from None


def _model_version(spec: dict[str, Any]) -> tuple[str, int]:
    try:
        return str(spec["model"]), int(spec["version"])
    except (KeyError, TypeError, ValueError):
        raise InputError("a rollout spec needs 'model' (a name) and 'version' (an integer)") from None


def _active_row(s: Session, model: str) -> Rollout | None:
    return s.scalars(select(Rollout).where(Rollout.model == model, Rollout.active.is_(True))).first()


def _get_rollout(s: Session, rollout_id: int) -> Rollout:
    row = s.get(Rollout, rollout_id)
    if row is None:
        raise NotFoundError(f"rollout #{rollout_id} not found")
    return row


def _get_incident(s: Session, incident_id: int) -> Incident:
    row = s.get(Incident, incident_id)
    if row is None:
        raise NotFoundError(f"incident #{incident_id} not found")
    return row


def _busy(holder: Rollout | RolloutRecord) -> str:
    phase = holder.phase if isinstance(holder, Rollout) else phase_of(holder.status)
    return (
        f"model {holder.model!r} already has an active rollout #{holder.id} "
        f"({holder.model}:v{holder.version}, {phase}); abort it or wait"
    )


def _incident_state(state: str) -> str:
    if state not in INCIDENT_STATES:
        raise InputError(f"invalid incident state {state!r}: use open, acknowledged or resolved")
    return state
