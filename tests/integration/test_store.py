"""SqlStore against real databases: SQLite files and a real PostgreSQL server (no mocks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from controlplane.errors import ConflictError, ExternalError, InputError, NotFoundError
from controlplane.ports import Store
from controlplane.store import SqlStore
from controlplane.store.migrate import HEAD, alembic_config

TABLES = {"rollouts", "rollout_events", "analysis_results", "validation_runs", "incidents", "alembic_version"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'dir' / 'state.db'}"
    return str(request.getfixturevalue("pg_fresh_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    with SqlStore(db_url) as s:
        yield s


def spec(model: str = "minilm", version: int = 2, **extra: Any) -> dict[str, Any]:
    return {"model": model, "version": version, "stable_version": version - 1, "steps": (5, 25, 100), **extra}


def status(phase: str = "Pending", **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "step_index": -1, "weight": 0, **extra}


def count_rows(db_url: str, table: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_implements_the_port(store: SqlStore) -> None:
    assert isinstance(store, SqlStore)
    port_methods = [m for m in vars(Store) if not m.startswith("_")]
    assert port_methods and all(callable(getattr(store, m)) for m in port_methods)


def test_migrations_run_on_a_fresh_database(db_url: str) -> None:
    with SqlStore(db_url) as first:
        assert first.list_rollouts() == []
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) >= TABLES
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
            indexes = {ix["name"]: ix for ix in sa.inspect(conn).get_indexes("rollouts")}
            assert indexes["ux_rollouts_active_model"]["unique"]
    finally:
        engine.dispose()
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
    with SqlStore(db_url) as again:  # reopening is a no-op upgrade
        assert again.list_rollouts() == []


def test_create_get_list(store: SqlStore) -> None:
    a = store.create_rollout(spec("minilm", 2), status("Pending"), now=100.0)
    b = store.create_rollout(spec("bert", 7), status("Progressing", weight=5), now=101.5)
    assert (a.id, a.model, a.version, a.revision, a.created_at, a.updated_at) == (a.id, "minilm", 2, 1, 100.0, 100.0)
    assert a.spec["steps"] == [5, 25, 100]  # JSON round trip: tuples come back as lists
    assert b.id > a.id and b.active
    assert store.get_rollout(a.id) == a
    assert store.get_rollout(b.id).status == {"phase": "Progressing", "step_index": -1, "weight": 5}
    assert [r.id for r in store.list_rollouts()] == [a.id, b.id]
    assert [r.id for r in store.list_rollouts(model="bert")] == [b.id]
    assert store.active_rollout("minilm") == a
    assert store.active_rollout("unknown") is None
    with pytest.raises(NotFoundError, match=r"rollout #999 not found"):
        store.get_rollout(999)
    with pytest.raises(InputError, match="needs 'model'"):
        store.create_rollout({"version": 1}, status(), now=1.0)


def test_second_active_rollout_is_refused_and_nothing_written(store: SqlStore, db_url: str) -> None:
    first = store.create_rollout(spec("minilm", 2), status("Progressing"), now=1.0)
    before = count_rows(db_url, "rollouts")
    with pytest.raises(ConflictError) as err:
        store.create_rollout(spec("minilm", 3), status("Pending"), now=2.0)
    message = str(err.value)
    assert message == (
        f"model 'minilm' already has an active rollout #{first.id} (minilm:v2, Progressing); abort it or wait"
    )
    assert "\n" not in message
    assert count_rows(db_url, "rollouts") == before
    assert [r.id for r in store.list_rollouts(model="minilm")] == [first.id]
    # another model is not affected
    assert store.create_rollout(spec("bert", 1), status(), now=3.0).model == "bert"


def test_the_database_itself_enforces_one_active_rollout_per_model(store: SqlStore, db_url: str) -> None:
    store.create_rollout(spec("minilm", 2), status("Progressing"), now=1.0)
    engine = sa.create_engine(db_url)
    row = {"model": "minilm", "version": 3, "spec": "{}", "status": "{}", "phase": "Pending", "active": True,
           "revision": 1, "created_at": 2.0, "updated_at": 2.0}  # fmt: skip
    insert = sa.text(
        "INSERT INTO rollouts (model, version, spec, status, phase, active, revision, created_at, updated_at) "
        "VALUES (:model, :version, :spec, :status, :phase, :active, :revision, :created_at, :updated_at)"
    )
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert, row)
        with engine.begin() as conn:  # an inactive (terminal) row for the same model is fine
            conn.execute(insert, {**row, "active": False, "phase": "Aborted"})
    finally:
        engine.dispose()


def test_concurrent_creates_one_winner(db_url: str) -> None:
    """Two writers (separate stores, separate connections) race for the same model's slot."""
    stores = [SqlStore(db_url), SqlStore(db_url)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def attempt(s: SqlStore, version: int) -> None:
        barrier.wait()
        try:
            s.create_rollout(spec("race", version), status("Pending"), now=float(version))
            outcomes.append("created")
        except ConflictError as exc:
            outcomes.append(f"conflict: {exc}")

    threads = [threading.Thread(target=attempt, args=(s, i + 1)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "created"], outcomes
        assert len(stores[0].list_rollouts(model="race")) == 1
    finally:
        for s in stores:
            s.close()


def test_terminal_rollout_frees_the_slot(store: SqlStore) -> None:
    first = store.create_rollout(spec("minilm", 2), status("Progressing"), now=1.0)
    done = store.save_rollout(first.id, 1, spec("minilm", 2), status("Promoted", weight=100), [], now=5.0)
    assert not done.active and done.revision == 2
    assert store.active_rollout("minilm") is None
    second = store.create_rollout(spec("minilm", 3), status("Pending"), now=6.0)
    assert store.active_rollout("minilm") == second
    assert [r.id for r in store.list_rollouts(model="minilm", active_only=True)] == [second.id]
    assert [r.id for r in store.list_rollouts(model="minilm")] == [first.id, second.id]
    # a finished rollout cannot be revived while another one holds the slot
    with pytest.raises(ConflictError, match=f"active rollout #{second.id}"):
        store.save_rollout(first.id, 2, spec("minilm", 2), status("Progressing"), [("revive", "x", {})], now=7.0)
    assert store.get_rollout(first.id).revision == 2
    assert store.list_events(first.id) == []


def test_optimistic_concurrency(store: SqlStore) -> None:
    r = store.create_rollout(spec(), status(), now=1.0)
    mine = store.save_rollout(r.id, 1, spec(), status("Validating"), [("validation", "started", {})], now=2.0)
    assert mine.revision == 2 and mine.updated_at == 2.0 and mine.created_at == 1.0
    with pytest.raises(ConflictError) as err:  # a second writer still holding revision 1
        store.save_rollout(r.id, 1, spec(paused=True), status("Paused"), [("pause", "stale", {})], now=3.0)
    assert str(err.value) == (
        f"rollout #{r.id} was changed by another writer (revision 2, expected 1); reload it and retry"
    )
    stored = store.get_rollout(r.id)
    assert stored == mine  # nothing of the stale write landed
    assert [e.kind for e in store.list_events(r.id)] == ["validation"]
    with pytest.raises(NotFoundError):
        store.save_rollout(424242, 1, spec(), status(), [], now=4.0)
    with pytest.raises(InputError, match="cannot change"):
        store.save_rollout(r.id, 2, spec("other", 9), status(), [], now=4.0)


def test_events_are_append_only_and_ordered(store: SqlStore) -> None:
    r = store.create_rollout(spec(), status(), now=10.0)
    rev = r.revision
    plan = [
        ("Validating", [("validation", "validation started", {"checks": ["attention"]})]),
        ("Progressing", [("weight", "canary at 5%", {"weight": 5}), ("analysis", "pass", {"burn": 0.1})]),
        ("RolledBack", [("rollback", "error budget burning", {"burn_rate": 14.4, "window": "5m"})]),
    ]
    for i, (phase, events) in enumerate(plan):
        rev = store.save_rollout(r.id, rev, spec(), status(phase), events, now=11.0 + i).revision
    got = store.list_events(r.id)
    assert [e.kind for e in got] == ["validation", "weight", "analysis", "rollback"]
    assert [e.phase for e in got] == ["Validating", "Progressing", "Progressing", "RolledBack"]
    assert [e.at for e in got] == [11.0, 12.0, 12.0, 13.0]
    assert got[-1].evidence == {"burn_rate": 14.4, "window": "5m"}
    assert [e.id for e in got] == sorted(e.id for e in got) and all(e.rollout_id == r.id for e in got)
    # an empty save appends nothing; earlier events are untouched
    store.save_rollout(r.id, rev, spec(), status("RolledBack", message="noted"), [], now=20.0)
    assert store.list_events(r.id) == got
    assert not hasattr(store, "delete_event") and not hasattr(store, "update_event")
    with pytest.raises(NotFoundError):
        store.list_events(31337)


def test_incident_lifecycle(store: SqlStore) -> None:
    r = store.create_rollout(spec(), status("Progressing"), now=1.0)
    inc = store.open_incident(
        r.id, "minilm", 2, "slo-burn-errors", "page", "error budget burning 14.4x", {"burn_rate": 14.4},
        "runbooks/slo-burn-errors.md", now=5.0,
    )  # fmt: skip
    assert (inc.state, inc.opened_at, inc.updated_at, inc.rollout_id) == ("open", 5.0, 5.0, r.id)
    other = store.open_incident(None, "bert", None, "validation", "ticket", "drift", {}, "runbooks/v.md", now=6.0)
    assert other.rollout_id is None and other.version is None
    assert [i.id for i in store.list_incidents(state="open")] == [inc.id, other.id]
    acked = store.set_incident_state(inc.id, "acknowledged", now=7.0)
    assert (acked.state, acked.opened_at, acked.updated_at) == ("acknowledged", 5.0, 7.0)
    resolved = store.set_incident_state(inc.id, "resolved", now=9.0)
    assert store.get_incident(inc.id) == resolved
    assert [i.id for i in store.list_incidents(model="minilm")] == [inc.id]
    assert [i.id for i in store.list_incidents(model="minilm", state="open")] == []
    assert [i.id for i in store.list_incidents(state="resolved")] == [inc.id]
    with pytest.raises(InputError, match="invalid incident state 'closed'"):
        store.set_incident_state(inc.id, "closed", now=10.0)
    with pytest.raises(NotFoundError, match="incident #777 not found"):
        store.get_incident(777)
    with pytest.raises(NotFoundError, match="rollout #555 not found"):
        store.open_incident(555, "m", 1, "x", "page", "s", {}, "r.md", now=1.0)


def test_validation_and_analysis_records(store: SqlStore) -> None:
    v1 = store.add_validation(
        "minilm", 2, "attention-entropy", "passed", {"entropy_min": 0.4}, [], {"entropy_min": 0.1}, "run-1", now=3.0
    )
    store.add_validation("minilm", 2, "quantization", "failed", {"cos_p1": 0.87}, ["p1 below 0.9"], {}, None, now=4.0)
    store.add_validation("minilm", 3, "attention-entropy", "passed", {}, [], {}, None, now=5.0)
    got = store.list_validations("minilm", 2)
    assert [(v.check, v.status) for v in got] == [("attention-entropy", "passed"), ("quantization", "failed")]
    assert got[0] == v1 and got[1].findings == ["p1 below 0.9"] and got[1].run_id is None
    assert len(store.list_validations("minilm")) == 3
    assert store.list_validations("nobody") == []

    r = store.create_rollout(spec(), status("Progressing"), now=1.0)
    a = store.add_analysis(r.id, 0, 5, "pass", "within SLO", {"error_ratio": 0.001}, now=30.0)
    b = store.add_analysis(r.id, 1, 25, "inconclusive", "too few requests", {"requests": 12}, now=60.0)
    assert store.list_analysis(r.id) == [a, b]
    assert (b.step_index, b.weight, b.verdict, b.evidence) == (1, 25, "inconclusive", {"requests": 12})
    with pytest.raises(NotFoundError):
        store.add_analysis(999, 0, 5, "pass", "", {}, now=1.0)
    with pytest.raises(InputError, match="not JSON-serialisable"):
        store.add_analysis(r.id, 0, 5, "pass", "", {"when": object()}, now=1.0)


# ---- failures that must be one clear line -------------------------------------------------


def _assert_one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text and "sqlalchemy" not in text.lower(), text
    return text


@pytest.mark.postgres
def test_unreachable_postgres_is_one_line_without_password() -> None:
    with pytest.raises(ExternalError) as err:
        SqlStore("postgresql+psycopg://cp:s3cret-pw@127.0.0.1:1/controlplane")
    text = _assert_one_line(err.value)
    assert text == "cannot reach database at postgresql+psycopg://cp:***@127.0.0.1:1/controlplane: connection refused"
    assert "s3cret-pw" not in text


@pytest.mark.postgres
def test_wrong_password_is_one_line(postgres_url: str) -> None:
    bad = postgres_url.replace("cp:", "cp:not-the-password-", 1)
    with pytest.raises(ExternalError) as err:
        SqlStore(bad)
    text = _assert_one_line(err.value)
    assert "not-the-password" not in text and "password authentication failed" in text


def test_sqlite_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ExternalError) as err:
        SqlStore(f"sqlite:///{blocker / 'sub' / 'state.db'}")
    assert "cannot create the directory" in _assert_one_line(err.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid database URL 'not a url'"),
        ("mysql://u:pw@localhost/db", "unsupported database URL 'mysql://u:***@localhost/db'"),
        ("postgresql+nosuchdriver://u:pw@localhost/db", "invalid database URL"),
    ],
)
def test_bad_urls_are_input_errors(url: str, expected: str) -> None:
    with pytest.raises(InputError) as err:
        SqlStore(url)
    text = _assert_one_line(err.value)
    assert expected in text and ":pw@" not in text


def test_sqlite_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with SqlStore(url) as s:
        assert s.dialect == "sqlite" and s.url == url
        with s._engine.connect() as conn:  # the store's own connections
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
