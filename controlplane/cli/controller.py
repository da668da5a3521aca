"""Placeholder: the Kubernetes controller lands with issue #5."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("controller", hidden=True)
    def _placeholder() -> None:
        """Not available yet."""
        from controlplane.cli.common import not_available

        not_available("the Kubernetes controller", "issue #5")
