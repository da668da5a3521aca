"""Durations as Prometheus writes them (``30s``, ``5m``, ``1h30m``, ``500ms``, ``30d``) to and from seconds."""

from __future__ import annotations

import math
import re

from controlplane.errors import InputError

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+$")


def parse_duration(value: object, field: str = "duration") -> float:
    """Seconds from ``30s``/``5m``/``1h30m``/``2.5s`` or a bare number of seconds; InputError naming ``field``."""
    if isinstance(value, bool):
        raise InputError(f"{field}: expected a duration such as 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.match(value.strip()):
        seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(value.strip()))
    else:
        raise InputError(f"{field}: expected a duration such as 30s, 5m or 1h, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{field}: must be a positive duration, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact Prometheus duration for ``seconds`` (``3600`` → ``1h``, ``2.5`` → ``2500ms``)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"not a positive duration: {seconds!r}")
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"duration below one millisecond: {seconds!r}")
    for unit in ("d", "h", "m", "s"):
        size = round(_UNITS[unit] * 1000)
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
