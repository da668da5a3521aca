"""Opening a database: URL checks, engine options (SQLite pragmas, timeouts), and turning
driver errors into one-line control-plane errors with the password hidden."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from controlplane.errors import ExternalError, InputError, TemporaryError

SQLITE_BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 5
_URL_HELP = "expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"


def parse_url(raw: str) -> URL:
    """Validate a database URL; ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise InputError(f"invalid database URL {redact(raw)!r}: {_URL_HELP}") from None
    backend = url.get_backend_name()
    if url.drivername in {"postgres", "postgresql"}:  # the bare names mean psycopg 3 here
        url = url.set(drivername="postgresql+psycopg")
        backend = "postgresql"
    elif backend not in {"sqlite", "postgresql"}:
        raise InputError(f"unsupported database URL {safe_url(url)!r}: {_URL_HELP}")
    return url


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def redact(raw: str) -> str:
    """Hide a password in a URL that may not even parse."""
    head, sep, tail = raw.partition("://")
    if not sep or "@" not in tail:
        return raw
    creds, _, rest = tail.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{head}://{user}:***@{rest}" if ":" in creds else raw


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: URL) -> Engine:
    """An Engine for ``url``. SQLite: parent dirs created, WAL, foreign keys, busy timeout,
    and ``BEGIN IMMEDIATE`` for writers (see ``writer``)."""
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        if _is_memory(url):
            kwargs["poolclass"] = StaticPool
        else:
            try:
                Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ExternalError(f"cannot create the directory for {safe_url(url)}: {exc.strerror}") from None
    else:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError):
        raise InputError(f"invalid database URL {safe_url(url)!r}: unknown driver {url.drivername!r}") from None
    if url.get_backend_name() == "sqlite":
        _sqlite_events(engine, wal=not _is_memory(url))
    return engine


def _sqlite_events(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the lock up front so read-then-write never fails with SQLITE_BUSY mid-way.
        mode = "IMMEDIATE" if conn.get_execution_options().get("cp_writer") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions are write transactions."""
    return engine.execution_options(cp_writer=True)


def describe(exc: BaseException) -> str:
    """The driver's reason in one short line, e.g. ``connection refused``."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(orig).__name__
    if "failed: " in text:
        text = text.rsplit("failed: ", 1)[1]
    text = text.strip().removeprefix("FATAL:").strip().rstrip(".")
    return text[:1].lower() + text[1:]


@contextlib.contextmanager
def translate_errors(url: URL, keep_integrity_errors: bool = False) -> Iterator[None]:
    """Driver and connection failures become ExternalError with one clear line.
    ``keep_integrity_errors``: let IntegrityError through for the caller to explain."""
    try:
        yield
    except DBAPIError as exc:
        if keep_integrity_errors and isinstance(exc, IntegrityError):
            raise
        if "authentication failed" in str(exc.orig):
            raise ExternalError(f"cannot log in to database at {safe_url(url)}: {describe(exc)}") from None
        if exc.connection_invalidated or _is_connect_error(exc):
            raise ExternalError(f"cannot reach database at {safe_url(url)}: {describe(exc)}") from None
        if _is_transient(exc):
            raise TemporaryError(f"database busy at {safe_url(url)}: {describe(exc)}", delay=1.0) from None
        raise ExternalError(f"database error at {safe_url(url)}: {describe(exc)}") from None
    except SQLAlchemyError as exc:
        raise ExternalError(f"database error at {safe_url(url)}: {describe(exc)}") from None


def _is_connect_error(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    markers = ("connection", "could not connect", "unable to open database", "timeout expired", "resolve host")
    return any(m in text for m in markers)


def _is_transient(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(m in text for m in ("database is locked", "deadlock detected", "could not serialize"))
