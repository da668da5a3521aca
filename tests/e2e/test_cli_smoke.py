"""Every `ctl` command, end to end, with real arguments and asserted outcomes: a table over the
command tree, run in order on one home (the real MiniLM registered), so a command that crashes
(a TypeError in its wiring, exit 70) or answers wrongly fails here. A command added to `ctl`
without a row in the table fails `test_every_command_has_a_row`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Ctl

pytestmark = pytest.mark.slow

State = dict[str, Any]
Check = Callable[[State, subprocess.CompletedProcess[str]], None]

STARVED_SLO = """\
apiVersion: controlplane/v1
kind: SLO
model: minilm
objectives:
  availability: {target: 99.9}
canary:
  min_requests: 1000000   # never reached at the local target's rate: every step is inconclusive
"""


@dataclass(frozen=True)
class Case:
    command: tuple[str, ...]  # the command's path in the tree
    args: Callable[[State], list[str]]  # its arguments (from what earlier rows left in the state)
    check: Check
    code: int = 0
    json: bool = True  # append -o json and parse stdout into state["out"]
    label: str = ""

    @property
    def id(self) -> str:
        return " ".join(self.command) + (f" [{self.label}]" if self.label else "")


def _out(state: State) -> Any:
    return state["out"]


def _wait_phase(ctl: Ctl, phase: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = ctl.json("status", "minilm")
        assert isinstance(data, dict)
        if data["phase"] == phase:
            return data
        time.sleep(0.5)
    pytest.fail(f"rollout never reached {phase}: {data}", pytrace=False)


def check_help(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    for name in ("register", "models", "validate", "promote", "status", "history", "pause", "resume", "abort",
                 "rollback", "incident", "runbook", "slo", "controller", "--debug"):
        assert name in proc.stdout, name
    assert "rollout-runner" not in proc.stdout


def check_models_list(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert {m["name"]: m["versions"] for m in _out(state)} == {"minilm": [1, 2]}
    assert _out(state)[0]["aliases"] == ["production→v1"]


def check_models_show(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert (out["ref"], out["aliases"]) == ("minilm:v1", ["production"]), out
    assert out["tags"]["arch.layers"] == "6"


def check_validate(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert (out["ref"], out["phase"]) == ("minilm:v2", "Succeeded")
    assert [(c["check"], c["status"]) for c in out["checks"]] == [("tokenizer-parity", "passed")]


def check_slo_validate(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert out["model"] == "minilm" and [o["name"] for o in out["objectives"]] == ["requests-availability"]
    assert out["canary"]["min_requests"] == 1000000


def check_slo_rules(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    import yaml

    groups = yaml.safe_load(proc.stdout)["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert {(a["labels"]["sloth_slo"], a["labels"]["severity"]) for a in alerts} == {
        ("requests-availability", "page"), ("requests-availability", "ticket")}, alerts
    assert all(a["annotations"]["runbook"].endswith("slo-burn-errors.md") for a in alerts)


def check_slo_dashboards(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    folder = Path(state["dashboards"])
    written = sorted(p.name for p in folder.glob("*.json"))
    assert written == ["minilm-debug.json", "minilm-executive.json", "minilm-oncall.json"], written
    assert proc.stdout.split() == [str(folder / n) for n in ("minilm-executive.json", "minilm-oncall.json",
                                                             "minilm-debug.json")], proc.stdout
    for name in written:
        board = json.loads((folder / name).read_text())
        assert board["panels"] and {v["name"] for v in board["templating"]["list"]} >= {"model", "version"}, name


def check_promoted(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert (out["ref"], out["phase"], out["weight"]) == ("minilm:v2", "Promoted", 0)
    state["promoted"] = out["id"]


def check_status(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert (_out(state)["id"], _out(state)["phase"]) == (state["promoted"], "Promoted")


def check_history(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    promoted = next(r for r in _out(state) if r["id"] == state["promoted"])
    assert [e["kind"] for e in promoted["events"]][-2:] == ["Promoted", "PromotionFinalized"]  # then traffic on stable
    assert [e["evidence"]["weight"] for e in promoted["events"] if e["kind"] == "StepStarted"] == [50, 100]


def check_runner_on_ended(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.stdout == "" and proc.stderr == ""


def check_started(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert (_out(state)["ref"], _out(state)["phase"]) == ("minilm:v1", "Pending")
    state["active"] = _out(state)["id"]


def check_intent(phase: str | None = None, recorded: bool = True) -> Check:
    def check(state: State, proc: subprocess.CompletedProcess[str]) -> None:
        out = _out(state)
        assert (out["id"], out["recorded"]) == (state["active"], recorded), out
        if phase is not None:
            assert (out["phase"], out["weight"]) == (phase, 0), out

    return check


def check_paused_with_incident(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    state["active"] = _out(state)["id"]
    paused = _wait_phase(state["ctl"], "Paused")
    assert "inconclusive" in paused["message"], paused


def check_incident_list(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    (incident,) = [i for i in _out(state) if i["failure_mode"] == "canary-inconclusive"]
    assert (incident["ref"], incident["state"], incident["severity"]) == ("minilm:v1", "open", "ticket")
    state["incident"] = incident["id"]


def check_incident_show(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert (out["id"], out["rollout_id"], out["failure_mode"]) == (state["incident"], state["active"], "canary-inconclusive")
    assert "canary-inconclusive" in out["runbook"] and out["evidence"], out


def check_incident_state(expected: str) -> Check:
    def check(state: State, proc: subprocess.CompletedProcess[str]) -> None:
        assert (_out(state)["id"], _out(state)["state"]) == (state["incident"], expected)

    return check


def check_runbook_for_incident(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert out["id"] == "canary-inconclusive" and out["incident"] == state["incident"]
    assert any(c.startswith("ctl ") for c in out["commands"]), out["commands"]


def check_runbooks(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    ids = {b["id"] for b in _out(state)}
    assert {"slo-burn-errors", "canary-inconclusive", "tokenizer-mismatch"} <= ids, ids


def check_runbook(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert _out(state)["id"] == "slo-burn-errors" and "slo-burn-errors" in _out(state)["triggers"]


def check_register(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    out = _out(state)
    assert out["ref"] == "minilm:v3" and out["tags"]["lineage.source"] == "minilm:v1", out
    assert out["tags"]["quantization"].startswith("int8")


def check_dashboard_refuses_remote(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert "not a loopback address" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def check_controller(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    assert "no usable Kubernetes configuration" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _minilm(_: State) -> str:
    from controlplane.models import minilm_dir

    return str(minilm_dir())


def check_serve_refuses_unknown_version(state: State, proc: subprocess.CompletedProcess[str]) -> None:
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "minilm" in err and "7" in err, err
    assert proc.stdout == ""


CASES = [
    Case((), lambda s: ["--help"], check_help, json=False, label="--help"),
    Case(("models", "list"), lambda s: ["models", "list"], check_models_list),
    Case(("models", "show"), lambda s: ["models", "show", "minilm@production"], check_models_show),
    Case(("validate",), lambda s: ["validate", "minilm:v2", "--checks", "tokenizer-parity"], check_validate),
    Case(("slo", "validate"), lambda s: ["slo", "validate", s["slo"], "--step-duration", "1s"], check_slo_validate),
    Case(("slo", "rules"), lambda s: ["slo", "rules", s["slo"]], check_slo_rules, json=False),
    Case(("slo", "dashboards"), lambda s: ["slo", "dashboards", s["slo"], "--out", s["dashboards"]],
         check_slo_dashboards, json=False),
    Case(("promote",), lambda s: ["promote", "minilm:v2", "--skip-validation", "--steps", "50,100",
                                  "--step-duration", "4s"], check_promoted),
    Case(("status",), lambda s: ["status", "minilm"], check_status),
    Case(("history",), lambda s: ["history", "minilm"], check_history),
    Case(("rollout-runner",), lambda s: ["rollout-runner", str(s["promoted"])], check_runner_on_ended, json=False),
    Case(("promote",), lambda s: ["promote", "minilm:v1", "--no-wait", "--skip-validation", "--step-duration", "10m"],
         check_started, label="--no-wait"),
    Case(("pause",), lambda s: ["pause", "minilm"], check_intent()),
    Case(("resume",), lambda s: ["resume", "minilm"], check_intent()),
    Case(("rollback",), lambda s: ["rollback", "minilm"], check_intent("RolledBack")),
    Case(("promote",), lambda s: ["promote", "minilm:v1", "--no-wait", "--skip-validation", "--slo", s["slo"],
                                  "--step-duration", "1s", "--analysis-interval", "1s"],
         check_paused_with_incident, label="starved SLO"),
    Case(("incident", "list"), lambda s: ["incident", "list", "--model", "minilm"], check_incident_list),
    Case(("incident", "show"), lambda s: ["incident", "show", str(s["incident"])], check_incident_show),
    Case(("runbook",), lambda s: ["runbook", str(s["incident"])], check_runbook_for_incident, label="incident"),
    Case(("incident", "ack"), lambda s: ["incident", "ack", str(s["incident"])], check_incident_state("acknowledged")),
    Case(("incident", "resolve"), lambda s: ["incident", "resolve", str(s["incident"])], check_incident_state("resolved")),
    Case(("abort",), lambda s: ["abort", "minilm"], check_intent("Aborted")),
    Case(("runbook",), lambda s: ["runbook"], check_runbooks, label="list"),
    Case(("runbook",), lambda s: ["runbook", "slo-burn-errors"], check_runbook),
    Case(("register",), lambda s: ["register", "minilm", "--model-dir", _minilm(s), "--quantize", "int8"],
         check_register),
    Case(("controller", "run"), lambda s: ["controller", "run", "--kubeconfig", s["missing"], "--no-leader-elect",
                                           "--port", "-1"], check_controller, code=2, json=False),
    # ctl serve blocks while it serves (tests/serve drives real servers); here: its wiring up to the registry
    Case(("serve",), lambda s: ["serve", "minilm:v7", "--port", "0"], check_serve_refuses_unknown_version,
         code=2, json=False),
    Case(("dashboard",), lambda s: ["dashboard", "--host", "0.0.0.0"], check_dashboard_refuses_remote, code=2,
         json=False, label="non-loopback refused"),  # served and read: test_dashboard_serves_the_rollouts
]


def command_paths() -> set[tuple[str, ...]]:
    """Every command of `ctl`, hidden ones included, as its path in the tree."""
    from typer.main import get_command

    from controlplane.cli.main import app

    def walk(cmd: Any, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        paths: set[tuple[str, ...]] = set()
        for name, sub in cmd.commands.items():
            paths |= walk(sub, (*prefix, name)) if hasattr(sub, "commands") else {(*prefix, name)}
        return paths

    return walk(get_command(app), ())


def test_every_command_has_a_row() -> None:
    assert command_paths() == {c.command for c in CASES if c.command}


@pytest.fixture(scope="module")
def state(home_ctl: Ctl, tmp_path_factory: pytest.TempPathFactory) -> State:
    folder = tmp_path_factory.mktemp("smoke")
    slo = folder / "starved-slo.yaml"
    slo.write_text(STARVED_SLO, encoding="utf-8")
    dashboards = folder / "dashboards"
    dashboards.mkdir()
    return {"ctl": home_ctl, "slo": str(slo), "missing": str(folder / "no-kubeconfig"), "dashboards": str(dashboards)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_command(case: Case, state: State) -> None:
    ctl: Ctl = state["ctl"]
    args = case.args(state) + (["-o", "json"] if case.json else [])
    proc = ctl(*args)
    assert proc.returncode == case.code, (args, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    if case.json:
        state["out"] = json.loads(proc.stdout)
    case.check(state, proc)


def test_dashboard_serves_the_rollouts(state: State) -> None:
    """`ctl dashboard` on the smoke home: the list shows every rollout with its phase, each rollout page
    its audit log, the JSON endpoint the same phase and weight as `ctl history`."""
    import httpx

    from tests.e2e.dashboard_server import dashboard

    ctl: Ctl = state["ctl"]
    history = ctl.json("history", "minilm")
    with dashboard(ctl) as url:
        listing = httpx.get(f"{url}/")
        assert listing.status_code == 200
        for rollout in history:
            assert f'href="/rollouts/{rollout["id"]}"' in listing.text
            page = httpx.get(f"{url}/rollouts/{rollout['id']}")
            assert page.status_code == 200 and rollout["phase"] in page.text
            assert all(e["kind"] in page.text for e in rollout["events"])
            api = httpx.get(f"{url}/api/rollouts/{rollout['id']}").json()
            assert (api["rollout"]["phase"], api["rollout"]["weight"], api["terminal"]) == (
                rollout["phase"], rollout["weight"], True)
        assert httpx.get(f"{url}/rollouts/999999").status_code == 404


def test_the_smoke_home_is_left_with_nothing_active(state: State) -> None:
    from controlplane.app.runner_lease import is_driven

    ctl: Ctl = state["ctl"]
    assert ctl.json("status") == []
    assert not any(is_driven(ctl.home, int(p.stem.split("-")[1])) for p in Path(ctl.home, "runners").glob("*.lock"))
