"""long-seq-memory: does the serving config's (max_seq_len x max_batch) fit the device's memory?

Where the declared serving config comes from, first match wins:

* ``max_seq_len``: ``LongSeqMemorySettings.max_seq_len`` (``--settings`` file) → the version tag
  ``serving.max_seq_len`` → the truncation length in the candidate's ``tokenizer.json`` (what
  ``OnnxEncoder`` truncates at) → ``model_max_length`` in ``tokenizer_config.json`` → the model's
  position embeddings.
* ``max_batch``: ``LongSeqMemorySettings.max_batch`` → the version tag ``serving.max_batch`` → the
  serving encoder's batch size (``controlplane.models.encoder.DEFAULT_BATCH``, 64).

Steps: (1) fail fast, before any probe, when ``max_seq_len`` exceeds the position embeddings
(``config.json``); (2) measure a few probes (validators/memory_probe.py: isolated child process and
peak RSS on CPU, torch peak statistics on CUDA with out-of-memory caught), chosen with a prior from
the architecture: the model alone, a small batch at the longest sequence the model accepts, a larger
batch at a quarter of it; (3) fit ``c0 + c1·b·s + c2·b·s²`` (validators/memory_fit.py); (4) measure
the declared config itself when the fit says it fits; (5) optionally verify the predicted maximum
batch at ``max_seq_len`` (on by default on CUDA, or on CPU when ``budget_bytes`` is set and small),
bisecting down when it does not fit. Every probe is killed above the budget, so a probe can never take
the machine down. The check fails when ``peak(declared) x (1 + headroom)`` exceeds the budget
(``budget_bytes``, else ``budget_fraction`` x device memory: CUDA total memory, or RAM capped by the
cgroup limit). Artifacts: ``long-seq-memory.png`` (the curve) and ``long-seq-memory.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controlplane.errors import InputError
from validators.memory_fit import Curve, batch_for, fit, plot, prior
from validators.memory_probe import Probe, cpu_probe
from validators.result import CheckResult, ModelUnderTest, Status
from validators.settings import LongSeqMemorySettings, Settings

NAME = "long-seq-memory"
TAG_SEQ, TAG_BATCH = "serving.max_seq_len", "serving.max_batch"
MIN_FIT_SEQ = 16
SMALL_BUDGET_FRACTION = 0.5  # CPU auto-verification only when the budget is under half the free memory
MAX_TOKENIZER_LENGTH = 1_000_000  # HF's "no limit" sentinel is ~1e30
Runner = Callable[[int, int, str], Probe]


def check(
    candidate: ModelUnderTest,
    reference: ModelUnderTest | None,
    settings: Settings,
    *,
    device: str = "cpu",
    workdir: Path,
) -> CheckResult:
    from dataclasses import replace

    from validators.model_arch import architecture, usable_positions

    cfg = settings.long_seq_memory
    _check_settings(cfg)
    # RoBERTa-style position ids start at padding_idx + 1: 514 embeddings give 512 usable positions,
    # and that is the longest input any probe or declaration may use.
    embeddings = architecture(candidate).max_positions
    arch = replace(architecture(candidate), max_positions=usable_positions(candidate))
    (seq, seq_from), (batch, batch_from) = declared_config(candidate, cfg, arch.max_positions)
    thresholds = {"budget_fraction": cfg.budget_fraction, "headroom": cfg.headroom,
                  "max_positions": float(arch.max_positions)}
    details: dict[str, Any] = {"declared": {"max_seq_len": seq, "from": seq_from, "max_batch": batch,
                                            "batch_from": batch_from}, "device": device}
    metrics: dict[str, float] = {"declared_seq_len": float(seq), "declared_batch": float(batch),
                                 "max_positions": float(arch.max_positions), "position_embeddings": float(embeddings)}
    if seq > arch.max_positions:
        return CheckResult(NAME, Status.FAILED, metrics=metrics, thresholds=thresholds, details=details, findings=[
            f"declared max_seq_len {seq} (from {seq_from}) exceeds the model's {_positions(arch.max_positions, embeddings)}: "
            f"inputs longer than {arch.max_positions} tokens fail at inference (no probe run)"])

    run, total = _runner(candidate, device, cfg, arch.vocab_size)
    budget = float(cfg.budget_bytes) if cfg.budget_bytes else cfg.budget_fraction * total
    metrics.update(device_bytes=float(total), budget_bytes=budget)
    thresholds["budget_bytes"] = budget
    probes: list[Probe] = []

    def probe(b: int, s: int, purpose: str) -> Probe:
        result = run(b, s, purpose)
        probes.append(result)
        return result

    pri = prior(arch.hidden, arch.heads)
    s_hi = arch.max_positions
    s_lo = max(MIN_FIT_SEQ, s_hi // 4)
    for s in (s_lo, s_hi):
        result = probe(batch_for(pri, s, cfg.probe_target_bytes, cap=max(batch, 1)), s, "fit")
        if result.outcome == "error":
            _explain_error(candidate, device)
            return _finish(Status.ERROR, metrics, thresholds, details, [f"memory probe failed: {result.message}"],
                           probes, None, workdir, candidate.ref, (seq, batch), arch.max_positions, budget)
        if not result.ok and len(probes) == 1:  # the smallest probe already exceeds the budget
            return _finish(Status.FAILED, metrics, thresholds, details,
                           [f"a {result.batch}x{result.seq_len} probe exceeds the {_gib(budget)} budget "
                            f"({result.outcome}): the declared {seq}x{batch} cannot fit"],
                           probes, None, workdir, candidate.ref, (seq, batch), arch.max_positions, budget)
    curve, _ = fit(probes)
    predicted_declared = curve.peak(batch, seq)
    metrics["declared_predicted_bytes"] = predicted_declared
    declared = None
    if predicted_declared <= budget and len(probes) < cfg.max_probes:
        declared = probe(batch, seq, "declared")
        curve, _ = fit(probes)
    residual = fit(probes)[1]
    findings: list[str] = []
    if declared is not None and declared.ok:
        peak_declared = declared.peak_bytes
        metrics["declared_peak_bytes"] = peak_declared
        findings.append(f"declared {seq}x{batch}: measured {_gib(peak_declared)}, fit before measuring "
                        f"predicted {_gib(predicted_declared)}")
    elif declared is not None:
        peak_declared = math.inf
        findings.append(f"declared {seq}x{batch} did not run within the budget: {declared.outcome}")
    else:
        peak_declared = predicted_declared
        findings.append(f"declared {seq}x{batch}: predicted {_gib(predicted_declared)} (not measured: over budget)")

    max_batch = curve.max_batch(seq, budget)
    metrics.update(fit_c0=curve.c0, fit_c1=curve.c1, fit_c2=curve.c2, fit_max_residual=residual,
                   predicted_max_batch=float(max_batch),
                   predicted_max_seq_len=float(curve.max_seq(batch, budget, arch.max_positions)),
                   predicted_max_batch_at_max_positions=float(curve.max_batch(arch.max_positions, budget)))
    if _verify(cfg, device, budget) and max_batch > 0:
        measured = _verify_max(probe, cfg.max_probes, probes, seq, max_batch, budget)
        metrics["measured_max_batch"] = float(measured)
        findings.append(f"largest batch at {seq} tokens: predicted {max_batch}, measured {measured}")
    else:
        findings.append(f"largest batch at {seq} tokens within {_gib(budget)}: {max_batch} (predicted)")

    required = peak_declared * (1 + cfg.headroom)
    metrics["declared_required_bytes"] = required
    if any(p.outcome == "error" for p in probes):
        status = Status.ERROR
        findings.insert(0, "a probe failed: " + next(p.message for p in probes if p.outcome == "error"))
    elif required > budget:
        status = Status.FAILED
        findings.insert(0, f"declared {seq}x{batch} needs {_gib(required)} with {cfg.headroom:.0%} headroom, "
                           f"over the {_gib(budget)} budget; {max_batch} sequences of {seq} tokens fit")
    else:
        status = Status.PASSED
        findings.insert(0, f"declared {seq}x{batch} fits: {_gib(required)} with headroom <= {_gib(budget)}")
    return _finish(status, metrics, thresholds, details, findings, probes, curve, workdir, candidate.ref,
                   (seq, batch), arch.max_positions, budget)


def _positions(usable: int, embeddings: int) -> str:
    if usable == embeddings:
        return f"{usable} position embeddings"
    return f"{usable} usable positions ({embeddings} position embeddings, ids start at padding_idx + 1)"


def declared_config(candidate: ModelUnderTest, cfg: LongSeqMemorySettings,
                    max_positions: int) -> tuple[tuple[int, str], tuple[int, str]]:
    """((max_seq_len, where from), (max_batch, where from)), per the module docstring."""
    from controlplane.models.encoder import DEFAULT_BATCH, declared_truncation

    seq: tuple[int, str] | None = None
    if cfg.max_seq_len is not None:
        seq = (cfg.max_seq_len, "settings")
    elif TAG_SEQ in candidate.tags:
        seq = (_tag_int(candidate, TAG_SEQ), f"tag {TAG_SEQ}")
    elif (trunc := declared_truncation(candidate.model_dir / "tokenizer.json")) is not None:
        seq = (trunc, "tokenizer.json truncation")
    else:
        seq = _tokenizer_config_length(candidate.model_dir / "tokenizer_config.json")
    if seq is None:
        seq = (max_positions, "position embeddings")
    if cfg.max_batch is not None:
        batch = (cfg.max_batch, "settings")
    elif TAG_BATCH in candidate.tags:
        batch = (_tag_int(candidate, TAG_BATCH), f"tag {TAG_BATCH}")
    else:
        batch = (DEFAULT_BATCH, "serving encoder default")
    return seq, batch


def _tag_int(candidate: ModelUnderTest, tag: str) -> int:
    try:
        value = int(candidate.tags[tag])
    except ValueError:
        raise InputError(f"{candidate.ref}: tag {tag}={candidate.tags[tag]!r} is not an integer") from None
    if value < 1:
        raise InputError(f"{candidate.ref}: tag {tag} must be at least 1, got {value}")
    return value


def _tokenizer_config_length(path: Path) -> tuple[int, str] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(value, int | float) and 0 < value < MAX_TOKENIZER_LENGTH:
        return int(value), "tokenizer_config.json model_max_length"
    return None


def _check_settings(cfg: LongSeqMemorySettings) -> None:
    if not 0 < cfg.budget_fraction <= 1:
        raise InputError(f"long_seq_memory.budget_fraction must be in (0, 1], got {cfg.budget_fraction}")
    if cfg.budget_bytes is not None and cfg.budget_bytes <= 0:
        raise InputError(f"long_seq_memory.budget_bytes must be positive, got {cfg.budget_bytes}")
    if cfg.headroom < 0:
        raise InputError(f"long_seq_memory.headroom must be >= 0, got {cfg.headroom}")
    for key in ("max_seq_len", "max_batch"):
        value = getattr(cfg, key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InputError(f"long_seq_memory.{key} must be a positive integer, got {value!r}")
    if cfg.max_probes < 3:
        raise InputError(f"long_seq_memory.max_probes must be at least 3 (a curve has 3 coefficients), got {cfg.max_probes}")


def _runner(candidate: ModelUnderTest, device: str, cfg: LongSeqMemorySettings, vocab: int) -> tuple[Runner, float]:
    """A probe function for the device and the device's memory in bytes."""
    budget_guard: list[float] = []

    if device == "cpu":
        if not candidate.onnx_path.is_file():
            raise InputError(f"{candidate.ref} has no ONNX model at {candidate.onnx_path}")
        total = cpu_memory_bytes()
        guard = float(cfg.budget_bytes) if cfg.budget_bytes else cfg.budget_fraction * total
        budget_guard.append(guard)

        def run_cpu(b: int, s: int, purpose: str) -> Probe:
            return cpu_probe(candidate.onnx_path, b, s, vocab, kill_above=budget_guard[0],
                             timeout_s=cfg.probe_timeout_s, purpose=purpose)

        return run_cpu, total
    if device.startswith("cuda"):
        from validators.memory_probe import CudaProber

        _require_cuda(device)
        from controlplane.models.hf import weights_file

        if weights_file(candidate.model_dir) is None:
            raise InputError(f"{candidate.ref} has no Hugging Face weights: CUDA memory probes run the torch model")
        prober = CudaProber(candidate.model_dir, device, half=candidate.tags.get("quantization") == "fp16")

        def run_cuda(b: int, s: int, purpose: str) -> Probe:
            return prober.probe(b, s, vocab, purpose)

        return run_cuda, float(prober.total_bytes())
    raise InputError(f"unknown device {device!r} (cpu, cuda or cuda:N)")


def _explain_error(candidate: ModelUnderTest, device: str) -> None:
    """A probe that crashed: an unusable graph is bad input (InputError), anything else stays an error."""
    if device == "cpu":
        from controlplane.models.onnx_graph import check_attention_onnx

        check_attention_onnx(candidate.onnx_path)  # raises InputError for corrupt or non-attention graphs


def _require_cuda(device: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"device {device} requested but no CUDA device is available")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise InputError(f"device {device} requested but only {torch.cuda.device_count()} CUDA devices exist")


def cpu_memory_bytes() -> float:
    """Physical memory, capped by this process's cgroup limit (v2 or v1) when one is set."""
    import os

    total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, float(raw))
    return total


def _available_bytes() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _verify(cfg: LongSeqMemorySettings, device: str, budget: float) -> bool:
    if cfg.verify_max is not None:
        return cfg.verify_max
    if device.startswith("cuda"):
        return True
    return cfg.budget_bytes is not None and budget <= SMALL_BUDGET_FRACTION * _available_bytes()


def _verify_max(probe: Callable[[int, int, str], Probe], max_probes: int, probes: list[Probe], seq: int,
                predicted: int, budget: float) -> int:
    """Measure at the predicted maximum batch; bisect down while it does not fit. Largest measured fit."""

    def fits(p: Probe) -> bool:  # on CUDA nothing kills a probe at the budget: compare its peak
        return p.ok and p.peak_bytes <= budget

    known_ok = max([p.batch for p in probes if fits(p) and p.seq_len == seq] + [0])
    lo, hi = known_ok, predicted
    while len(probes) < max_probes and hi > lo:
        result = probe(hi, seq, "verify")
        if fits(result):
            return hi
        if result.outcome == "error":
            break
        hi = max(lo, (lo + hi) // 2) if hi - lo > 1 else lo
    return lo


def _gib(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value / (1 << 30):.2f} GiB"


def _finish(status: Status, metrics: dict[str, float], thresholds: dict[str, float], details: dict[str, Any],
            findings: list[str], probes: list[Probe], curve: Curve | None, workdir: Path, ref: str,
            declared: tuple[int, int], max_positions: int, budget: float) -> CheckResult:
    workdir.mkdir(parents=True, exist_ok=True)
    metrics["probes"] = float(len(probes))
    metrics["probe_seconds"] = float(sum(p.seconds for p in probes))
    details["probes"] = [p.to_dict() for p in probes]
    artifacts: list[Path] = []
    if curve is not None:
        details["curve"] = {"c0": curve.c0, "c1": curve.c1, "c2": curve.c2,
                            "formula": "c0 + c1*batch*seq + c2*batch*seq^2 (bytes)"}
        artifacts.append(plot(workdir / "long-seq-memory.png", curve, probes, budget=budget, declared=declared,
                              max_positions=max_positions, title=f"{ref}: peak memory vs sequence length"))
    data = workdir / "long-seq-memory.json"
    data.write_text(json.dumps({"metrics": metrics, "details": details}, indent=1, default=str), encoding="utf-8")
    artifacts.append(data)
    return CheckResult(NAME, status, metrics=metrics, thresholds=thresholds, findings=findings,
                       artifacts=artifacts, details=details)
