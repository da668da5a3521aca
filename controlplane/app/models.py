"""Model lookups shared by commands."""

from __future__ import annotations

from controlplane.app.context import Context
from controlplane.errors import NotFoundError
from controlplane.ports import ModelVersion
from controlplane.refs import parse_ref


def resolve(ctx: Context, text: str) -> ModelVersion:
    """``NAME:vN`` or ``NAME@alias`` → the registered version (NotFoundError otherwise)."""
    ref = parse_ref(text)
    if ref.version is not None:
        return ctx.registry.get_version(ref.name, ref.version)
    assert ref.alias is not None
    mv = ctx.registry.get_alias(ref.name, ref.alias)
    if mv is None:
        raise NotFoundError(f"model {ref.name!r} has no alias {ref.alias!r}")
    return mv
