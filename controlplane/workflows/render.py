"""Render the validation WorkflowTemplate: ``python -m controlplane.workflows.render``.

With no options it rewrites ``workflows/validation-template.yaml`` (the committed copy users
``kubectl apply``); ``--check`` only reports drift; ``-o -`` prints. The GPU options render a
variant for another GPU pool without touching the definition.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from controlplane.errors import InputError
from controlplane.workflows.dag import GpuSettings, Toleration, ValidationDag
from controlplane.workflows.template import DEFAULT_IMAGE, TEMPLATE_NAME, VALIDATION_DAG, render_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / "workflows" / "validation-template.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m controlplane.workflows.render", description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default=str(COMMITTED), help="file to write, or - for stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if the output file differs from the rendering")
    p.add_argument("--name", default=TEMPLATE_NAME, help="WorkflowTemplate name")
    p.add_argument("--image", default=DEFAULT_IMAGE, help="default of the image parameter")
    p.add_argument("--gpu-resource", help="extended resource of GPU steps (default nvidia.com/gpu)")
    p.add_argument("--gpu-count", type=int, help="GPUs per GPU step")
    p.add_argument(
        "--gpu-node-selector", action="append", metavar="KEY=VALUE", help="replaces the default node selector"
    )
    p.add_argument(
        "--gpu-toleration",
        action="append",
        metavar="KEY[=VALUE][:EFFECT]",
        help="replaces the default tolerations (Exists without a value, Equal with one)",
    )
    return p


def _toleration(text: str) -> Toleration:
    spec, _, effect = text.partition(":")
    key, eq, value = spec.partition("=")
    if eq:
        return Toleration(key=key, operator="Equal", value=value, effect=effect or "NoSchedule")
    return Toleration(key=key, operator="Exists", effect=effect or "NoSchedule")


def _selector(items: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InputError(f"invalid --gpu-node-selector {item!r}: use KEY=VALUE")
        result[key] = value
    return result


def dag_from_args(args: argparse.Namespace, base: ValidationDag = VALIDATION_DAG) -> ValidationDag:
    gpu = base.gpu
    gpu = GpuSettings(
        resource=args.gpu_resource or gpu.resource,
        count=gpu.count if args.gpu_count is None else args.gpu_count,
        node_selector=gpu.node_selector if args.gpu_node_selector is None else _selector(args.gpu_node_selector),
        tolerations=gpu.tolerations
        if args.gpu_toleration is None
        else tuple(_toleration(t) for t in args.gpu_toleration if t),
    )
    return replace(base, gpu=gpu)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        text = render_yaml(dag_from_args(args), name=args.name, image=args.image)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m controlplane.workflows.render", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
