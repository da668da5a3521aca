"""`ctl validate` on a workflow engine (controlplane.workflows): ``local`` (the default) or ``argo``.
Both engines print the same result shape; exit 1 unless the run Succeeded, 2 on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controlplane.cli.common import OutputFormat, console, emit, print_table


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
        from controlplane.extras import require

        require("validate", "ctl validate --engine local")
        from controlplane.app.context import open_context
        from controlplane.app.models import resolve
        from controlplane.app.validation_checks import validators_check_runner

        settings = _load_settings(settings_file) if settings_file else None
        ctx = open_context()
        if "@" in ref:  # NAME@alias: the version it points to now
            ref = resolve(ctx, ref).ref
        options["runner"] = validators_check_runner(settings=settings, reference_tokenizer=reference_tokenizer,
                                                    corpus_file=corpus, context=ctx)
    elif engine == "argo":
        if settings_file or reference_tokenizer or corpus:
            raise InputError("--settings, --reference-tokenizer and --corpus are not passed to Argo workflow pods")
        options["namespace"] = namespace
    with console.status(f"validating {ref} on the {engine} engine…"):
        data, passed = validate_with_engine(ref, checks, engine=engine, baseline=baseline, device=device,
                                            timeout_s=timeout, **options)

    def render() -> None:
        rows = [[c["check"], c["status"], c["summary"], _seconds(c["seconds"]), c["run_id"][:12]] for c in data["checks"]]
        title = f"{data['ref']} on {engine} ({data['handle']}): {data['phase']}"
        print_table(title, ["check", "status", "summary", "s", "MLflow run"], rows)

    emit(output, data, render)
    if not passed:
        failing = [c["check"] for c in data["checks"] if c["status"] in ("failed", "error")]
        timed_out = data["message"].startswith("timed out")
        why = ", ".join(failing) if failing and not timed_out else (data["message"] or data["phase"])
        where = f" (workflow {data['handle']})" if engine == "argo" else ""
        raise CheckFailed(f"{data['ref']} did not pass validation: {why}{where}")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _load_settings(path: Path) -> Any:
    import yaml

    from controlplane.errors import InputError
    from validators.settings import Settings

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"settings file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"settings file {path} is not valid YAML/JSON ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(data, dict):
        raise InputError(f"settings file {path} must hold a mapping of sections")
    return Settings.from_mapping(data)
