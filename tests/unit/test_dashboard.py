"""The dashboard's pure parts: where it may listen, the weight timeline, the failing window, escaping."""

from __future__ import annotations

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
