"""Placeholder: ctl validate lands with issue #3."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("validate", hidden=True)
    def _placeholder() -> None:
        """Not available yet."""
        from controlplane.cli.common import not_available

        not_available("ctl validate", "issue #3")
