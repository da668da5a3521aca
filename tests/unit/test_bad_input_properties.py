"""Bad input, generated (hypothesis): model refs, durations, step lists, SLO files and rollout
options given to `ctl`. Whatever the input: never a traceback, exactly one line on stderr, exit 2,
and the store unchanged. The bulk runs `ctl`'s real entry point in-process (the same
`run(app)` the console script calls); a handful of examples per property go through a real
subprocess. A home with one rollout in its store is the "before" every example is compared to.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.cli.parsing import parse_duration, parse_steps
from controlplane.errors import EXIT_USAGE, InputError
from controlplane.refs import parse_ref, parse_versioned_ref

IN_PROCESS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SUBPROCESS = settings(max_examples=3, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID_SLO: dict[str, Any] = {
    "apiVersion": "controlplane/v1",
    "kind": "SLO",
    "model": "minilm",
    "period": "30d",
    "objectives": {"availability": {"target": 99.9}, "latency": {"target": 95, "threshold": "200ms"}},
    "canary": {"min_requests": 100, "burn_rates": [{"burn": 14.4, "long_steps": 1}],
               "compare": {"confidence": 0.98, "tolerance": 0.25}},
    "alerting": [{"budget": "2%", "long": "1h", "short": "5m", "severity": "page"}],
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose store holds one active rollout (minilm:v2 at 5 %), and no registry."""
    from controlplane.store import SqlStore

    path = tmp_path_factory.mktemp("home")
    with SqlStore(f"sqlite:///{path / 'state.db'}") as store:
        record = store.create_rollout({"model": "minilm", "version": 2, "stable_version": 1},
                                      {"phase": "Progressing", "weight": 5, "step_index": 0}, 1.0)
        store.save_rollout(record.id, record.revision, record.spec, record.status, [("StepStarted", "5 %", {})], 1.0)
    return path


def snapshot(home: Path) -> Any:
    """Everything the store holds (rows, revisions, events) and the files of the home."""
    from controlplane.store import SqlStore

    with SqlStore(f"sqlite:///{home / 'state.db'}") as store:
        rows = [(r.id, r.revision, r.spec, r.status, [(e.kind, e.at) for e in store.list_events(r.id)])
                for r in store.list_rollouts()]
        incidents = len(store.list_incidents()) if hasattr(store, "list_incidents") else None
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.suffix not in (".db-wal", ".db-shm"))
    return rows, incidents, [f for f in files if not f.startswith("logs")]


@pytest.fixture(scope="module")
def before(home: Path) -> Any:
    return snapshot(home)


@contextlib.contextmanager
def _env(home: Path) -> Iterator[None]:
    drop = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CONTROLPLANE_DB_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    with mock.patch.dict(os.environ, {**env, "CONTROLPLANE_HOME": str(home)}, clear=True):
        yield


def ctl_in_process(home: Path, *args: str) -> tuple[int, str, str]:
    from controlplane.cli.common import run
    from controlplane.cli.main import app

    out, err = io.StringIO(), io.StringIO()
    with _env(home), mock.patch.object(sys, "argv", ["ctl", *args]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(app)
            code: Any = 0
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), out.getvalue(), err.getvalue()


def ctl_subprocess(home: Path, *args: str) -> tuple[int, str, str]:
    with _env(home):
        proc = subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                              env=dict(os.environ), timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def assert_refused(result: tuple[int, str, str], home: Path, before: Any) -> None:
    code, out, err = result
    assert code == EXIT_USAGE, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert snapshot(home) == before, "bad input wrote something"


# ---- strategies -------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).filter(
    lambda t: "\x00" not in t and not t.startswith("-"))


def _invalid(parse: Any) -> Any:
    def bad(text: str) -> bool:
        try:
            parse(text)
        except InputError:
            return True
        return False

    return bad


bad_versioned_refs = st.one_of(
    texts,
    st.from_regex(r"\A[a-z]{1,8}(:v?-?[0-9]{0,3}|@[a-z]{0,5}|:v0)\Z"),
    st.builds(lambda n: f"minilm:v{n}", st.sampled_from(["", "0", "x", "1.5", "01a"])),
).filter(_invalid(parse_versioned_ref))
bad_refs = st.one_of(texts, st.from_regex(r"\A[a-z]{0,8}[:@][^\n]{0,6}\Z")).filter(_invalid(parse_ref))
bad_durations = st.one_of(texts, st.from_regex(r"\A-?[0-9]{0,3}(\.[0-9]*)?(d|w|ms|s|m|h|sec|min)?\Z")).filter(
    _invalid(parse_duration))


def _steps_problem(text: str) -> bool:
    try:
        steps = parse_steps(text)
    except InputError:
        return True
    return not steps or any(s < 1 or s > 100 for s in steps) or list(steps) != sorted(set(steps)) or steps[-1] != 100


step_lists = st.one_of(
    texts,
    st.lists(st.integers(-50, 150), min_size=0, max_size=6).map(lambda xs: ",".join(map(str, xs))),
).filter(_steps_problem)

_leaves = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), texts)
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                       max_leaves=8)
_PATHS = [("kind",), ("model",), ("period",), ("objectives",), ("objectives", "availability"),
          ("objectives", "availability", "target"), ("objectives", "latency", "threshold"),
          ("objectives", "latency", "target"), ("canary",), ("canary", "min_requests"), ("canary", "burn_rates"),
          ("canary", "compare", "confidence"), ("canary", "compare", "tolerance"), ("alerting",),
          ("alerting", 0, "budget"), ("alerting", 0, "long"), ("canary", "min_window"), ("metrics",)]


def _mutate(path: tuple[Any, ...], value: Any) -> str:
    import copy

    doc = copy.deepcopy(VALID_SLO)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return yaml.safe_dump(doc)


slo_texts = st.one_of(
    st.builds(_mutate, st.sampled_from(_PATHS), _values),
    _values.map(yaml.safe_dump),
    texts,
)


def _slo_invalid(text: str) -> bool:
    from controlplane.analysis.slo import parse_slo_yaml

    try:
        parse_slo_yaml(text, "slo.yaml")
    except InputError:
        return True
    return False


def _write(tmp_path_factory: pytest.TempPathFactory, content: str | bytes) -> Path:
    path = tmp_path_factory.mktemp("slo") / "slo.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


PROMOTE_OK = ["--skip-validation"]


# ---- properties -------------------------------------------------------------------------


@IN_PROCESS
@given(ref=bad_versioned_refs)
def test_promote_bad_ref(home: Path, before: Any, ref: str) -> None:
    assert_refused(ctl_in_process(home, "promote", ref, *PROMOTE_OK), home, before)


@IN_PROCESS
@given(ref=bad_refs)
def test_models_show_bad_ref(home: Path, before: Any, ref: str) -> None:
    assert_refused(ctl_in_process(home, "models", "show", ref), home, before)


@IN_PROCESS
@given(option=st.sampled_from(["--step-duration", "--analysis-interval", "--timeout"]), value=bad_durations)
def test_promote_bad_duration(home: Path, before: Any, option: str, value: str) -> None:
    assert_refused(ctl_in_process(home, "promote", "minilm:v3", option, value, *PROMOTE_OK), home, before)


@IN_PROCESS
@given(value=bad_durations)
def test_slo_validate_bad_step_duration(home: Path, before: Any, value: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = _write(tmp_path_factory, yaml.safe_dump(VALID_SLO))
    assert_refused(ctl_in_process(home, "slo", "validate", str(path), "--step-duration", value), home, before)


@IN_PROCESS
@given(steps=step_lists)
def test_promote_bad_steps(home: Path, before: Any, steps: str) -> None:
    assert_refused(ctl_in_process(home, "promote", "minilm:v3", "--steps", steps, *PROMOTE_OK), home, before)


@IN_PROCESS
@given(text=slo_texts.filter(_slo_invalid))
def test_bad_slo_files(home: Path, before: Any, text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = _write(tmp_path_factory, text)
    assert_refused(ctl_in_process(home, "slo", "validate", str(path)), home, before)
    assert_refused(ctl_in_process(home, "slo", "rules", str(path)), home, before)
    assert_refused(ctl_in_process(home, "promote", "minilm:v3", "--slo", str(path), *PROMOTE_OK), home, before)


@IN_PROCESS
@given(content=st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b)))
def test_slo_files_that_are_not_text(home: Path, before: Any, content: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = _write(tmp_path_factory, content)
    assert_refused(ctl_in_process(home, "slo", "validate", str(path)), home, before)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@IN_PROCESS
@given(
    option=st.sampled_from(["--target", "--router", "--rate", "--metrics-port", "--output", "--alias"]),
    value=texts,
)
def test_promote_bad_options(home: Path, before: Any, option: str, value: str) -> None:
    if option == "--target" and value in ("local", "kubernetes"):
        value += "x"
    if option == "--router" and value in ("", "local"):
        value = "istio"  # a kubernetes router on the local target
    if option == "--rate":
        value = value.strip() + "x"  # never a number
    if option == "--metrics-port":
        value = value + "p"
    if option == "--output" and value in ("table", "json"):
        value += "s"
    if option == "--alias":
        value = value + " !"  # never a valid alias name
    assert_refused(ctl_in_process(home, "promote", "minilm:v3", option, value, *PROMOTE_OK), home, before)


@IN_PROCESS
@given(intent=st.sampled_from(["pause", "resume", "abort", "rollback"]), model=texts.filter(
    lambda t: not t.strip() or any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in t)))
def test_intent_bad_model_name(home: Path, before: Any, intent: str, model: str) -> None:
    assert_refused(ctl_in_process(home, intent, model), home, before)


@pytest.mark.parametrize("command", ["incident show", "incident ack", "incident resolve"])
@IN_PROCESS
@given(value=texts.filter(lambda t: not t.strip().isdigit()))
def test_incident_ids_that_are_not_numbers(home: Path, before: Any, command: str, value: str) -> None:
    assert_refused(ctl_in_process(home, *command.split(), value), home, before)


# ---- the same through real subprocesses (a handful) ---------------------------------------


@SUBPROCESS
@given(args=st.one_of(
    bad_versioned_refs.map(lambda r: ["promote", r, *PROMOTE_OK]),
    bad_durations.map(lambda d: ["promote", "minilm:v3", "--step-duration", d, *PROMOTE_OK]),
    step_lists.map(lambda s: ["promote", "minilm:v3", "--steps", s, *PROMOTE_OK]),
    texts.map(lambda t: ["promote", "minilm:v3", "--rate", t + "x", *PROMOTE_OK]),
))
def test_bad_input_through_a_subprocess(home: Path, before: Any, args: list[str]) -> None:
    assert_refused(ctl_subprocess(home, *args), home, before)


@SUBPROCESS
@given(text=slo_texts.filter(_slo_invalid))
def test_bad_slo_file_through_a_subprocess(home: Path, before: Any, text: str,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    path = _write(tmp_path_factory, text)
    assert_refused(ctl_subprocess(home, "promote", "minilm:v3", "--slo", str(path), *PROMOTE_OK), home, before)
