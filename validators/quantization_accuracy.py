"""quantization-accuracy: a quantized candidate (int8 or fp16 ONNX) against its fp32 source.

Both graphs run on the *same* token ids (tokenized once with the candidate's tokenizer: tokenizer
differences are tokenizer-parity's business), and their outputs are mean-pooled and L2-normalized
the way the serving encoder does. Reported: cosine similarity per text (mean, 1st percentile,
minimum), the largest absolute difference between embedding components, and non-finite values in
the candidate's hidden states. With a labelled file (``labelled_file``: JSONL ``{"text", "label"}``
or TSV ``text<TAB>label``), also the task metric (leave-one-out 1-nearest-neighbour accuracy on the
embeddings) of both models, its drop, and top-1 agreement (same predicted label as the source).

Which reference: the runner passes the fp32 source, the version the candidate's ``lineage.source``
tag names (``ctl register --quantize`` sets it) or the baseline given on the command line.

* fp32 candidate → ``passed`` with a finding, whatever the reference: nothing was quantized (a
  retrained fp32 version differs from its baseline on purpose);
* quantized candidate without a reference, or one whose ``weights.sha256`` tag differs from the
  reference's (not its source) → ``error``, never a pass;
* reference of another architecture, or a quantized reference → ``InputError`` (exit 2).

Default thresholds (``QuantizationSettings``) were calibrated on all-MiniLM-L6-v2 with the built-in
corpus (validators/quantization_corpus.txt): onnxruntime's default per-tensor int8 gives mean cosine
0.953 / p1 0.842 / min 0.773 and fails; per-channel int8 gives 0.992 / 0.969 / 0.945 and passes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.errors import InputError
from validators.result import CheckResult, ModelUnderTest, Status
from validators.settings import QuantizationSettings, Settings

NAME = "quantization-accuracy"
BUILTIN_CORPUS = Path(__file__).with_name("quantization_corpus.txt")
MIN_LABELLED = 2
WEIGHTS_TAG = "weights.sha256"  # ctl register tags both the fp32 and the quantized version with the HF weights' hash
BATCH = 64  # as the serving encoder batches: dynamic int8 scales activations per batch
WORST_SHOWN = 3


def check(
    candidate: ModelUnderTest,
    reference: ModelUnderTest | None,
    settings: Settings,
    *,
    device: str = "cpu",
    workdir: Path,
) -> CheckResult:
    cfg = settings.quantization_accuracy
    thresholds = _thresholds(cfg)
    precision = _precision(candidate)
    if precision == "fp32":  # a retrained fp32 model differs from its baseline on purpose: not our business
        return CheckResult(NAME, Status.PASSED, thresholds=thresholds, details={"precision": precision},
                           findings=[f"{candidate.ref} is not quantized (fp32): nothing to compare"])
    if reference is None:
        source = candidate.tags.get("lineage.source")
        hint = f" (its lineage.source tag names {source})" if source else ""
        return CheckResult(NAME, Status.ERROR, thresholds=thresholds,
                           findings=[f"{candidate.ref} is {precision} but no fp32 source was given{hint}"])
    weights = (candidate.tags.get(WEIGHTS_TAG), reference.tags.get(WEIGHTS_TAG))
    if all(weights) and weights[0] != weights[1]:
        return CheckResult(NAME, Status.ERROR, thresholds=thresholds, findings=[
            f"{reference.ref} is not the fp32 source of {candidate.ref}: their {WEIGHTS_TAG} tags differ"])
    ref_precision = _precision(reference)
    if ref_precision != "fp32":
        raise InputError(f"reference {reference.ref} is {ref_precision}, not an fp32 source")
    _same_architecture(candidate, reference)

    texts = read_user_corpus(Path(cfg.corpus_file)) if cfg.corpus_file else read_corpus(BUILTIN_CORPUS)
    labelled = read_labelled(Path(cfg.labelled_file)) if cfg.labelled_file else None
    all_texts = texts + ([t for t, _ in labelled] if labelled else [])
    cand, ref, nonfinite = _embed_both(candidate, reference, all_texts, cfg.max_length, device)

    n = len(texts)
    cos = np.sum(cand[:n] * ref[:n], axis=1)
    metrics: dict[str, float] = {
        "texts": float(n),
        "cosine_mean": float(np.mean(cos)),
        "cosine_p1": float(np.percentile(cos, 1)),
        "cosine_min": float(np.min(cos)),
        "max_abs_error": float(np.max(np.abs(cand[:n] - ref[:n]))),
        "nonfinite_values": float(nonfinite),
    }
    findings: list[str] = []
    failed = _judge(metrics, cfg, findings)
    if labelled:
        labels = [label for _, label in labelled]
        metrics.update(_task_metrics(cand[n:], ref[n:], labels))
        failed |= _judge_task(metrics, cfg, findings)
    worst = np.argsort(cos)[:WORST_SHOWN]
    findings.append("lowest cosine: " + "; ".join(f"{cos[i]:.4f} {texts[i][:60]!r}" for i in worst))
    status = Status.FAILED if failed else Status.PASSED
    if not failed and metrics["cosine_mean"] < cfg.warn_mean_cosine:
        status = Status.WARNING
        findings.insert(0, f"mean cosine {metrics['cosine_mean']:.4f} below the warning level {cfg.warn_mean_cosine}")
    if status is Status.PASSED:
        findings.insert(0, f"{candidate.ref} ({precision}) keeps {reference.ref}'s embeddings: "
                           f"mean cosine {metrics['cosine_mean']:.4f}, p1 {metrics['cosine_p1']:.4f}")
    artifact = _write_details(workdir, texts, cos, metrics)
    return CheckResult(NAME, status, metrics=metrics, thresholds=thresholds, findings=findings,
                       artifacts=[artifact], details={"precision": precision, "reference": reference.ref})


def _precision(model: ModelUnderTest) -> str:
    """fp32 | int8 | fp16: the registry's ``quantization`` tag (``ctl register`` always sets it), else
    what the graph's operators and weights say."""
    tag = model.tags.get("quantization")
    if tag:
        return "fp32" if tag == "none" else tag.split("-", 1)[0]
    from controlplane.models.onnx_graph import check_onnx

    return check_onnx(model.onnx_path).precision


def _thresholds(cfg: QuantizationSettings) -> dict[str, float]:
    names = ("min_mean_cosine", "warn_mean_cosine", "min_p1_cosine", "min_cosine", "max_abs_error",
             "max_task_metric_drop", "min_top1_agreement")
    return {k: float(getattr(cfg, k)) for k in names}


def _judge(metrics: dict[str, float], cfg: QuantizationSettings, findings: list[str]) -> bool:
    failed = False
    if metrics["nonfinite_values"]:
        findings.append(f"{int(metrics['nonfinite_values'])} NaN/Inf values in the candidate's hidden states")
        failed = True
    for key, limit, label in (("cosine_mean", cfg.min_mean_cosine, "mean cosine"),
                              ("cosine_p1", cfg.min_p1_cosine, "1st-percentile cosine"),
                              ("cosine_min", cfg.min_cosine, "minimum cosine")):
        if not metrics[key] >= limit:  # NaN fails too
            findings.append(f"{label} {metrics[key]:.4f} < {limit}")
            failed = True
    if not metrics["max_abs_error"] <= cfg.max_abs_error:
        findings.append(f"max abs error {metrics['max_abs_error']:.4f} > {cfg.max_abs_error}")
        failed = True
    return failed


def _judge_task(metrics: dict[str, float], cfg: QuantizationSettings, findings: list[str]) -> bool:
    failed = False
    drop = -metrics["task_metric_delta"]
    if not drop <= cfg.max_task_metric_drop:
        findings.append(f"1-NN accuracy dropped by {drop:.4f} (> {cfg.max_task_metric_drop}): "
                        f"{metrics['task_metric_reference']:.4f} -> {metrics['task_metric_candidate']:.4f}")
        failed = True
    if not metrics["top1_agreement"] >= cfg.min_top1_agreement:
        findings.append(f"top-1 agreement {metrics['top1_agreement']:.4f} < {cfg.min_top1_agreement}")
        failed = True
    return failed


def _same_architecture(candidate: ModelUnderTest, reference: ModelUnderTest) -> None:
    from validators.model_arch import architecture

    archs = [architecture(m) for m in (candidate, reference)]
    if not archs[0].same_shape(archs[1]):
        raise InputError(f"reference {reference.ref} ({archs[1].describe()}) is not the same architecture as "
                         f"{candidate.ref} ({archs[0].describe()})")


def _providers(device: str) -> list[str]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise InputError(f"unknown device {device!r} (cpu or cuda)")


def _embed_both(candidate: ModelUnderTest, reference: ModelUnderTest, texts: Sequence[str], max_length: int,
                device: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Pooled unit vectors of both models on identical token ids, and the candidate's non-finite count."""
    from controlplane.models.encoder import OnnxEncoder, pooled_output, tokenize

    providers = _providers(device)
    cand = OnnxEncoder(candidate.onnx_path, candidate.model_dir / "tokenizer.json", providers)
    ref = OnnxEncoder(reference.onnx_path, candidate.model_dir / "tokenizer.json", providers)
    tok = cand.tokenizer(max_length)
    order = np.argsort([len(t) for t in texts], kind="stable")
    nonfinite = 0
    chunks_c: list[np.ndarray] = []
    chunks_r: list[np.ndarray] = []
    for start in range(0, len(texts), BATCH):
        ids, mask = tokenize(tok, [texts[i] for i in order[start : start + BATCH]])
        hc = cand.run(ids, mask, [cand.hidden_output])[0]  # token states or a pooled output, whatever the name
        hr = ref.run(ids, mask, [ref.hidden_output])[0]
        if hc.shape[-1] != hr.shape[-1]:
            raise InputError(f"{candidate.ref} and {reference.ref} produce embeddings of different widths "
                             f"{hc.shape[-1]} vs {hr.shape[-1]}")
        nonfinite += int(np.count_nonzero(~np.isfinite(hc[mask.astype(bool)] if hc.ndim == 3 else hc)))
        chunks_c.append(pooled_output(np.nan_to_num(hc, nan=0.0, posinf=0.0, neginf=0.0), mask))
        chunks_r.append(pooled_output(hr, mask))
    out_c, out_r = np.concatenate(chunks_c), np.concatenate(chunks_r)
    out_c[order], out_r[order] = out_c.copy(), out_r.copy()
    return out_c, out_r, nonfinite


def _task_metrics(cand: np.ndarray, ref: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Leave-one-out 1-NN accuracy of both embeddings, its delta, and top-1 (predicted label) agreement."""
    y = np.asarray(labels)

    def predict(emb: np.ndarray) -> np.ndarray:
        sims = emb @ emb.T
        np.fill_diagonal(sims, -np.inf)
        return y[np.argmax(sims, axis=1)]

    pc, pr = predict(cand), predict(ref)
    acc_c, acc_r = float(np.mean(pc == y)), float(np.mean(pr == y))
    return {"task_metric_candidate": acc_c, "task_metric_reference": acc_r,
            "task_metric_delta": acc_c - acc_r, "top1_agreement": float(np.mean(pc == pr))}


def _write_details(workdir: Path, texts: Sequence[str], cos: np.ndarray, metrics: dict[str, float]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "quantization-accuracy.json"
    order = np.argsort(cos)
    data: dict[str, Any] = {"metrics": metrics,
                            "per_text": [{"cosine": float(cos[i]), "text": texts[i]} for i in order]}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from None


def read_corpus(path: Path) -> list[str]:
    """The built-in corpus: non-empty lines, ``#`` comment lines skipped."""
    texts = [line.strip() for line in _read_text(path, "corpus file").splitlines()]
    return [t for t in texts if t and not t.startswith("#")]


def read_user_corpus(path: Path) -> list[str]:
    """A user corpus, read exactly as the other checks read it (every non-blank line is a text)."""
    from validators.corpus import read_corpus as read_shared

    return read_shared(path)


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs from JSONL ``{"text", "label"}`` or TSV ``text<TAB>label``."""
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(_read_text(path, "labelled file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            if path.suffix in (".jsonl", ".json"):
                item = json.loads(line)
                text, label = item["text"], item["label"]
            else:
                text, label = line.rsplit("\t", 1)
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{path}:{number}: expected {{\"text\", \"label\"}} JSON or text<TAB>label") from None
        rows.append((str(text), str(label)))
    if len(rows) < MIN_LABELLED or len({label for _, label in rows}) < 2:
        raise InputError(f"labelled file {path} needs at least {MIN_LABELLED} rows and 2 labels")
    return rows
