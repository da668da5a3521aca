"""`ctl serve`: the model server canary pods run (heavy imports happen inside the command)."""

from __future__ import annotations

import typer

from controlplane.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    @app.command("serve")
    @handle_errors
    def serve_cmd(
        model_ref: str = typer.Argument(None, help="models:/NAME/N, NAME:vN or NAME@alias (default: $MODEL_URI)."),
        host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
        port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
        max_batch_tokens: int = typer.Option(16384, "--max-batch-tokens", help="Padded tokens per inference batch."),
        max_wait_ms: float = typer.Option(1.0, "--max-wait-ms", help="How long a batch waits for more requests."),
        max_queue: int = typer.Option(1024, "--max-queue", help="Texts waiting at most; beyond, 503 + Retry-After."),
        max_request_texts: int = typer.Option(256, "--max-request-texts", help="Texts per request at most (413 above)."),
        truncate: bool = typer.Option(
            True, "--truncate/--no-truncate", help="Cut texts longer than the model's length, or refuse them (400)."
        ),
        drain_seconds: float = typer.Option(30.0, "--drain-seconds", help="On SIGTERM, how long in-flight requests may take."),
        threads: int = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: one per core)."),
    ) -> None:
        """Serve a registered version: OIP v2 REST (/v2/...), OpenAI /v1/embeddings, /metrics. Role from $MODEL_ROLE."""
        from controlplane.serve.options import ServeOptions, model_ref_from, role_from
        from controlplane.serve.server import serve

        options = ServeOptions(
            model_ref=model_ref_from(model_ref),
            host=host,
            port=port,
            role=role_from(),
            max_batch_tokens=max_batch_tokens,
            max_wait_ms=max_wait_ms,
            max_queue_texts=max_queue,
            max_request_texts=max_request_texts,
            truncate=truncate,
            drain_s=drain_seconds,
            threads=threads,
        )
        serve(options)
