"""The state store: the only package that imports SQLAlchemy and Alembic.

``SqlStore(url)`` implements ``controlplane.ports.Store`` on SQLite (default) or PostgreSQL.
Imported lazily so that ``import controlplane.store`` stays cheap until a store is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controlplane.store.store import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(url: str) -> SqlStore:
    """Open (and migrate) the store at ``url``."""
    from controlplane.store.store import SqlStore

    return SqlStore(url)


def __getattr__(name: str) -> Any:
    if name == "SqlStore":
        from controlplane.store.store import SqlStore

        return SqlStore
    raise AttributeError(name)
