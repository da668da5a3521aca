"""Incidents and runbooks: every failure mode has a runbook, every `ctl` line in a runbook parses with the real
CLI, and `ctl incident|runbook|slo` behave (exit codes 0/1/2) through subprocesses on a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer.main

from controlplane.analysis.judge import FAILURE_MODES
from controlplane.app import incidents, runbooks
from controlplane.app.gate import CHECK_FAILURE_MODES
from controlplane.cli.main import app
from controlplane.errors import InputError
from controlplane.store import SqlStore
from tests.servers import HangingEndpoint

#: Failure modes the issue names, beyond those the judge and the gates emit.
ISSUE_MODES = ("registry-unavailable", "kv-cache-inconsistency", "validation-failed")
ALL_MODES = sorted({*FAILURE_MODES, *CHECK_FAILURE_MODES.values(), *ISSUE_MODES})
SLO = "model: minilm\nobjectives:\n  availability: {target: 99.9}\n  latency: {target: 95, threshold: 200ms}\n"


def ctl(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONTROLPLANE_DB_URL", "CONTROLPLANE_INCIDENT_WEBHOOK")}
    env["CONTROLPLANE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[SqlStore]:
    home.mkdir(parents=True, exist_ok=True)
    with SqlStore(f"sqlite:///{home / 'state.db'}") as s:
        yield s


# ---- runbooks ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_failure_mode_maps_to_a_runbook(mode: str) -> None:
    book = runbooks.runbook_for(mode)
    assert book.path.is_file()
    assert mode in book.triggers
    assert book.severity in ("page", "ticket")
    for section in ("## Symptoms", "## Diagnosis", "## Mitigation", "## Verify recovery", "## Escalation"):
        assert section in book.body, f"{book.link} lacks {section}"
    assert runbooks.runbook_link(mode) == f"runbooks/{mode}.md"


def _resolve(argv: list[str]) -> Any:
    """Parse ``argv`` exactly as `ctl` would (types, required arguments, choices) without running it.
    Typer vendors click, so groups are recognised by what they do (``resolve_command``)."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("ctl", list(argv))
    while hasattr(command, "resolve_command"):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return command


def _runbook_commands() -> list[tuple[str, str]]:
    found = []
    for book in runbooks.load_runbooks().values():
        body = runbooks.render(book, model="minilm", version=3, stable=2, incident=7)
        found += [(book.id, line) for line in runbooks.ctl_commands(body)]
    return found


def test_runbooks_have_commands() -> None:
    per_book = {rid for rid, _ in _runbook_commands()}
    assert per_book == set(runbooks.load_runbooks())


@pytest.mark.parametrize(("book", "line"), _runbook_commands())
def test_every_ctl_command_in_a_runbook_parses(book: str, line: str) -> None:
    import shlex

    argv = shlex.split(line)[1:]
    try:
        _resolve(argv)
    except typer.TyperException as exc:  # click's UsageError and its subclasses
        pytest.fail(f"{book}: `{line}` does not parse: {exc}")


def test_runbook_placeholders_are_filled() -> None:
    book = runbooks.runbook_for("slo-burn-errors")
    body = runbooks.render(book, model="minilm", version=3, incident=12)
    assert "ctl incident show 12" in body and "ctl models show minilm:v3" in body
    assert "{model}" not in body and "{ref}" not in body
    assert 'model="minilm"' in body  # PromQL label matchers are filled, braces kept


def test_malformed_runbook_folder(tmp_path: Path) -> None:
    (tmp_path / "x.md").write_text("no front matter\n")
    with pytest.raises(InputError, match=r"runbook x\.md: no front matter"):
        runbooks.load_runbooks(tmp_path)
    (tmp_path / "x.md").write_text("---\nid: y\ntitle: t\nseverity: page\n---\nbody\n")
    with pytest.raises(InputError, match="id must be the file's stem"):
        runbooks.load_runbooks(tmp_path)


# ---- incidents -----------------------------------------------------------------------------


def _open(store: SqlStore, mode: str = "slo-burn-errors", version: int = 3, now: float = 1000.0) -> Any:
    return incidents.open_incident(
        store,
        failure_mode=mode,
        severity="page",
        summary=f"minilm:v{version} rolled back at 5%: canary error ratio 100%",
        evidence={"queries": {"30s canary.total": "sum(increase(model_requests_total[30s]))"}, "stable_version": 2},
        rollout_id=None,
        model="minilm",
        version=version,
        now=now,
        webhook="",
    )


def test_open_is_deduplicated_while_active(store: SqlStore) -> None:
    first = _open(store)
    assert first.runbook == "runbooks/slo-burn-errors.md"
    assert _open(store, now=1001.0).id == first.id
    assert _open(store, mode="slo-burn-latency").id != first.id
    assert _open(store, version=4).id != first.id
    incidents.acknowledge(store, first.id, 1002.0)
    assert _open(store, now=1003.0).id == first.id  # acknowledged is still active
    incidents.resolve(store, first.id, 1004.0)
    assert _open(store, now=1005.0).id != first.id  # a new occurrence after resolution
    with pytest.raises(InputError, match=f"incident #{first.id} is already resolved"):
        incidents.acknowledge(store, first.id, 1006.0)


def test_incident_cli_round_trip(store: SqlStore, home: Path) -> None:
    opened = _open(store)
    listed = ctl("incident", "list", "-o", "json", home=home)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["failure_mode"], r["state"], r["runbook"]) for r in rows] == [
        (opened.id, "slo-burn-errors", "open", "runbooks/slo-burn-errors.md")
    ]
    shown = json.loads(ctl("incident", "show", str(opened.id), "-o", "json", home=home).stdout)
    assert shown["evidence"]["queries"] and shown["ref"] == "minilm:v3"
    table = ctl("incident", "show", str(opened.id), home=home)
    assert table.returncode == 0 and "slo-burn-errors" in table.stdout

    assert ctl("incident", "ack", str(opened.id), home=home).stdout.strip() == f"incident #{opened.id} acknowledged"
    active = json.loads(ctl("incident", "list", "--state", "active", "-o", "json", home=home).stdout)
    assert [r["state"] for r in active] == ["acknowledged"]
    assert ctl("incident", "resolve", str(opened.id), home=home).returncode == 0
    assert json.loads(ctl("incident", "list", "--state", "active", "-o", "json", home=home).stdout) == []

    book = json.loads(ctl("runbook", str(opened.id), "-o", "json", home=home).stdout)
    assert book["id"] == "slo-burn-errors" and book["incident"] == opened.id
    assert "ctl rollback minilm" in book["commands"] and f"ctl incident show {opened.id}" in book["commands"]
    rendered = ctl("runbook", str(opened.id), home=home)
    assert rendered.returncode == 0 and "SLO burn on errors" in rendered.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["incident", "show", "999"], 2, "incident #999 not found"),
        (["incident", "ack", "999"], 2, "incident #999 not found"),
        (["incident", "list", "--state", "sleeping"], 2, "invalid --state"),
        (["runbook", "no-such-mode"], 2, "no runbook for failure mode 'no-such-mode'"),
    ],
)
def test_incident_cli_errors_are_one_line(store: SqlStore, home: Path, args: list[str], code: int, message: str) -> None:
    proc = ctl(*args, home=home)
    assert proc.returncode == code
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_runbook_list_needs_no_store(home: Path) -> None:
    proc = ctl("runbook", "-o", "json", home=home)
    assert proc.returncode == 0
    assert {r["id"] for r in json.loads(proc.stdout)} >= set(ALL_MODES)
    assert not (home / "state.db").exists()


# ---- ctl slo -------------------------------------------------------------------------------


def test_slo_validate_and_rules(tmp_path: Path, home: Path) -> None:
    good = tmp_path / "slo.yaml"
    good.write_text(SLO)
    proc = ctl("slo", "validate", str(good), "-o", "json", home=home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [w["burn"] for w in data["canary"]["burn_windows"]] == [14.4, 6.0]
    assert [a["burn_threshold"] for a in data["alerts"]] == [14.4, 6.0, 3.0, 1.0]
    assert [a["budget_consumed"] for a in data["alerts"]] == [0.02, 0.05, 0.1, 0.1]

    out = tmp_path / "rules.yaml"
    rules = ctl("slo", "rules", str(good), "--out", str(out), *(["--check"] if _promtool() else []), home=home)
    assert rules.returncode == 0, rules.stderr
    assert "slo:sli_error:ratio_rate5m" in out.read_text()
    assert "runbooks/slo-burn-errors.md" in out.read_text()
    if _promtool():
        check = subprocess.run([_promtool(), "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [\n", "not valid YAML"),
        ("model: m\nobjectives: {availability: {target: 0.999}}\n", "objectives.availability.target"),
        (None, "SLO file not found"),
    ],
)
def test_bad_slo_file_is_one_line_exit_2(tmp_path: Path, home: Path, text: str | None, message: str) -> None:
    path = tmp_path / "slo.yaml"
    if text is not None:
        path.write_text(text)
    for command in ("validate", "rules"):
        proc = ctl("slo", command, str(path), home=home)
        assert proc.returncode == 2
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert proc.stdout == ""


def _promtool() -> str | None:
    import shutil

    return shutil.which("promtool")


# ---- webhook -------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Hook.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_webhook_is_retried_and_never_blocks(store: SqlStore) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _Hook.received, _Hook.fail_first = [], 1
        url = f"http://127.0.0.1:{server.server_port}/hook"
        record = incidents.open_incident(
            store, failure_mode="slo-burn-latency", severity="page", summary="slow", evidence={},
            rollout_id=None, model="minilm", version=3, now=1.0, webhook=url,
        )
        deadline = time.monotonic() + 10
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _Hook.received, "the webhook never arrived"
        payload = _Hook.received[0]
        assert payload["text"].startswith("[PAGE] incident #") and "slo-burn-latency" in payload["text"]
        assert payload["incident"]["id"] == record.id
    finally:
        server.shutdown()
        server.server_close()
    # a refused port: the incident is still recorded
    refused = incidents.open_incident(
        store, failure_mode="slo-burn-errors", severity="page", summary="x", evidence={},
        rollout_id=None, model="minilm", version=9, now=2.0, webhook=f"http://127.0.0.1:{server.server_port}/gone",
    )
    assert store.get_incident(refused.id).state == "open"


def test_webhook_that_never_answers_never_blocks(store: SqlStore, hanging_endpoint: HangingEndpoint) -> None:
    """An endpoint that accepts the connection and never answers: opening returns while the delivery is
    still outstanding (the sender has not given up on it: a synchronous sender would have waited out its
    timeouts and retries first), with the incident recorded; the delivery was really attempted."""
    record = incidents.open_incident(
        store, failure_mode="slo-burn-latency", severity="page", summary="slow", evidence={},
        rollout_id=None, model="minilm", version=5, now=3.0, webhook=hanging_endpoint.url,
    )
    hung_up_when_returned = hanging_endpoint.hung_up
    assert store.get_incident(record.id).state == "open" and record.failure_mode == "slo-burn-latency"
    deadline = time.monotonic() + 60
    while b"POST /hook" not in hanging_endpoint.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"POST /hook" in hanging_endpoint.received, "the webhook was never attempted"
    assert hanging_endpoint.accepted >= 1 and hung_up_when_returned == 0


def test_runbook_of_a_rollout_incident_names_the_stable_version(store: SqlStore, home: Path) -> None:
    from controlplane.engine import RolloutSpec, RolloutStatus

    spec = RolloutSpec(model="minilm", version=3, stable_version=2, skip_validation=True)
    rollout = store.create_rollout(spec.to_dict(), RolloutStatus().to_dict(), 1.0)
    record = incidents.open_incident(
        store, failure_mode="quantization-drift", severity="ticket", summary="cosine p1 0.87", evidence={},
        rollout_id=rollout.id, model="minilm", version=3, now=2.0, webhook="",
    )
    book = json.loads(ctl("runbook", str(record.id), "-o", "json", home=home).stdout)
    assert any("--source minilm:v2" in c for c in book["commands"]), book["commands"]
    assert not any("{" in c for c in book["commands"])
