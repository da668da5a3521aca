"""`ctl dashboard`: the read-only web dashboard of the local target's rollouts."""

from __future__ import annotations

import typer

from controlplane.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    @handle_errors
    def dashboard_cmd(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --allow-remote)."),
        port: int = typer.Option(8470, "--port", help="Port to listen on (0: any free port)."),
        allow_remote: bool = typer.Option(False, "--allow-remote",
                                          help="Allow a non-loopback --host (the dashboard has no authentication)."),
    ) -> None:
        """Serve a read-only dashboard: rollouts, their steps, analyses, validations, incidents and audit log."""
        from controlplane.app.context import open_context
        from controlplane.dashboard.server import Dashboard, check_bind, make_server
        from controlplane.errors import InputError

        if not 0 <= port <= 65535:
            raise InputError(f"invalid --port {port}: use 0-65535")
        check_bind(host, allow_remote)
        server = make_server(Dashboard(open_context()), host, port)
        bound_host, bound_port = server.server_address[:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        print(f"dashboard at http://{shown}:{bound_port}/ (read-only; Ctrl+C stops it)", flush=True)
        try:
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
