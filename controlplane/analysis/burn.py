"""Burn-rate arithmetic from the Google SRE Workbook, chapter "Alerting on SLOs".

- burn rate = error ratio / (1 - SLO): 1 spends exactly the budget over the SLO period.
- budget consumed while an alert window burns = burn rate * window / period.
- the burn-rate threshold that spends ``budget_fraction`` of the budget within the long window
  = budget_fraction * period / long window (2 % of 30 days in 1 hour → 14.4).
- multi-window: fire only when the long AND the short window both burn faster than the threshold.

Every function is pure; ratios are fractions (0.999, not 99.9) and windows are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def error_budget(objective: float) -> float:
    """The allowed error ratio, 1 - SLO (0.001 for 99.9 %)."""
    if not 0.0 < objective < 1.0:
        raise ValueError(f"objective must be a ratio in (0, 1), got {objective!r}")
    return 1.0 - objective


def burn_rate(error_ratio: float, objective: float) -> float:
    """How many times faster than sustainable the budget is being spent."""
    return error_ratio / error_budget(objective)


def error_ratio_at(burn: float, objective: float) -> float:
    """The error ratio that burns at ``burn`` (14.4 * 0.001 = 1.44 %)."""
    return burn * error_budget(objective)


def budget_consumed(burn: float, window_s: float, period_s: float) -> float:
    """Fraction of the period's error budget spent by burning at ``burn`` for ``window_s``."""
    return burn * window_s / period_s


def burn_threshold(budget_fraction: float, period_s: float, long_window_s: float) -> float:
    """The burn rate that spends ``budget_fraction`` of the budget within the long window."""
    return budget_fraction * period_s / long_window_s


def detection_time(error_ratio: float, objective: float, burn: float, long_window_s: float) -> float:
    """Seconds until a long window of ``long_window_s`` crosses ``burn`` after a sudden error ratio starts.

    The Workbook's formula: (1 - SLO) / error ratio * window * burn. The short window, being shorter,
    fills first, so the long one decides. ``inf`` when the error ratio never reaches the threshold.
    """
    threshold = error_ratio_at(burn, objective)
    if error_ratio <= 0.0 or error_ratio < threshold:
        return math.inf
    return threshold / error_ratio * long_window_s


def reset_time(short_window_s: float) -> float:
    """After the errors stop, the short window stops firing within its own length."""
    return short_window_s


def multiwindow_fires(long_ratio: float, short_ratio: float, burn: float, objective: float) -> bool:
    """True when both windows' error ratios burn faster than ``burn``; NaN never fires."""
    threshold = error_ratio_at(burn, objective)
    return bool(long_ratio > threshold and short_ratio > threshold)


@dataclass(frozen=True)
class AlertWindow:
    """One multi-window burn-rate alert: spend ``budget_fraction`` within ``long_s`` (checked also on ``short_s``)."""

    budget_fraction: float
    long_s: float
    short_s: float
    severity: str  # page | ticket

    def threshold(self, period_s: float) -> float:
        return burn_threshold(self.budget_fraction, period_s, self.long_s)


HOUR = 3600.0
DAY = 24 * HOUR

#: The Workbook's recommendation (page 2 % in 1 h, page 5 % in 6 h, ticket 10 % in 3 d) with Sloth's
#: extra ticket (10 % in 1 d). For 30 days: 14.4, 6, 3, 1; for 28 days: 13.44, 5.6, 2.8, 0.933.
WORKBOOK_ALERTS: tuple[AlertWindow, ...] = (
    AlertWindow(0.02, 1 * HOUR, 5 * 60.0, "page"),
    AlertWindow(0.05, 6 * HOUR, 30 * 60.0, "page"),
    AlertWindow(0.10, 1 * DAY, 2 * HOUR, "ticket"),
    AlertWindow(0.10, 3 * DAY, 6 * HOUR, "ticket"),
)
