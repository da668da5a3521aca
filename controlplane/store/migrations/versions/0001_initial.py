"""Initial schema: rollouts, rollout_events, analysis_results, validation_runs, incidents.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,  # ids are shown to users: never reuse one
    )
    op.create_index("ix_rollouts_model", "rollouts", ["model"])
    # At most one active rollout per model: a partial unique index (SQLite and PostgreSQL).
    op.create_index(
        "ux_rollouts_active_model",
        "rollouts",
        ["model"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )

    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sqlite_autoincrement=True,  # ids are shown to users: never reuse one
    )
    op.create_index("ix_rollout_events_rollout", "rollout_events", ["rollout_id", "id"])

    op.create_table(
        "analysis_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,  # ids are shown to users: never reuse one
    )
    op.create_index("ix_analysis_results_rollout", "analysis_results", ["rollout_id", "id"])

    op.create_table(
        "validation_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,  # ids are shown to users: never reuse one
    )
    op.create_index("ix_validation_runs_model_version", "validation_runs", ["model", "version"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("failure_mode", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("runbook", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,  # ids are shown to users: never reuse one
    )
    op.create_index("ix_incidents_model_state", "incidents", ["model", "state"])


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("validation_runs")
    op.drop_table("analysis_results")
    op.drop_table("rollout_events")
    op.drop_table("rollouts")
