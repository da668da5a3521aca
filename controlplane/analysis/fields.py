"""A strict reader of decoded YAML mappings: remembers the path for one-line errors, rejects unknown keys."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from controlplane.analysis.durations import parse_duration
from controlplane.errors import InputError

MISSING: Any = object()


class Section:
    """A mapping being read; remembers its path for messages and rejects unknown keys."""

    def __init__(self, data: object, path: str, source: str) -> None:
        self.path = path
        self.source = source
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise self.error(path, f"expected a mapping, got {type(data).__name__}")
        self.data = dict(data)
        self.seen: set[str] = set()

    def error(self, path: str, problem: str) -> InputError:
        return InputError(f"{self.source}: {path or 'spec'}: {problem}")

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any = MISSING) -> Any:
        self.seen.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is MISSING:
            raise self.error(self.field(key), "required field is missing")
        return default

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def section(self, key: str) -> Section:
        return Section(self.get(key, {}), self.field(key), self.source)

    def number(
        self,
        key: str,
        default: Any = MISSING,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
    ) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(self.field(key), f"expected a number, got {value!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise self.error(self.field(key), f"must be {'>' if low_open else '>='} {low:g}, got {value!r}")
        if high is not None and value > high:
            raise self.error(self.field(key), f"must be <= {high:g}, got {value!r}")
        return float(value)

    def duration(self, key: str, default: Any = MISSING) -> Any:
        value = self.get(key, default)
        if value is default and default is not MISSING:
            return value  # type: ignore[no-any-return]
        try:
            return parse_duration(value, self.field(key))
        except InputError as exc:
            raise InputError(f"{self.source}: {exc}") from None

    def text(self, key: str, default: Any = MISSING, pattern: re.Pattern[str] | None = None) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(self.field(key), f"expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.error(self.field(key), f"invalid name {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(self.field(key), f"expected true or false, got {value!r}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(self.field(unknown[0]), f"unknown field (allowed: {', '.join(sorted(self.seen))})")
