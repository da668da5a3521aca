"""What every command shares: error handling with exit codes, and output formats."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controlplane.errors import EXIT_FAILED, EXIT_USAGE, ControlPlaneError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OutputOpt = typer.Option(OutputFormat.table, "--output", "-o", help="Output format: table or json.")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # text, not markup
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn ControlPlaneErrors (and anything unexpected) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except ControlPlaneError as exc:
            fail(_one_line(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:  # last resort: still one line, never a traceback
            fail(f"unexpected {type(exc).__name__}: {_one_line(exc)}", EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def emit(fmt: OutputFormat, data: Any, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` for the human view."""
    if fmt is OutputFormat.json:
        print_json(data)
    else:
        render()


def not_available(what: str, issue: str) -> None:
    fail(f"{what} is not available in this build yet ({issue})", EXIT_USAGE)
