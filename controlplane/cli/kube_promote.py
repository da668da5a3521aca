"""`ctl promote --target kubernetes` and the intents on Kubernetes rollouts."""

from __future__ import annotations

from controlplane.cli.common import OutputFormat
from controlplane.errors import NotAvailableError


def promote_kubernetes(
    ref: str, steps: str, step_duration: str, router: str | None, skip_validation: bool, alias: str, wait: bool,
    output: OutputFormat,
) -> None:
    raise NotAvailableError("--target kubernetes is not wired in this build yet (issue #5)")


def kube_intent(model: str, intent: str, output: OutputFormat) -> None:
    raise NotAvailableError("--target kubernetes is not wired in this build yet (issue #5)")
