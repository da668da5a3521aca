"""`ctl validate --engine local|argo`: the validation DAG on a workflow engine (controlplane.workflows).
Both engines print the same result shape; exit 1 unless the run Succeeded, 2 on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controlplane.cli.common import OutputFormat, emit, print_table


def run_engine(
    ref: str,
    checks: str,
    engine: str,
    baseline: str | None,
    device: str,
    namespace: str,
    timeout: float,
    output: OutputFormat,
    *,
    settings_file: Path | None = None,
    reference_tokenizer: Path | None = None,
    corpus: Path | None = None,
) -> None:
    from controlplane.errors import CheckFailed, InputError
    from controlplane.workflows import validate_with_engine

    options: dict[str, Any] = {}
    if engine == "local":
        from controlplane.cli.validate import _load_settings
        from controlplane.workflows.checks import validators_check_runner

        settings = _load_settings(settings_file) if settings_file else None
        options["runner"] = validators_check_runner(settings=settings, reference_tokenizer=reference_tokenizer,
                                                    corpus_file=corpus)
    elif engine == "argo":
        if settings_file or reference_tokenizer or corpus:
            raise InputError("--settings, --reference-tokenizer and --corpus are not passed to Argo workflow pods")
        options["namespace"] = namespace
    data, passed = validate_with_engine(ref, checks, engine=engine, baseline=baseline, device=device,
                                        timeout_s=timeout, **options)

    def render() -> None:
        rows = [[c["check"], c["status"], c["summary"]] for c in data["checks"]]
        print_table(f"{ref} on {engine} ({data['handle']}): {data['phase']}", ["check", "status", "summary"], rows)

    emit(output, data, render)
    if not passed:
        raise CheckFailed(f"{ref} did not pass validation on {engine}: {data['message'] or data['phase']}")
