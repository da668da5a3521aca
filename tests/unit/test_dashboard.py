"""The dashboard's pure parts: where it may listen, the weight timeline, the failing window, escaping."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.dashboard import charts, layout, pages
from controlplane.dashboard.server import check_bind
from controlplane.errors import InputError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_allowed(host: str) -> None:
    check_bind(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com"])
def test_other_addresses_need_allow_remote(host: str) -> None:
    with pytest.raises(InputError, match="--allow-remote"):
        check_bind(host, allow_remote=False)
    check_bind(host, allow_remote=True)


def _event(kind: str, at: float, **evidence: object) -> dict[str, object]:
    return {"kind": kind, "at": at, "message": kind, "phase": "Progressing", "evidence": evidence}


def test_weight_follows_steps_and_drops_to_zero_on_rollback() -> None:
    events = [_event("ValidationPassed", 0), _event("StepStarted", 1, weight=5), _event("PausedInconclusive", 2),
              _event("StepStarted", 3, weight=25), _event("RolledBack", 4)]
    assert [w for _t, w, _k in charts.weight_points(events)] == [0, 5, 5, 25, 0]
    svg = charts.timeline(events, [])
    assert 'class="pause"' in svg and "RolledBack 0%" in svg


BURN = [
    {"objective": "availability", "status": "fired", "burn_threshold": 14.4, "severity": "page", "long_window_s": 6.0,
     "short_window_s": 3.0, "long_burn": 100.0, "short_burn": 200.0},
    {"objective": "latency", "status": "ok", "burn_threshold": 14.4, "severity": "page", "long_window_s": 6.0,
     "short_window_s": 3.0, "long_burn": 0.0, "short_burn": 0.0},
]


def test_the_fired_window_is_marked_against_its_threshold() -> None:
    html = pages.burn_table(BURN)
    failing = html.split('<tr class="failing">')[1].split("</tr>")[0]
    assert "availability" in failing and "14.4x" in failing and "FAILING" in failing
    assert html.count('class="failing"') == 1
    assert charts.burn_bars(BURN).count("FAILING") == 1


def test_runbook_markdown_does_not_pass_raw_html() -> None:
    assert "<script>" not in layout.markdown("hello <script>alert(1)</script>")
    assert "<code>ctl status m</code>" in layout.markdown("`ctl status m`")


def test_messages_are_escaped() -> None:
    page = pages.rollouts_page([{"id": 1, "ref": "m:v2", "phase": "Progressing", "weight": 5, "step": 0,
                                 "steps": [5, 100], "message": "<img src=x>", "updated_at": 0.0}], "e")
    assert "<img src=x>" not in page and "&lt;img src=x&gt;" in page


@pytest.mark.parametrize(("seconds", "shown"), [(3.0, "3s"), (7.65997, "7.66s"), (45.9598, "46s"), (36.0, "36s"),
                                                (300.0, "5m"), (3600.0, "1h"), (4000.5, "4000s")])
def test_window_lengths_read_well(seconds: float, shown: str) -> None:
    assert charts.duration(seconds) == shown


def test_pages_and_the_live_endpoint_follow_the_store(tmp_path: Path) -> None:
    """The JSON endpoint's etag changes when the rollout does (the page script reloads then) and the
    rollout is terminal once rolled back; the pages show the phase, the incident and its commands."""
    import json

    from controlplane.app.context import open_context
    from controlplane.app.incidents import open_incident
    from controlplane.dashboard.server import Dashboard
    from controlplane.settings import load_settings

    board = Dashboard(open_context(load_settings({"CONTROLPLANE_HOME": str(tmp_path)})))
    store = board.ctx.store
    spec = {"model": "m", "version": 2, "stable_version": 1, "steps": [5, 100]}
    record = store.create_rollout(spec, {"phase": "Progressing", "weight": 5, "step_index": 0}, 1.0)

    def api() -> dict[str, object]:
        status, content_type, body = board.handle(f"/api/rollouts/{record.id}")
        assert (status, content_type) == (200, "application/json")
        return json.loads(body)

    first = api()
    assert first["terminal"] is False and api()["etag"] == first["etag"]
    assert 'data-poll="/api/rollouts/1"' in board.handle(f"/rollouts/{record.id}")[2].decode()

    store.add_analysis(record.id, 0, 5, "fail", "errors", {"failure_mode": "slo-burn-errors", "burn": BURN}, 2.0)
    store.save_rollout(record.id, record.revision, spec, {"phase": "RolledBack", "weight": 0, "step_index": 0},
                       [("RolledBack", "rolled back", {})], 3.0)
    incident = open_incident(store, failure_mode="slo-burn-errors", severity="page", summary="errors", evidence={},
                             rollout_id=record.id, model="m", version=2, now=3.0)
    last = api()
    assert last["terminal"] is True and last["etag"] != first["etag"]

    page = board.handle(f"/rollouts/{record.id}")[2].decode()
    assert "RolledBack" in page and "data-poll" not in page and 'class="failing"' in page
    assert f'href="/incidents/{incident.id}#runbook"' in page and f"ctl runbook {incident.id}" in page
    assert board.handle(f"/incidents/{incident.id}")[0] == 200
    assert f'href="/rollouts/{record.id}"' in board.handle("/")[2].decode()
    assert [board.handle(p)[0] for p in ("/rollouts/7", "/incidents/7", "/nope", "/static/x.js")] == [404] * 4
    assert board.handle("/static/dashboard.js")[1].startswith("text/javascript")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_the_controller_refuses_a_non_loopback_dashboard_before_touching_the_cluster(tmp_path: Path, host: str) -> None:
    """`ctl controller run --dashboard-host` other than loopback: one line naming the flag, exit 2, at once
    (the kubeconfig points nowhere: nothing is contacted)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "CONTROLPLANE_HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}
    proc = subprocess.run(
        [sys.executable, "-m", "controlplane.cli.main", "controller", "run", "--dashboard-port", "8470",
         "--dashboard-host", host], capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "refusing to bind the dashboard" in proc.stderr
    assert "--dashboard-allow-remote" in proc.stderr
