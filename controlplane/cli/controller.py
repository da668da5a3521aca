"""`ctl controller run`: the Kubernetes controller for ModelRollout resources."""

from __future__ import annotations

import typer

from controlplane.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The Kubernetes controller (reconciles ModelRollout resources).", no_args_is_help=True)
    app.add_typer(group, name="controller")

    @group.command("run")
    @handle_errors
    def run_cmd(
        namespace: str = typer.Option(None, "--namespace", help="Watch one namespace (default: all)."),
        kubeconfig: str = typer.Option(None, "--kubeconfig", help="Default: $KUBECONFIG, then in-cluster."),
        leader_elect: bool = typer.Option(True, "--leader-elect/--no-leader-elect", help="Lease-based election."),
        lease_namespace: str = typer.Option(None, "--lease-namespace", help="Default: $POD_NAMESPACE or default."),
        lease_name: str = typer.Option("attn-controlplane-controller", "--lease-name"),
        lease_duration: float = typer.Option(15.0, "--lease-duration", help="Seconds."),
        identity: str = typer.Option(None, "--id", help="Default: $POD_NAME, else host_pid."),
        workers: int = typer.Option(4, "--workers", min=1, max=64),
        port: int = typer.Option(8080, "--port", help="/metrics, /healthz, /readyz; -1 disables."),
        prometheus_url: str = typer.Option(None, "--prometheus-url", help="Judge steps on these metrics."),
        validation: str = typer.Option("none", "--validation", help="none or argo (Argo Workflows gates)."),
        audit_db: str = typer.Option(None, "--audit-db", envvar="CONTROLPLANE_DB_URL",
                                     help="SQL store for the audit log (every rollout's history) and the incidents."),
        log_level: str = typer.Option("INFO", "--log-level"),
        dashboard_port: int = typer.Option(None, "--dashboard-port",
                                           help="Serve the read-only dashboard on this port (default: off)."),
        dashboard_host: str = typer.Option("127.0.0.1", "--dashboard-host",
                                           help="Its address (loopback unless --dashboard-allow-remote)."),
        dashboard_allow_remote: bool = typer.Option(False, "--dashboard-allow-remote",
                                                    help="Allow a non-loopback --dashboard-host (no authentication)."),
        dashboard_namespace: list[str] = typer.Option(None, "--dashboard-namespace",
                                                      help="Namespaces it lists (repeat; default: --namespace, else all)."),
    ) -> None:
        """Reconcile every ModelRollout until SIGTERM."""
        import logging
        import os
        import signal
        import threading

        stop = threading.Event()  # handlers first: a SIGTERM while starting up still exits cleanly
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())

        from controlplane.dashboard.server import check_bind
        from controlplane.errors import InputError
        from controlplane.extras import require

        if dashboard_port is not None:
            if not 0 <= dashboard_port <= 65535:
                raise InputError(f"invalid --dashboard-port {dashboard_port}: use 0-65535")
            check_bind(dashboard_host, dashboard_allow_remote, "--dashboard-allow-remote")
        require("controller", "ctl controller run")
        from controlplane.adapters.kube import KubeClient
        from controlplane.app.controller import Controller, ControllerOptions, default_identity
        from controlplane.app.gate import EngineGate
        from controlplane.app.kube_edges import PrometheusAnalyzer, TimedSteps
        from controlplane.app.kube_events import KubeEvents
        from controlplane.app.kube_reconcile import Reconciler

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
        if validation not in ("none", "argo"):
            raise InputError(f"unknown --validation {validation!r}: use none or argo")
        ident = identity or os.environ.get("POD_NAME") or default_identity()
        client = KubeClient(kubeconfig)
        gate_factory = None
        if validation == "argo":
            from controlplane.workflows.argo_engine import ArgoEngine

            tracking = os.environ.get("MLFLOW_TRACKING_URI")
            if not tracking:
                raise InputError("--validation argo needs MLFLOW_TRACKING_URI (the registry the workflow reads)")
            engine = ArgoEngine(client, mlflow_tracking_uri=tracking, namespace=namespace or "default")
            gate_factory = lambda spec: EngineGate(engine, spec)  # noqa: E731
        analyzer = PrometheusAnalyzer(prometheus_url) if prometheus_url else TimedSteps()
        audit = None
        if audit_db:
            from dataclasses import replace

            from controlplane.app.context import Context
            from controlplane.app.kube_audit import StoreAudit
            from controlplane.settings import load_settings

            audit = StoreAudit(Context(replace(load_settings(), db_url=audit_db)).store)
        registry = None
        if os.environ.get("MLFLOW_TRACKING_URI"):  # the registry whose alias a promotion moves
            from controlplane.app.context import open_context

            registry = open_context().registry
        reconciler = Reconciler(client, analyzer, KubeEvents(client, ident), gate_factory=gate_factory, audit=audit,
                                registry=registry)
        options = ControllerOptions(
            namespace=namespace, identity=ident, leader_elect=leader_elect,
            lease_namespace=lease_namespace or os.environ.get("POD_NAMESPACE") or "default",
            lease_name=lease_name, lease_duration_s=lease_duration, renew_deadline_s=lease_duration * 2 / 3,
            retry_s=min(2.0, lease_duration / 4),
            workers=workers, port=None if port < 0 else port,
        )
        if stop.is_set():
            raise typer.Exit(0)
        dashboard = None
        if dashboard_port is not None:
            from controlplane.dashboard import cluster

            shown = dashboard_namespace or [namespace]  # [None]: every namespace
            dashboard = cluster.start(client, shown, dashboard_host, dashboard_port)
            host, bound = dashboard.server_address[:2]
            logging.getLogger("controlplane.dashboard").info("dashboard at http://%s:%d/ (read-only)", host, bound)
        controller = Controller(client, reconciler, options, stop=stop)
        try:
            code = controller.run()
        finally:
            if dashboard is not None:
                dashboard.shutdown()
                dashboard.server_close()
        raise typer.Exit(code)
