"""Pure checks of a rollout spec: every problem as one readable line."""

from __future__ import annotations

import itertools
import re

from controlplane.engine.types import RolloutSpec

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns1123_label(name: str) -> bool:
    """A Kubernetes DNS-1123 label: lower-case letters, digits and '-', at most 63 characters."""
    return len(name) <= 63 and _DNS1123_LABEL.match(name) is not None


def spec_problems(spec: RolloutSpec, routers: frozenset[str] | None = None) -> list[str]:
    problems: list[str] = []
    steps = spec.steps
    if not steps:
        problems.append("steps must not be empty")
    elif any(s < 1 or s > 100 for s in steps):
        problems.append(f"steps must be weights between 1 and 100, got {list(steps)}")
    elif any(b <= a for a, b in itertools.pairwise(steps)):
        problems.append(f"steps must be strictly increasing, got {list(steps)}")
    elif steps[-1] != 100:
        problems.append(f"the last step must be 100 (full traffic), got {steps[-1]}")
    if spec.step_duration_s <= 0:
        problems.append("step duration must be positive")
    if spec.analysis_interval_s <= 0:
        problems.append("analysis interval must be positive")
    if spec.max_extensions < 0:
        problems.append("max extensions must be zero or more")
    if spec.stable_version is not None and spec.stable_version == spec.version:
        problems.append(f"{spec.model}:v{spec.version} is already the stable version")
    if routers is not None and spec.router not in routers:
        problems.append(f"unknown traffic router {spec.router!r}; known: {', '.join(sorted(routers))}")
    return problems
