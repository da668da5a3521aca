"""The validation DAG as plain data, shared by the Argo template and the local engine.

A ``ValidationDag`` is a small graph of ``CheckNode``s (one per validator check) plus the
GPU settings that GPU nodes are scheduled with. It is checked on construction: unique
DNS-1123 names, known dependencies, no cycles. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from controlplane.engine.checks import is_dns1123_label
from controlplane.errors import InputError

_RESOURCE_NAME = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration (the subset a GPU pool needs)."""

    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str = "NoSchedule"

    def __post_init__(self) -> None:
        if not self.key or not _RESOURCE_NAME.match(self.key):
            raise InputError(f"invalid toleration key {self.key!r}")
        if self.operator not in _TOLERATION_OPERATORS:
            raise InputError(f"invalid toleration operator {self.operator!r}; use Exists or Equal")
        if self.operator == "Exists" and self.value:
            raise InputError(f"toleration {self.key!r}: operator Exists takes no value")
        if self.operator == "Equal" and self.value is None:
            raise InputError(f"toleration {self.key!r}: operator Equal needs a value")
        if self.effect not in _TOLERATION_EFFECTS:
            raise InputError(
                f"invalid toleration effect {self.effect!r}; use NoSchedule, PreferNoSchedule or NoExecute"
            )

    def to_dict(self) -> dict[str, str]:
        data = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            data["value"] = self.value
        if self.effect:
            data["effect"] = self.effect
        return data


@dataclass(frozen=True)
class GpuSettings:
    """How GPU steps are scheduled: resource limit, node selector, tolerations."""

    resource: str = "nvidia.com/gpu"
    count: int = 1
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_selector", MappingProxyType(dict(self.node_selector)))
        object.__setattr__(self, "tolerations", tuple(self.tolerations))
        if not _RESOURCE_NAME.match(self.resource):
            raise InputError(f"invalid GPU resource name {self.resource!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise InputError(f"GPU count must be a whole number of at least 1, got {self.count!r}")
        for key, value in self.node_selector.items():
            if not _RESOURCE_NAME.match(key) or not isinstance(value, str):
                raise InputError(f"invalid GPU node selector {key}={value!r}")


@dataclass(frozen=True)
class CheckNode:
    """One check of the DAG: runs ``ctl validate ... --checks NAME`` after ``depends``."""

    name: str
    depends: tuple[str, ...] = ()
    gpu: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "depends", tuple(self.depends))
        if not is_dns1123_label(self.name):
            raise InputError(f"invalid check name {self.name!r}: use lowercase letters, digits and '-'")


@dataclass(frozen=True)
class ValidationDag:
    """Checks and their dependencies, in definition (and report) order."""

    nodes: tuple[CheckNode, ...]
    gpu: GpuSettings = field(default_factory=GpuSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes:
            raise InputError("a validation DAG needs at least one check")
        names = [n.name for n in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(f"duplicate checks in the validation DAG: {', '.join(duplicates)}")
        known = set(names)
        for node in self.nodes:
            unknown = [d for d in node.depends if d not in known]
            if unknown:
                raise InputError(f"check {node.name!r} depends on unknown check(s): {', '.join(unknown)}")
            if node.name in node.depends:
                raise InputError(f"check {node.name!r} depends on itself")
        self._topological()  # raises on cycles

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def node(self, name: str) -> CheckNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InputError(f"unknown check {name!r}; known: {', '.join(self.names)}")

    def _topological(self) -> tuple[str, ...]:
        order: list[str] = []
        done: set[str] = set()
        remaining = list(self.nodes)
        while remaining:
            ready = [n for n in remaining if all(d in done for d in n.depends)]
            if not ready:
                cycle = ", ".join(n.name for n in remaining)
                raise InputError(f"the validation DAG has a cycle among: {cycle}")
            for node in ready:
                order.append(node.name)
                done.add(node.name)
            remaining = [n for n in remaining if n.name not in done]
        return tuple(order)

    def order(self, selected: Iterable[str] | None = None) -> tuple[str, ...]:
        """Definition order restricted to ``selected`` (all checks when None)."""
        wanted = set(self.names if selected is None else selected)
        for name in wanted:
            self.node(name)
        return tuple(n for n in self.names if n in wanted)

    def effective_depends(self, selected: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Dependencies among ``selected`` checks only: a check that is not selected is
        skipped, and whoever depended on it waits for that check's own dependencies
        (Argo treats a skipped task as done, so both engines order the same way)."""
        chosen = set(self.order(selected))
        result: dict[str, tuple[str, ...]] = {}
        for name in self.order(chosen):
            deps: list[str] = []
            stack = list(self.node(name).depends)
            seen: set[str] = set()
            while stack:
                dep = stack.pop(0)
                if dep in seen:
                    continue
                seen.add(dep)
                if dep in chosen:
                    deps.append(dep)
                else:
                    stack.extend(self.node(dep).depends)
            result[name] = tuple(n for n in self.names if n in deps)
        return result
