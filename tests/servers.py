"""Real servers for integration tests (a pytest plugin named in tests/conftest.py).

* ``postgres_url``  session: a throw-away PostgreSQL (Debian binaries: initdb + postgres) on a free
  loopback port, run as the ``postgres`` user when the tests run as root; yields a
  ``postgresql+psycopg://`` URL with a password; stopped at the end, nothing left behind.
* ``mlflow_server`` session: ``mlflow server`` (SQLite backend, proxied artifacts) from this venv on a
  free loopback port; yields the tracking URI once /health answers; stopped at the end.
* ``pg_fresh_url``  function: a new, empty database on the session's PostgreSQL (dropped afterwards);
  ``fresh_database(postgres_url)`` is the same as a context manager (for wider-scoped fixtures), and
  ``pg_query(url, sql)`` reads rows straight from the server.
* ``hanging_endpoint`` function: an HTTP endpoint on loopback that accepts connections, reads the request
  and never answers (a webhook that hangs); counts connections and the client hang-ups it saw.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_BIN_ENV = "PG_BIN"  # optional: the folder holding initdb and postgres
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with code {proc.returncode} while starting:\n{_tail(log)}", pytrace=False)
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not become ready within {START_TIMEOUT_S:.0f} s:\n{_tail(log)}", pytrace=False)


def stop_group(proc: subprocess.Popen[bytes], first: signal.Signals = signal.SIGTERM, grace_s: float = 15.0) -> None:
    """Stop a process started with start_new_session=True and everything in its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers (workers) in the group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---- PostgreSQL ------------------------------------------------------------------------------


def pg_bindir() -> Path:
    """The folder with initdb and postgres: $PG_BIN, PATH, or the Debian layout."""
    candidates = [os.environ.get(PG_BIN_ENV, "")]
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").is_file() and (Path(cand) / "postgres").is_file():
            return Path(cand)
    pytest.fail(
        "PostgreSQL server binaries (initdb, postgres) not found: run `make test`, which installs them "
        f"(Debian package postgresql), or set {PG_BIN_ENV} to their folder",
        pytrace=False,
    )


def _pg_user() -> tuple[str | None, int | None, int | None]:
    """postgres refuses to run as root: then run it as the `postgres` user."""
    if os.geteuid() != 0:
        return None, None, None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no `postgres` user to run PostgreSQL as: run `make test`")
    return entry.pw_name, entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bindir = pg_bindir()
    user, uid, gid = _pg_user()
    root = Path(tempfile.mkdtemp(prefix="cp-pg-"))
    data, log = root / "data", root / "postgres.log"
    password = secrets.token_hex(8)
    (root / "pwfile").write_text(password + "\n")
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
        os.chown(root / "pwfile", uid, gid)
    run_as = {"user": uid, "group": gid} if uid is not None else {}
    init = subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "cp", f"--pwfile={root / 'pwfile'}",
         "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
        capture_output=True, text=True, check=False, **run_as,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed (as {user or 'current user'}): {init.stderr.strip()}", pytrace=False)
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=50", "-c", "shared_buffers=32MB"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **run_as,
        )  # fmt: skip
    try:
        base = f"postgresql+psycopg://cp:{password}@127.0.0.1:{port}"
        wait_until(lambda: _pg_ready(port, password), proc, "postgres", log)
        _pg_exec(port, password, "CREATE DATABASE controlplane")
        yield f"{base}/controlplane"
    finally:
        stop_group(proc, first=signal.SIGINT)  # SIGINT: fast shutdown
        shutil.rmtree(root, ignore_errors=True)


def _pg_connect(port: int, password: str, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host="127.0.0.1", port=port, user="cp", password=password, dbname=dbname, connect_timeout=2, autocommit=True
    )


def _pg_ready(port: int, password: str) -> bool:
    try:
        with _pg_connect(port, password):
            return True
    except Exception:
        return False


def _pg_exec(port: int, password: str, sql: str) -> None:
    with _pg_connect(port, password) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``postgres_url`` (dropped on exit): its URL."""
    import psycopg

    base, _, _db = postgres_url.rpartition("/")
    name = f"t_{secrets.token_hex(6)}"
    info = psycopg.conninfo.conninfo_to_dict(base.replace("postgresql+psycopg", "postgresql") + "/postgres")
    with psycopg.connect(**info, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(**info, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_query(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read straight from PostgreSQL (psycopg, no SQLAlchemy): what the server holds."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(url.replace("postgresql+psycopg", "postgresql"))
    with psycopg.connect(**info, autocommit=True) as conn:  # type: ignore[arg-type]
        return list(conn.execute(sql).fetchall())


@pytest.fixture
def pg_fresh_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL (dropped afterwards)."""
    with fresh_database(postgres_url) as url:
        yield url


# ---- MLflow ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = root / "mlflow.log"
    env = {**os.environ, "MLFLOW_CONFIGURE_LOGGING": "false", "PYTHONUNBUFFERED": "1"}
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(var, None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server",
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=root, env=env,
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _http_ok(f"{uri}/health"), proc, "mlflow server", log)
        yield uri
    finally:
        stop_group(proc)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# ---- an endpoint that never answers --------------------------------------------------------


class HangingEndpoint:
    """Accepts every connection on a loopback port, reads what the client sends, never answers.
    ``accepted``: connections accepted; ``hung_up``: connections the client closed; ``received``: the bytes."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._accepted = 0
        self._hung_up = 0
        self._received = b""
        threading.Thread(target=self._accept, name="hanging-endpoint", daemon=True).start()

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    @property
    def hung_up(self) -> int:
        with self._lock:
            return self._hung_up

    @property
    def received(self) -> bytes:
        with self._lock:
            return self._received

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            with self._lock:
                self._accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                with self._lock:
                    self._hung_up += 1
                return
            with self._lock:
                self._received += chunk

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


@pytest.fixture
def hanging_endpoint() -> Iterator[HangingEndpoint]:
    endpoint = HangingEndpoint()
    yield endpoint
    endpoint.close()
