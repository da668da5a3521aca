"""Alembic environment. The store runs migrations programmatically and hands over an
open connection in ``config.attributes["connection"]``; no alembic.ini is needed."""

from __future__ import annotations

from alembic import context

from controlplane.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations through controlplane.store (SqlStore opens and upgrades the database)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
