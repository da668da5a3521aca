"""Burn-rate arithmetic against the Google SRE Workbook's numbers ("Alerting on SLOs"), table-driven."""

from __future__ import annotations

import math

import pytest

from controlplane.analysis.burn import (
    DAY,
    HOUR,
    WORKBOOK_ALERTS,
    budget_consumed,
    burn_rate,
    burn_threshold,
    detection_time,
    error_budget,
    error_ratio_at,
    multiwindow_fires,
    reset_time,
)
from controlplane.analysis.durations import format_duration, parse_duration
from controlplane.errors import InputError

MINUTE = 60.0


@pytest.mark.parametrize(
    ("budget_fraction", "period", "long_window", "expected"),
    [
        (0.02, 30 * DAY, 1 * HOUR, 14.4),  # page: 2 % in 1 h
        (0.05, 30 * DAY, 6 * HOUR, 6.0),  # page: 5 % in 6 h
        (0.10, 30 * DAY, 1 * DAY, 3.0),  # Sloth's ticket: 10 % in 1 d
        (0.10, 30 * DAY, 3 * DAY, 1.0),  # ticket: 10 % in 3 d
        (0.02, 28 * DAY, 1 * HOUR, 13.44),  # Sloth's 28-day factors
        (0.05, 28 * DAY, 6 * HOUR, 5.6),
        (0.10, 28 * DAY, 1 * DAY, 2.8),
        (0.10, 28 * DAY, 3 * DAY, 0.9333333),
    ],
)
def test_burn_threshold_matches_the_workbook(budget_fraction: float, period: float, long_window: float, expected: float) -> None:
    assert burn_threshold(budget_fraction, period, long_window) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("burn", "window", "period", "consumed"),
    [
        (14.4, 1 * HOUR, 30 * DAY, 0.02),
        (6.0, 6 * HOUR, 30 * DAY, 0.05),
        (1.0, 3 * DAY, 30 * DAY, 0.10),
        (1.0, 30 * DAY, 30 * DAY, 1.0),  # burn 1 spends exactly the budget over the period
        (1000.0, 5 * MINUTE, 30 * DAY, 0.1157407),  # 100 % errors at 99.9 %: 11.6 % of the budget in 5 m
    ],
)
def test_budget_consumed(burn: float, window: float, period: float, consumed: float) -> None:
    assert budget_consumed(burn, window, period) == pytest.approx(consumed, rel=1e-6)


@pytest.mark.parametrize(
    ("error_ratio", "objective", "expected"),
    [
        (0.001, 0.999, 1.0),
        (0.0144, 0.999, 14.4),
        (0.006, 0.999, 6.0),
        (1.0, 0.999, 1000.0),
        (0.05, 0.95, 1.0),
        (0.0, 0.999, 0.0),
    ],
)
def test_burn_rate(error_ratio: float, objective: float, expected: float) -> None:
    assert burn_rate(error_ratio, objective) == pytest.approx(expected)
    assert error_ratio_at(expected, objective) == pytest.approx(error_ratio)


@pytest.mark.parametrize(
    ("error_ratio", "burn", "long_window", "expected"),
    [
        # Workbook: with 100 % errors a 14.4x/1 h alert fires after 0.0144 h = 51.84 s ...
        (1.0, 14.4, 1 * HOUR, 51.84),
        # ... and with just over 1.44 % errors only after almost the full hour.
        (0.0145, 14.4, 1 * HOUR, 3575.1724),
        # the 6x/6 h alert at 100 % errors: 0.006 * 6 h = 129.6 s
        (1.0, 6.0, 6 * HOUR, 129.6),
        # 10 % errors: (0.001 / 0.1) * 1 h * 14.4 = 518.4 s
        (0.10, 14.4, 1 * HOUR, 518.4),
        # scaled to a rollout: a 30 s step as the long window, 100 % errors → 0.432 s
        (1.0, 14.4, 30.0, 0.432),
        # below the threshold it never fires
        (0.01, 14.4, 1 * HOUR, math.inf),
        (0.0, 14.4, 1 * HOUR, math.inf),
    ],
)
def test_detection_time(error_ratio: float, burn: float, long_window: float, expected: float) -> None:
    assert detection_time(error_ratio, 0.999, burn, long_window) == pytest.approx(expected)


def test_reset_time_is_the_short_window() -> None:
    assert reset_time(5 * MINUTE) == 5 * MINUTE


@pytest.mark.parametrize(
    ("long_ratio", "short_ratio", "fires"),
    [
        (0.02, 0.02, True),  # both above 1.44 %
        (0.02, 0.001, False),  # the short window recovered: stop firing (fast reset)
        (0.001, 0.5, False),  # a spike the long window has not seen enough of
        (0.0144, 0.0144, False),  # exactly at the threshold: not above it
        (math.nan, 0.02, False),  # NaN never fires
        (0.02, math.nan, False),
    ],
)
def test_multiwindow_fires_only_when_both_windows_burn(long_ratio: float, short_ratio: float, fires: bool) -> None:
    assert multiwindow_fires(long_ratio, short_ratio, 14.4, 0.999) is fires


def test_workbook_alerts_are_the_recommended_set() -> None:
    table = [(a.severity, a.long_s, a.short_s, round(a.threshold(30 * DAY), 4)) for a in WORKBOOK_ALERTS]
    assert table == [
        ("page", HOUR, 5 * MINUTE, 14.4),
        ("page", 6 * HOUR, 30 * MINUTE, 6.0),
        ("ticket", DAY, 2 * HOUR, 3.0),
        ("ticket", 3 * DAY, 6 * HOUR, 1.0),
    ]
    for alert in WORKBOOK_ALERTS:
        assert alert.short_s == pytest.approx(alert.long_s / 12)


@pytest.mark.parametrize("objective", [0.0, 1.0, -0.1, 1.5])
def test_error_budget_rejects_impossible_objectives(objective: float) -> None:
    with pytest.raises(ValueError):
        error_budget(objective)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("30d", 30 * DAY), (45, 45.0), ("2.5s", 2.5)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "-3s", "0s", True, None, "1h 5m"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(InputError):
        parse_duration(text, "canary.step_duration")


@pytest.mark.parametrize(("seconds", "text"), [(3600, "1h"), (2.5, "2500ms"), (90, "90s"), (30 * DAY, "30d"), (300, "5m")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
