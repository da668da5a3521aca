"""Placeholder: SLO rule generation lands with issue #6."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("slo", hidden=True)
    def _placeholder() -> None:
        """Not available yet."""
        from controlplane.cli.common import not_available

        not_available("SLO rule generation", "issue #6")
