"""The production check runner of ``--engine local``: one check of a request through the
validators' runner, exactly what one Argo step does with ``ctl validate NAME:vN --checks CHECK``
(one MLflow run and one set of version tags per check, in both engines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controlplane.ports import CheckOutcome, ValidationRequest
from controlplane.workflows.local_engine import CheckRunner
from controlplane.workflows.results import numeric_metrics


def validators_check_runner(
    *,
    settings: Any = None,
    reference_tokenizer: Path | None = None,
    corpus_file: Path | None = None,
    context: Any = None,
) -> CheckRunner:
    """A ``CheckRunner`` calling ``validators.runner.run_checks`` for a single check.
    Bad input inside a check raises InputError (the local engine stops the run; ``ctl validate``
    exits 2).
    ``context``: the application context to use (default: one from the environment per check)."""

    def run(request: ValidationRequest, check: str) -> CheckOutcome:
        from controlplane.app.context import open_context
        from controlplane.errors import InputError
        from validators.runner import run_checks

        ctx = context if context is not None else open_context()
        report = run_checks(
            f"{request.model}:v{request.version}",
            checks=[check],
            baseline_ref=request.baseline,
            device=request.device,
            registry=ctx.registry,
            store=ctx.store,
            now=ctx.now(),
            settings=settings,
            reference_tokenizer=reference_tokenizer,
            corpus_file=corpus_file,
        )
        result = next(r for r in report.results if r.check == check)
        if result.details.get("error") == "input":
            raise InputError(f"{check}: {result.findings[0] if result.findings else 'bad input'}")
        summary = "; ".join(" ".join(f.split()) for f in result.findings[:2])
        return CheckOutcome(check, str(result.status), summary, numeric_metrics(result.metrics),
                            run_id=report.run_id or "")

    return run
