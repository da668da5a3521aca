"""`ctl promote --target kubernetes` and the intents on Kubernetes rollouts.

The namespace is ``$CONTROLPLANE_NAMESPACE`` (default ``default``); the cluster is the
current kubeconfig context (``$KUBECONFIG``) or the in-cluster service account.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from controlplane.cli.common import OutputFormat, console, emit, err_console
from controlplane.errors import EXIT_FAILED, TimedOut

ABORT_WAIT_S = 120.0  # after --timeout: how long to wait for the controller to finish the abort


def _namespace() -> str:
    return os.environ.get("CONTROLPLANE_NAMESPACE") or "default"


def promote_kubernetes(
    ref: str, steps: str, step_duration: str, router: str | None, skip_validation: bool, alias: str, wait: bool,
    output: OutputFormat, timeout_s: float | None = None,
) -> None:
    from controlplane.adapters.kube import KubeClient
    from controlplane.app import kube_commands
    from controlplane.cli.parsing import parse_duration, parse_steps
    from controlplane.refs import parse_versioned_ref

    parsed_steps = parse_steps(steps)
    duration = parse_duration(step_duration, "--step-duration")
    parsed = parse_versioned_ref(ref)
    client = KubeClient()
    namespace = _namespace()
    cr = kube_commands.promote(client, namespace, ref, steps=parsed_steps, step_duration_s=duration, router=router,
                               skip_validation=skip_validation, alias=alias)
    if skip_validation:  # on stderr: stdout stays the command's answer (-o json)
        err_console.print("[bold yellow]WARNING: validation gates skipped (--skip-validation); this is recorded.[/]")
    name = cr["metadata"]["name"]
    if not wait:
        emit(output, {"rollout": f"{namespace}/{name}", "ref": ref, "phase": "Pending"},
             lambda: print(f"rollout {namespace}/{name} asked for {ref}"))
        return

    def show(status: dict[str, Any]) -> None:
        if output is not OutputFormat.json and status.get("phase"):
            console.print(f"{status.get('phase')}: {status.get('weight', 0)}% {status.get('message', '')}")

    assert parsed.version is not None
    try:
        final = kube_commands.wait(client, namespace, parsed.name, parsed.version, timeout_s=timeout_s, on_change=show)
    except TimedOut:  # CI's limit: abort (the controller returns all traffic to stable), then report
        kube_commands.intent(client, namespace, parsed.name, "abort")
        final = kube_commands.wait(client, namespace, parsed.name, parsed.version, timeout_s=ABORT_WAIT_S)
        raise TimedOut(f"rollout {namespace}/{name} not finished within the --timeout of {timeout_s:g}s: "
                       f"{final.get('phase')}, all traffic back to stable") from None
    emit(output, {"rollout": f"{namespace}/{name}", "ref": ref, **final},
         lambda: console.print(f"rollout {namespace}/{name} {final.get('phase')}: {final.get('message')}"))
    if final.get("phase") != "Promoted":
        raise typer.Exit(EXIT_FAILED)


def kube_intent(model: str, intent: str, output: OutputFormat) -> None:
    from controlplane.adapters.kube import KubeClient
    from controlplane.app import kube_commands

    namespace = _namespace()
    cr = kube_commands.intent(KubeClient(), namespace, model, intent)
    name = cr["metadata"]["name"]
    emit(output, {"rollout": f"{namespace}/{name}", "intent": intent},
         lambda: print(f"{intent} requested on rollout {namespace}/{name}"))


def kube_status(model: str, output: OutputFormat) -> None:
    from controlplane.adapters.kube import KubeClient
    from controlplane.app import kube_commands

    data = kube_commands.read(KubeClient(), _namespace(), model)
    emit(output, data, lambda: print(
        f"{data['rollout']} v{data['version']} {data['phase']} at {data['weight']}%: {data['message']}"))
