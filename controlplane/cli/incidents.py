"""Placeholder: incidents and runbooks lands with issue #6."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("incidents", hidden=True)
    def _placeholder() -> None:
        """Not available yet."""
        from controlplane.cli.common import not_available

        not_available("incidents and runbooks", "issue #6")
