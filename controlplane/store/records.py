"""Rows to the record dataclasses of ``controlplane.ports``."""

from __future__ import annotations

from controlplane.ports import AnalysisRecord, EventRecord, IncidentRecord, RolloutRecord, ValidationRecord
from controlplane.store.models import AnalysisResult, Incident, Rollout, RolloutEvent, ValidationRun


def rollout(row: Rollout) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        model=row.model,
        version=row.version,
        spec=dict(row.spec),
        status=dict(row.status),
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def event(row: RolloutEvent) -> EventRecord:
    return EventRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        at=row.at,
        kind=row.kind,
        message=row.message,
        evidence=dict(row.evidence),
        phase=row.phase,
    )


def analysis(row: AnalysisResult) -> AnalysisRecord:
    return AnalysisRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        step_index=row.step_index,
        weight=row.weight,
        verdict=row.verdict,
        reason=row.reason,
        evidence=dict(row.evidence),
        at=row.at,
    )


def validation(row: ValidationRun) -> ValidationRecord:
    return ValidationRecord(
        id=row.id,
        model=row.model,
        version=row.version,
        check=row.check_name,
        status=row.status,
        metrics=dict(row.metrics),
        findings=list(row.findings),
        thresholds=dict(row.thresholds),
        run_id=row.run_id,
        created_at=row.created_at,
    )


def incident(row: Incident) -> IncidentRecord:
    return IncidentRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        model=row.model,
        version=row.version,
        failure_mode=row.failure_mode,
        severity=row.severity,
        summary=row.summary,
        evidence=dict(row.evidence),
        runbook=row.runbook,
        state=row.state,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
    )
