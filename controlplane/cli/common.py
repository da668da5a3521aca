"""What every command shares: error handling with exit codes, and output formats."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controlplane.errors import EXIT_SOFTWARE, EXIT_USAGE, ControlPlaneError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)
DEBUG = {"on": False}  # `ctl --debug`: print the traceback of an unexpected exception


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OutputOpt = typer.Option(OutputFormat.table, "--output", "-o", help="Output format: table or json.")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit."""
    error_line(message)
    raise typer.Exit(code)


def error_line(message: str) -> None:
    """``error: MESSAGE`` on stderr, the message printed as is (never read as markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn ControlPlaneErrors into one line and their exit code; anything unexpected (a bug)
    into one line naming it and the log of its traceback, exit 70 (or the traceback: --debug)."""

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
        except Exception as exc:  # a bug: still one line, and the traceback kept for the report
            crashed(exc)

    return wrapper  # type: ignore[return-value]


def crashed(exc: BaseException) -> None:
    """Report an unexpected exception: one line naming it and the log of its traceback, exit 70.
    Under --debug the traceback itself is printed first."""
    if DEBUG["on"]:
        traceback.print_exception(exc, file=sys.stderr)
        fail(f"unexpected {type(exc).__name__}: {_one_line(exc)} (a bug in ctl; traceback above)", EXIT_SOFTWARE)
    log = write_crash_log(exc)
    where = f"traceback in {log}" if log else "traceback not saved"
    fail(f"unexpected {type(exc).__name__}: {_one_line(exc)} (a bug in ctl; {where}; --debug shows it)", EXIT_SOFTWARE)


def write_crash_log(exc: BaseException) -> Path | None:
    """The traceback, under $CONTROLPLANE_HOME/logs (the system temp dir when that cannot be written)."""
    text = f"ctl {' '.join(sys.argv[1:])}\n" + "".join(traceback.format_exception(exc))
    name = f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    for folder in _log_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def _log_dirs() -> list[Path]:
    dirs = []
    try:
        from controlplane.settings import load_settings

        dirs.append(load_settings().home / "logs")
    except Exception:  # the settings themselves may be what is broken
        pass
    return [*dirs, Path(tempfile.gettempdir()) / "controlplane-logs"]


def run(app: typer.Typer) -> None:
    """Run ``app`` as `ctl`: usage errors as one line and exit 2, unexpected exceptions as in handle_errors."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group without a command: its help
            from typer import rich_utils

            rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
        else:
            error_line(" ".join(exc.format_message().split()) if hasattr(exc, "format_message") else _one_line(exc))
        code = getattr(exc, "exit_code", EXIT_USAGE)
    except typer.Abort:
        error_line("interrupted")
        code = 130
    except Exception as exc:
        try:
            crashed(exc)
        except typer.Exit as exit_:
            code = exit_.exit_code
    sys.exit(code if isinstance(code, int) else 0)


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
