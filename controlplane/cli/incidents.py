"""`ctl incident list|show|ack|resolve` and `ctl runbook [FAILURE_MODE|INCIDENT_ID]`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import typer

from controlplane.cli.common import OutputFormat, OutputOpt, console, emit, handle_errors, print_json, print_table
from controlplane.errors import InputError

STATES = ("active", "open", "acknowledged", "resolved", "all")


def register(app: typer.Typer) -> None:
    incident_app = typer.Typer(help="Incidents opened by rollbacks, failed validations and pauses.", no_args_is_help=True)
    app.add_typer(incident_app, name="incident")

    @incident_app.command("list")
    @handle_errors
    def list_cmd(
        model: str = typer.Option(None, "--model", help="Only this model's incidents."),
        state: str = typer.Option("all", "--state", help="active (open or acknowledged), open, acknowledged, resolved, all."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """List incidents, newest last."""
        from controlplane.app.context import open_context
        from controlplane.app.incidents import list_incidents, to_dict

        if state not in STATES:
            raise InputError(f"invalid --state {state!r}: use {', '.join(STATES)}")
        found = list_incidents(open_context().store, model, None if state == "all" else state)
        rows = [to_dict(i) for i in found]
        for row in rows:
            row.pop("evidence")
        emit(
            output,
            rows,
            lambda: print_table(
                "incidents",
                ["id", "opened", "ref", "failure mode", "severity", "state", "runbook"],
                [[r["id"], _when(r["opened_at"]), r["ref"], r["failure_mode"], r["severity"], r["state"], r["runbook"]]
                 for r in rows],
            ),
        )

    @incident_app.command("show")
    @handle_errors
    def show_cmd(incident_id: int = typer.Argument(..., help="Incident number."), output: OutputFormat = OutputOpt) -> None:
        """One incident with its evidence (queries, values, windows, thresholds) and runbook."""
        from controlplane.app.context import open_context
        from controlplane.app.incidents import to_dict

        data = to_dict(open_context().store.get_incident(incident_id))
        emit(output, data, lambda: _show(data))

    @incident_app.command("ack")
    @handle_errors
    def ack_cmd(incident_id: int = typer.Argument(..., help="Incident number."), output: OutputFormat = OutputOpt) -> None:
        """Acknowledge an open incident."""
        from controlplane.app.context import open_context
        from controlplane.app.incidents import acknowledge

        ctx = open_context()
        record = acknowledge(ctx.store, incident_id, ctx.now())
        emit(output, {"id": record.id, "state": record.state}, lambda: print(f"incident #{record.id} {record.state}"))

    @incident_app.command("resolve")
    @handle_errors
    def resolve_cmd(incident_id: int = typer.Argument(..., help="Incident number."), output: OutputFormat = OutputOpt) -> None:
        """Resolve an incident."""
        from controlplane.app.context import open_context
        from controlplane.app.incidents import resolve

        ctx = open_context()
        record = resolve(ctx.store, incident_id, ctx.now())
        emit(output, {"id": record.id, "state": record.state}, lambda: print(f"incident #{record.id} {record.state}"))

    @app.command("runbook")
    @handle_errors
    def runbook_cmd(
        key: str = typer.Argument(None, help="A failure mode (e.g. slo-burn-errors) or an incident number."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Show the runbook of a failure mode or incident (rendered markdown); list runbooks without KEY."""
        from controlplane.app import runbooks

        if key is None:
            books = runbooks.load_runbooks()
            rows = [
                {"id": b.id, "title": b.title, "severity": b.severity, "triggers": list(b.triggers), "link": b.link}
                for b in books.values()
            ]
            emit(
                output,
                rows,
                lambda: print_table(
                    "runbooks", ["id", "severity", "title"], [[r["id"], r["severity"], r["title"]] for r in rows]
                ),
            )
            return
        context: dict[str, Any] = {}
        if key.isdigit():
            from controlplane.app.context import open_context

            store = open_context().store
            incident = store.get_incident(int(key))
            book = runbooks.runbook_for(incident.failure_mode)
            context = {"model": incident.model, "version": incident.version, "incident": incident.id}
            if incident.rollout_id is not None:
                stable = store.get_rollout(incident.rollout_id).spec.get("stable_version")
                if isinstance(stable, int):
                    context["stable"] = stable
        else:
            book = runbooks.runbook_for(key)
        body = runbooks.render(book, **context)
        data = {
            "id": book.id,
            "title": book.title,
            "severity": book.severity,
            "triggers": list(book.triggers),
            "link": book.link,
            "commands": runbooks.ctl_commands(body),
            "markdown": body,
            **({"incident": context["incident"]} if "incident" in context else {}),
        }
        if output is OutputFormat.json:
            print_json(data)
            return
        from rich.markdown import Markdown

        console.print(f"[bold]{book.title}[/]  ({book.severity}; {book.link})", highlight=False)
        console.print(Markdown(body))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _show(data: dict[str, Any]) -> None:
    evidence = data["evidence"] or {}
    rows: list[list[Any]] = [
        ["ref", data["ref"]],
        ["rollout", data["rollout_id"]],
        ["failure mode", data["failure_mode"]],
        ["severity", data["severity"]],
        ["state", data["state"]],
        ["opened", _when(data["opened_at"])],
        ["summary", data["summary"]],
        ["runbook", f"{data['runbook']}  (ctl runbook {data['id']})"],
    ]
    for key in ("verdict", "failure_mode", "window", "thresholds", "burn", "comparison", "queries", "error"):
        if key in evidence and key != "failure_mode":
            rows.append([f"evidence.{key}", _brief(evidence[key])])
    shown = {"verdict", "failure_mode", "window", "thresholds", "burn", "comparison", "queries", "error"}
    for key in sorted(set(evidence) - shown):
        rows.append([f"evidence.{key}", _brief(evidence[key])])
    print_table(f"incident #{data['id']}", ["field", "value"], rows)


def _brief(value: Any, limit: int = 600) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
