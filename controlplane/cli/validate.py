"""`ctl validate NAME:vN`: run the attention-model checks on a registered version.

The checks run as the validation DAG (controlplane.workflows), on the engine ``--engine`` names:
``local`` (default) in this process, ``argo`` as an Argo Workflow in the cluster; both print the
same result. Every selected check runs and reports its own verdict. Exit 0 when every check
passes (warnings included), 1 when any check fails or errors, 2 on bad input (unknown check,
missing or corrupt artifact, empty corpus, different-architecture baseline, absent device).
This module parses and prints; ``validate_engine`` calls the application layer.
"""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli.common import OutputFormat, OutputOpt, handle_errors
from controlplane.workflows.template import VALIDATION_DAG  # plain data; Hera loads only to render

CHECK_NAMES = VALIDATION_DAG.names


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @handle_errors
    def validate_cmd(
        ref: str = typer.Argument(..., help="Version to validate: NAME:vN or NAME@alias."),
        checks: str = typer.Option(",".join(CHECK_NAMES), "--checks", help="Comma-separated checks to run (default: all)."),
        baseline: str = typer.Option(None, "--baseline", help="Version to compare against: NAME:vM or NAME@production."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        reference_tokenizer: Path = typer.Option(
            None, "--reference-tokenizer", help="Training tokenizer.json to compare the tokenizer against."
        ),
        corpus: Path = typer.Option(None, "--corpus", help="Extra texts, one per line (UTF-8)."),
        settings_file: Path = typer.Option(
            None, "--settings", help="YAML/JSON file overriding thresholds: {section: {field: value}}."
        ),
        output: OutputFormat = OutputOpt,
        engine: str = typer.Option(
            "local", "--engine", help="Where the validation DAG runs: local (in this process, the default) or argo "
            "(an Argo Workflow through $KUBECONFIG, its pods reporting to $MLFLOW_TRACKING_URI)."
        ),
        namespace: str = typer.Option("default", "--namespace", help="--engine argo: namespace of the WorkflowTemplate."),
        timeout: float = typer.Option(3600.0, "--timeout", help="Seconds before the run is terminated (exit 1)."),
    ) -> None:
        """Validate a registered version before it gets traffic; each check logs an MLflow run and tags the version."""
        from controlplane.cli.validate_engine import run_engine

        run_engine(ref, checks, engine, baseline, device, namespace, timeout, output,
                   settings_file=settings_file, reference_tokenizer=reference_tokenizer, corpus=corpus)
