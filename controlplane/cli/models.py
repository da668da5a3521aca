"""`ctl register`, `ctl models list|show`."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli.common import OutputFormat, OutputOpt, console, emit, handle_errors, print_table


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Registered models and versions.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @app.command("register")
    @handle_errors
    def register_cmd(
        name: str = typer.Argument(..., help="Registered model name, e.g. minilm."),
        model_dir: Path = typer.Option(None, "--model-dir", help="Hugging Face-format model directory (exported here)."),
        onnx: Path = typer.Option(None, "--onnx", help="Prebuilt ONNX file, or a folder with model.onnx and tokenizer files."),
        tokenizer: Path = typer.Option(None, "--tokenizer", help="With --onnx: tokenizer.json (default: beside the graph)."),
        config: Path = typer.Option(
            None, "--config", help="With --onnx: config.json (default: beside the graph, else read from the graph)."),
        quantize: str = typer.Option("none", "--quantize", help="With --model-dir: none or int8 (per-channel dynamic int8)."),
        source: str = typer.Option(None, "--source", help="fp32 version NAME:vN a quantized variant derives from."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Register a new version (prints NAME:vN): export a model directory to ONNX, or store a prebuilt
        ONNX exactly as given (format, signature and architecture detected and tagged)."""
        from controlplane.errors import InputError

        if (model_dir is None) == (onnx is None):
            raise InputError("pass exactly one of --model-dir DIR and --onnx FILE")
        if onnx is None and (tokenizer is not None or config is not None):
            raise InputError("--tokenizer and --config go with --onnx")
        if onnx is not None and quantize != "none":
            raise InputError("--quantize goes with --model-dir: a prebuilt ONNX is registered as it is")
        from controlplane.app.context import open_context
        from controlplane.app.register import register_model, register_prebuilt

        with console.status("checking and registering…" if onnx else "exporting and registering…"):
            if onnx is not None:
                result = register_prebuilt(open_context(), name, onnx, tokenizer=tokenizer, config=config, source=source)
            else:
                result = register_model(open_context(), name, model_dir, quantize, source)
        mv = result.version
        emit(output, {"ref": mv.ref, "tags": dict(mv.tags), "lineage": result.lineage}, lambda: print(mv.ref))

    @models_app.command("list")
    @handle_errors
    def list_cmd(output: OutputFormat = OutputOpt) -> None:
        """List registered models with their versions and aliases."""
        from controlplane.app.context import open_context

        ctx = open_context()
        rows = []
        for name in sorted(ctx.registry.list_models()):
            versions = ctx.registry.list_versions(name)
            aliases = sorted({f"{a}→v{v.version}" for v in versions for a in v.aliases})
            rows.append({"name": name, "versions": [v.version for v in versions], "aliases": aliases})
        emit(
            output,
            rows,
            lambda: print_table(
                "models",
                ["name", "versions", "aliases"],
                [[r["name"], _vs(r["versions"]), ", ".join(r["aliases"])] for r in rows],
            ),
        )

    @models_app.command("show")
    @handle_errors
    def show_cmd(ref: str = typer.Argument(..., help="NAME:vN or NAME@alias"), output: OutputFormat = OutputOpt) -> None:
        """Show one version: tags (architecture, hashes, lineage, validation), aliases, source."""
        from controlplane.app.context import open_context
        from controlplane.app.models import resolve

        mv = resolve(open_context(), ref)
        data = {"ref": mv.ref, "source": mv.source_uri, "aliases": list(mv.aliases), "run_id": mv.run_id, "tags": dict(mv.tags)}
        emit(output, data, lambda: print_table(mv.ref, ["key", "value"], _show_rows(data)))


def _vs(versions: list[int]) -> str:
    return ", ".join(f"v{v}" for v in versions)


def _show_rows(data: dict[str, object]) -> list[list[object]]:
    rows: list[list[object]] = [["source", data["source"]], ["aliases", ", ".join(data["aliases"])]]  # type: ignore[arg-type]
    rows += [[k, v] for k, v in sorted(data["tags"].items())]  # type: ignore[union-attr]
    return rows
