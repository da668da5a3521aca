"""Run a selected set of checks on a registered version, then record the verdict everywhere.

``run_checks`` resolves the references (``NAME:vN`` or ``NAME@alias``), fetches the versions
through the registry port, checks the inputs up front (every problem there is an ``InputError``:
exit 2, nothing recorded), runs the checks (a check that raises becomes ``error``, never ``passed``),
then logs ONE run to the registry (params, metrics prefixed by check, artifacts), sets the version
tags ``validation.status`` and ``validation.<check>`` and stores one row per check in the state store.

Which reference each check gets: quantization-accuracy compares a quantized candidate against the fp32
source named by its ``lineage.source`` tag (set by ``ctl register --quantize``), else against an fp32
baseline; an fp32 candidate gets no reference there (nothing was quantized). Every other check compares
against the baseline (``--baseline``), or nothing.
"""

from __future__ import annotations

import importlib
import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from controlplane.errors import ControlPlaneError, InputError, NotFoundError
from controlplane.ports import ModelRegistry, ModelVersion, Store
from controlplane.refs import parse_ref, parse_versioned_ref
from validators.result import SEVERITY, CheckResult, ModelUnderTest, Status, ValidationReport
from validators.settings import Settings

CHECKS: dict[str, str] = {
    "tokenizer-parity": "validators.tokenizer_parity",
    "quantization-accuracy": "validators.quantization_accuracy",
    "head-collapse": "validators.head_collapse",
    "long-seq-memory": "validators.long_seq_memory",
}
DEVICES = ("auto", "cpu", "cuda")
TAG_PREFIX = "validation."


def parse_checks(checks: list[str] | None) -> list[str]:
    """Check names in the canonical order; InputError for an unknown or empty selection."""
    if checks is None:
        return list(CHECKS)
    wanted = [c.strip() for item in checks for c in item.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CHECKS]
    if unknown:
        raise InputError(f"unknown check {unknown[0]!r} (known: {', '.join(CHECKS)})")
    if not wanted:
        raise InputError(f"no checks selected (known: {', '.join(CHECKS)})")
    return [c for c in CHECKS if c in wanted]


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a CUDA GPU is usable, else ``cpu``; InputError for ``cuda`` without one."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r} (choose {', '.join(DEVICES)})")
    if device == "cpu":
        return "cpu"
    import torch

    available = bool(torch.cuda.is_available())
    if device == "cuda" and not available:
        raise InputError("device cuda requested but no CUDA GPU is available here (use --device cpu or auto)")
    return "cuda" if available else "cpu"


def resolve(registry: ModelRegistry, text: str) -> ModelVersion:
    ref = parse_ref(text)
    if ref.version is not None:
        return registry.get_version(ref.name, ref.version)
    assert ref.alias is not None
    mv = registry.get_alias(ref.name, ref.alias)
    if mv is None:
        raise NotFoundError(f"model {ref.name!r} has no alias {ref.alias!r}")
    return mv


def materialise(registry: ModelRegistry, mv: ModelVersion) -> ModelUnderTest:
    """Fetch a version and check that its files make a usable attention encoder (InputError if not)."""
    from controlplane.models.encoder import load_tokenizer
    from controlplane.models.onnx_graph import check_attention_onnx
    from validators.model_arch import architecture

    folder = registry.fetch(mv.name, mv.version)
    onnx_path = folder / "model.onnx"
    for name in ("model.onnx", "tokenizer.json"):
        if not (folder / name).is_file():
            raise InputError(f"{mv.ref} has no {name} artifact: cannot validate it (re-register with ctl register)")
    load_tokenizer(folder / "tokenizer.json")
    tags = dict(mv.tags)
    # config.json, or the arch.* tags ctl register --onnx read from the graph when no config was given
    arch = architecture(ModelUnderTest(ref=mv.ref, model_dir=folder, onnx_path=onnx_path, tags=tags))
    try:
        info = check_attention_onnx(onnx_path, arch.layers)
    except InputError as exc:
        raise InputError(f"{mv.ref}: {exc}") from None
    tags.setdefault("quantization", "none" if info.precision == "fp32" else info.precision)
    return ModelUnderTest(ref=mv.ref, model_dir=folder, onnx_path=onnx_path, tags=tags)


def quantized(model: ModelUnderTest) -> bool:
    return model.tags.get("quantization", "none") != "none"


def _same_architecture(candidate: ModelUnderTest, reference: ModelUnderTest, role: str) -> None:
    from validators.model_arch import architecture

    a, b = (architecture(m) for m in (candidate, reference))
    if not a.same_shape(b):
        raise InputError(
            f"{role} {reference.ref} is a different architecture ({b.describe()}) from {candidate.ref} ({a.describe()})"
        )


def _with_inputs(settings: Settings, reference_tokenizer: Path | None, corpus_file: Path | None) -> Settings:
    """Settings with the command-line files filled into every section that has a field for them."""
    from validators.corpus import read_corpus
    from validators.tokenizer_parity import tokenizer_file

    given: dict[str, str] = {}
    if reference_tokenizer is not None:
        file = tokenizer_file(reference_tokenizer, "--reference-tokenizer")
        from controlplane.models.encoder import load_tokenizer

        load_tokenizer(file)
        given["reference_tokenizer"] = str(file.resolve())
    if corpus_file is not None:
        read_corpus(corpus_file)  # InputError when missing, not UTF-8 or empty
        given["corpus_file"] = str(Path(corpus_file).resolve())
    updates = {}
    for section in fields(settings):
        current = getattr(settings, section.name)
        names = {f.name for f in fields(current)}
        values = {k: v for k, v in given.items() if k in names and getattr(current, k) is None}
        if values:
            updates[section.name] = replace(current, **values)
    return replace(settings, **updates)


def run_one(
    name: str, candidate: ModelUnderTest, reference: ModelUnderTest | None, settings: Settings, device: str, workdir: Path
) -> CheckResult:
    """One check; whatever it raises becomes an ``error`` result (``details.error`` says which kind)."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        module = importlib.import_module(CHECKS[name])
        result: CheckResult = module.check(candidate, reference, settings, device=device, workdir=workdir)
        if not isinstance(result, CheckResult):
            raise TypeError(f"{name} returned {type(result).__name__}, not a CheckResult")
    except ControlPlaneError as exc:
        kind = "input" if isinstance(exc, InputError) else type(exc).__name__
        result = CheckResult(name, Status.ERROR, findings=[_line(exc)], details={"error": kind})
    except Exception as exc:  # a bug or a library failure: an error verdict, never a pass
        result = CheckResult(name, Status.ERROR, findings=[f"{type(exc).__name__}: {_line(exc)}"],
                             details={"error": type(exc).__name__})  # fmt: skip
    result.details.setdefault("seconds", round(time.perf_counter() - start, 3))
    return result


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


def run_checks(
    ref: str,
    *,
    checks: list[str] | None,
    baseline_ref: str | None,
    device: str,
    registry: ModelRegistry,
    store: Store,
    now: float,
    settings: Settings | None = None,
    reference_tokenizer: Path | None = None,
    corpus_file: Path | None = None,
    workdir: Path | None = None,
) -> ValidationReport:
    """Validate ``ref`` (``NAME:vN`` or ``NAME@alias``). ``workdir``: where artifacts stay (default: a
    temporary folder removed once they are logged; the report then names them as logged)."""
    names = parse_checks(checks)
    dev = resolve_device(device)
    settings = _with_inputs(settings or Settings(), reference_tokenizer, corpus_file)
    cand_mv = resolve(registry, ref)
    candidate = materialise(registry, cand_mv)
    baseline = materialise(registry, resolve(registry, baseline_ref)) if baseline_ref else None
    if baseline is not None:
        _same_architecture(candidate, baseline, "baseline")
    source = _lineage_source(registry, candidate) if "quantization-accuracy" in names else None

    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ctl-validate-"))
    try:
        results = []
        for name in names:
            reference = baseline
            if name == "quantization-accuracy":  # the fp32 source; an fp32 candidate has nothing to compare
                fp32_baseline = baseline if baseline is not None and not quantized(baseline) else None
                reference = source or (fp32_baseline if quantized(candidate) else None)
            results.append(run_one(name, candidate, reference, settings, dev, root / name))
        report = ValidationReport(cand_mv.ref, baseline.ref if baseline else None, results, device=dev)
        report.run_id = _record(report, cand_mv, settings, registry, store, now, root, source, reference_tokenizer,
                                corpus_file)  # fmt: skip
        if workdir is None:
            for r in results:
                r.artifacts = [p.relative_to(root) if p.is_relative_to(root) else Path(p.name) for p in r.artifacts]
        return report
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _lineage_source(registry: ModelRegistry, candidate: ModelUnderTest) -> ModelUnderTest | None:
    text = candidate.tags.get("lineage.source")
    if not text:
        return None
    src = parse_versioned_ref(text)
    assert src.version is not None
    source = materialise(registry, registry.get_version(src.name, src.version))
    _same_architecture(candidate, source, "lineage source")
    return source


def _flat_settings(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in fields(settings):
        current = getattr(settings, section.name)
        out.update({f"settings.{section.name}.{f.name}": getattr(current, f.name) for f in fields(current)})
    return out


def _record(
    report: ValidationReport,
    mv: ModelVersion,
    settings: Settings,
    registry: ModelRegistry,
    store: Store,
    now: float,
    root: Path,
    source: ModelUnderTest | None,
    reference_tokenizer: Path | None,
    corpus_file: Path | None,
) -> str:
    """One registry run (params, metrics, artifacts), the version's tags, one store row per check."""
    params: dict[str, Any] = {
        "ref": mv.ref,
        "baseline": report.baseline_ref or "none",
        "lineage_source": source.ref if source else "none",
        "device": report.device,
        "checks": ",".join(r.check for r in report.results),
        "reference_tokenizer": Path(reference_tokenizer).name if reference_tokenizer else "none",
        "corpus_file": Path(corpus_file).name if corpus_file else "none",
        **_flat_settings(settings),
    }
    metrics: dict[str, float] = {}
    artifacts: list[Path] = []
    for r in report.results:
        metrics[f"{r.check}.passed"] = 1.0 if r.status in (Status.PASSED, Status.WARNING) else 0.0
        if "seconds" in r.details:
            metrics[f"{r.check}.seconds"] = float(r.details["seconds"])
        for key, value in r.metrics.items():
            if isinstance(value, int | float) and value == value and abs(value) != float("inf"):
                metrics[f"{r.check}.{key}"] = float(value)
        folder = root / r.check
        folder.mkdir(parents=True, exist_ok=True)
        for path in r.artifacts:  # keep every artifact under its check's folder
            if path.is_file() and not path.resolve().is_relative_to(folder.resolve()):
                shutil.copy2(path, folder / path.name)
        if any(folder.iterdir()):
            artifacts.append(folder)
    summary = root / "validation-report.json"
    summary.write_text(json.dumps(report.to_dict(), indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    artifacts.append(summary)
    status = str(report.status)
    run_tags = {"validation.status": status, "validation.baseline": report.baseline_ref or "none"}
    run_name = f"validate-{mv.name}-v{mv.version}"
    if len(report.results) == 1:  # one step of the validation DAG: name the run after its check
        run_name += f"-{report.results[0].check}"
    run_id = registry.log_run(mv.name, mv.version, run_name, params, metrics, artifacts, tags=run_tags)
    tags = {f"{TAG_PREFIX}{r.check}": str(r.status) for r in report.results}
    tags[f"{TAG_PREFIX}status"] = version_status(registry.get_version(mv.name, mv.version).tags, tags)
    tags[f"{TAG_PREFIX}run_id"] = run_id
    registry.set_tags(mv.name, mv.version, tags)
    for r in report.results:
        store.add_validation(mv.name, mv.version, r.check, str(r.status), dict(r.metrics), list(r.findings),
                             dict(r.thresholds), run_id, now)  # fmt: skip
    return run_id


def version_status(current: Mapping[str, str], new: Mapping[str, str]) -> str:
    """The version's ``validation.status``: the worst latest verdict of every check it has one for.
    A run of some checks (one step of the validation DAG runs one) keeps the other checks'
    verdicts, so a later passing step never hides an earlier failed one."""
    check_tags = {TAG_PREFIX + name for name in CHECKS}
    merged = {k: v for k, v in current.items() if k in check_tags} | dict(new)
    statuses = [Status(v) for v in merged.values() if v in set(Status)]
    return str(max(statuses, key=SEVERITY.__getitem__)) if statuses else str(Status.ERROR)
