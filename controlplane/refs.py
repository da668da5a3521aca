"""Model references: ``NAME:vN`` (a version) or ``NAME@alias``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controlplane.errors import InputError

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_ALIAS = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
# \Z, not $: "$" also matches before a trailing newline ("minilm\n" is no model name)
_VERSION_RE = re.compile(rf"^(?P<name>{_NAME}):v(?P<version>[1-9][0-9]*)\Z")
_ALIAS_RE = re.compile(rf"^(?P<name>{_NAME})@(?P<alias>{_ALIAS})\Z")
NAME_RE = re.compile(rf"^{_NAME}\Z")
ALIAS_RE = re.compile(rf"^{_ALIAS}\Z")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:v{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


def parse_ref(text: str) -> ModelRef:
    """Parse ``NAME:vN`` or ``NAME@alias``; raise InputError otherwise."""
    match = _VERSION_RE.match(text)
    if match:
        return ModelRef(match["name"], version=int(match["version"]))
    match = _ALIAS_RE.match(text)
    if match:
        return ModelRef(match["name"], alias=match["alias"])
    raise InputError(f"invalid model reference {text!r}: expected NAME:vN (e.g. minilm:v3) or NAME@alias")


def parse_versioned_ref(text: str) -> ModelRef:
    """Parse a reference that must name a version (``NAME:vN``)."""
    ref = parse_ref(text)
    if ref.version is None:
        raise InputError(f"invalid model reference {text!r}: a version is required here (NAME:vN)")
    return ref


def check_alias(alias: str) -> str:
    """Validate a registry alias name (e.g. production)."""
    if not ALIAS_RE.match(alias):
        raise InputError(f"invalid alias {alias!r}: a letter or '_', then letters, digits, '_' or '-'")
    return alias


def check_name(name: str) -> str:
    """Validate a registered-model name."""
    if not NAME_RE.match(name):
        raise InputError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-'")
    return name
