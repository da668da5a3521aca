"""Entry point of `ctl`. Each command group lives in its own module exposing
``register(app)``; heavy libraries are imported lazily inside the commands."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ctl",
    help="Canary rollouts for attention models: validate, shift traffic, judge against SLOs, roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = (
    "controlplane.cli.models",
    "controlplane.cli.validate",
    "controlplane.cli.rollouts",
    "controlplane.cli.incidents",
    "controlplane.cli.slo",
    "controlplane.cli.controller",
    "controlplane.cli.serve",
    "controlplane.cli.dashboard",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the traceback of an unexpected error.")) -> None:
    from controlplane.cli.common import DEBUG

    DEBUG["on"] = debug


def main() -> None:
    from controlplane.cli.common import run

    run(app)


if __name__ == "__main__":
    main()
