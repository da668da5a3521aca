"""Parsers for option values: durations and step lists. One-line InputErrors."""

from __future__ import annotations

import re

from controlplane.errors import InputError

_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, option: str = "duration") -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise InputError(f"invalid {option} {text!r}: use e.g. 30s, 2m, 1h")
    value = float(match["n"]) * _UNITS[match["unit"]]
    if value <= 0:
        raise InputError(f"invalid {option} {text!r}: must be positive")
    return value


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"invalid --steps {text!r}: use comma-separated weights, e.g. 5,25,50,100") from None
    return steps


def parse_list(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())
