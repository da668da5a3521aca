"""Bring a database to the newest schema with the Alembic migrations shipped in this package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from controlplane.errors import PermanentError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD = "0001"  # newest revision in migrations/versions (a test checks they agree)
_PG_MIGRATION_LOCK = 0x63746C6D  # advisory lock key: concurrent `ctl` processes migrate one at a time


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head``; a no-op (one query) when the database is already current."""
    with engine.connect() as conn:
        if current_revision(conn) == HEAD:
            return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(conn), "head")
        except CommandError as exc:
            found = current_revision(conn)
            raise PermanentError(
                f"database schema is at revision {found!r}, which this version of ctl does not know "
                f"(newest known: {HEAD}); upgrade ctl or point it at another database"
            ) from exc
