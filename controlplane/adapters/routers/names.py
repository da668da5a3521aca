"""The routers' names and the route option each needs: the one table every layer reads
(the CLI's --router, the ModelRollout checks, the factory)."""

from __future__ import annotations

from controlplane.errors import InputError

DEFAULT_ROUTER = "gateway-api"
#: Options each router needs in ``RouteTarget.options`` (besides ``deployment``/``service``),
#: spelled as the ModelRollout's ``spec.router`` fields.
REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {
    "gateway-api": ("httpRoute",),
    "istio": ("virtualService",),
    "kserve": ("inferenceService",),
    "replica-ratio": (),
}
ROUTERS: tuple[str, ...] = tuple(REQUIRED_OPTIONS)


def check_router(name: str) -> str:
    if name not in ROUTERS:
        raise InputError(f"unknown traffic router {name!r}; known: {', '.join(ROUTERS)}")
    return name


def route_option(name: str) -> str | None:
    """The one ``spec.router`` field naming the route object ``name`` patches (None for replica-ratio)."""
    options = REQUIRED_OPTIONS[check_router(name)]
    return options[0] if options else None
