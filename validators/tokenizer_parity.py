"""tokenizer-parity: does the candidate tokenize exactly like the reference, and fit its own model?

Reference: ``settings.tokenizer_parity.reference_tokenizer`` (``--reference-tokenizer``: a
tokenizer.json or a folder holding one) or else the baseline version's tokenizer. Without either,
only the candidate's own consistency is checked.

1. Configuration: normalizer, pre-tokenizer, post-processor, WordPiece/BPE model settings, vocabulary
   hash and special tokens with their ids (differences fail); truncation, padding, decoder and
   ``model_max_length`` (differences warn: they change lengths, not ids).
2. Token ids on the built-in adversarial corpus (``validators.corpus.ADVERSARIAL``) plus the user's
   corpus file, without truncation; the first mismatches are reported with both token sequences.
3. Every id the candidate produces (and its whole vocabulary) is below the model's embedding rows,
   and the declared maximum length fits the position embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controlplane.errors import InputError
from controlplane.models.hashing import vocab_hash
from controlplane.models.hf import read_json
from validators import model_arch
from validators.corpus import ADVERSARIAL, read_corpus
from validators.result import CheckResult, ModelUnderTest, Status
from validators.settings import Settings

NAME = "tokenizer-parity"
_HUGE = 1_000_000  # transformers writes model_max_length = 1e30 for "no limit"
_MODEL_KEYS = (
    "type",
    "unk_token",
    "continuing_subword_prefix",
    "max_input_chars_per_word",
    "end_of_word_suffix",
    "dropout",
    "byte_fallback",
    "fuse_unk",
)
_ID_WINDOW = 10  # tokens shown around the first difference


def tokenizer_file(path: Path | str, what: str) -> Path:
    """``path`` itself or ``path/tokenizer.json``; InputError when absent."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{what} has no tokenizer: {file} does not exist")
    return file


def _load(file: Path) -> tuple[dict[str, Any], Any]:
    from tokenizers import Tokenizer

    data = read_json(file, "tokenizer")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises plain Exceptions for malformed files
        raise InputError(f"{file} is not a valid tokenizer.json ({' '.join(str(exc).split())[:160]})") from None
    tok.no_truncation()
    tok.no_padding()
    return data, tok


def _tokenizer_config(file: Path) -> dict[str, Any]:
    cfg = file.parent / "tokenizer_config.json"
    return read_json(cfg, "tokenizer config") if cfg.is_file() else {}


def _specials(data: dict[str, Any]) -> dict[str, int]:
    return {t["content"]: int(t["id"]) for t in data.get("added_tokens") or [] if t.get("special")}


def config_differences(
    ref: dict[str, Any], cand: dict[str, Any], ref_cfg: dict[str, Any], cand_cfg: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(differences that change ids, differences that only change lengths/decoding)."""
    hard: list[str] = []
    soft: list[str] = []

    def cmp(field: str, a: Any, b: Any, into: list[str]) -> None:
        if a != b:
            into.append(f"{field}: reference {_short(a)} vs candidate {_short(b)}")

    for key in ("normalizer", "pre_tokenizer", "post_processor"):
        cmp(key, ref.get(key), cand.get(key), hard)
    ref_model, cand_model = ref.get("model") or {}, cand.get("model") or {}
    for key in _MODEL_KEYS:
        cmp(f"model.{key}", ref_model.get(key), cand_model.get(key), hard)
    same_vocab = (ref_model.get("vocab"), ref_model.get("merges")) == (cand_model.get("vocab"), cand_model.get("merges"))
    if not same_vocab:  # hashes only for the message: hashing 30k entries costs ~0.3 s
        hard.append(
            f"vocabulary: hash {vocab_hash(ref)[:12]} vs {vocab_hash(cand)[:12]} "
            f"({_vocab_len(ref)} vs {_vocab_len(cand)} entries)"
        )
    cmp("special tokens", _specials(ref), _specials(cand), hard)
    pad_ref, pad_cand = ref.get("padding") or {}, cand.get("padding") or {}
    cmp("padding.pad_id", pad_ref.get("pad_id"), pad_cand.get("pad_id"), hard)
    cmp("truncation", ref.get("truncation"), cand.get("truncation"), soft)
    cmp("padding", pad_ref, pad_cand, soft)
    cmp("decoder", ref.get("decoder"), cand.get("decoder"), soft)
    for key in ("model_max_length", "do_lower_case", "strip_accents", "tokenize_chinese_chars"):
        if key in ref_cfg or key in cand_cfg:
            cmp(f"tokenizer_config.{key}", ref_cfg.get(key), cand_cfg.get(key), soft)
    return hard, soft


def _vocab_len(data: dict[str, Any]) -> int:
    vocab = (data.get("model") or {}).get("vocab")
    return len(vocab) if isinstance(vocab, dict | list) else 0


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _side_by_side(text: str, category: str, ref: Any, cand: Any) -> tuple[str, dict[str, Any]]:
    first = next((i for i, (a, b) in enumerate(zip(ref.ids, cand.ids, strict=False)) if a != b), min(len(ref.ids), len(cand.ids)))
    lo = max(0, first - 2)

    def show(enc: Any) -> list[str]:
        return [f"{t}({i})" for t, i in zip(enc.tokens[lo : lo + _ID_WINDOW], enc.ids[lo : lo + _ID_WINDOW], strict=True)]

    ref_tokens, cand_tokens = show(ref), show(cand)
    shown = text if len(text) <= 60 else text[:57] + "…"
    line = (
        f"[{category}] {shown!r} differs at token {first}: reference {' '.join(ref_tokens)} | candidate {' '.join(cand_tokens)}"
    )
    return line, {
        "text": text,
        "category": category,
        "first_difference": first,
        "reference": list(ref.tokens),
        "candidate": list(cand.tokens),
        "reference_ids": list(ref.ids),
        "candidate_ids": list(cand.ids),
    }


def _onnx_embedding_rows(path: Path) -> int | None:
    """Rows of the table a Gather on ``input_ids`` reads (parsing only: the runner checked the graph)."""
    import onnx

    from controlplane.models.onnx_graph import embedding_rows, embedding_tables

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not parseable: let the checking reader raise its one-line InputError
        return embedding_rows(path)
    word, _ = embedding_tables(model)
    return word


def _embedding_rows(candidate: ModelUnderTest, config: dict[str, Any]) -> tuple[int, str]:
    rows = _onnx_embedding_rows(candidate.onnx_path)
    if rows is not None:
        return rows, "onnx word-embedding table"
    if "vocab_size" in config:
        return int(config["vocab_size"]), "config vocab_size"
    return int(candidate.tags.get("arch.vocab_size", 0)), "tag arch.vocab_size"


def check(
    candidate: ModelUnderTest, reference: ModelUnderTest | None, settings: Settings, *, device: str = "cpu", workdir: Path
) -> CheckResult:
    cfg = settings.tokenizer_parity
    cand_file = tokenizer_file(candidate.model_dir, candidate.ref)
    cand_data, cand_tok = _load(cand_file)
    cand_cfg = _tokenizer_config(cand_file)
    config = model_arch.config(candidate)

    if cfg.reference_tokenizer:
        ref_file: Path | None = tokenizer_file(cfg.reference_tokenizer, "--reference-tokenizer")
        ref_name = str(cfg.reference_tokenizer)
    elif reference is not None:
        ref_file, ref_name = tokenizer_file(reference.model_dir, reference.ref), reference.ref
    else:
        ref_file, ref_name = None, None

    corpus = list(ADVERSARIAL)
    if cfg.corpus_file:
        corpus += [("user", t) for t in read_corpus(cfg.corpus_file)]
    texts = [t for _, t in corpus]
    cand_encs = cand_tok.encode_batch(texts)

    metrics: dict[str, float] = {"texts": float(len(texts))}
    findings: list[str] = []
    details: dict[str, Any] = {"reference": ref_name, "mismatches": []}
    failed = warned = False

    # 1 + 2: against the reference
    if ref_file is not None:
        ref_data, ref_tok = _load(ref_file)
        hard, soft = config_differences(ref_data, cand_data, _tokenizer_config(ref_file), cand_cfg)
        details["config_differences"], details["config_warnings"] = hard, soft
        metrics["config_differences"], metrics["config_warnings"] = float(len(hard)), float(len(soft))
        findings += [f"config differs: {d}" for d in hard] + [f"config differs (lengths only): {d}" for d in soft]
        failed |= bool(hard) and cfg.fail_on_config_difference
        warned |= bool(soft)
        ref_encs = ref_tok.encode_batch(texts)
        bad = [i for i, (a, b) in enumerate(zip(ref_encs, cand_encs, strict=True)) if a.ids != b.ids]
        rate = len(bad) / len(texts)
        metrics["mismatched_texts"], metrics["mismatch_rate"] = float(len(bad)), rate
        categories = sorted({corpus[i][0] for i in bad})
        details["mismatched_categories"] = categories
        if bad:
            findings.append(f"{len(bad)}/{len(texts)} corpus texts tokenize differently (categories: {', '.join(categories)})")
        for i in bad[: cfg.max_mismatches_reported]:
            line, record = _side_by_side(texts[i], corpus[i][0], ref_encs[i], cand_encs[i])
            findings.append(line)
            details["mismatches"].append(record)
        failed |= rate > cfg.max_mismatch_rate
    else:
        findings.append(
            "no reference tokenizer (no --baseline or --reference-tokenizer): only the candidate's own consistency was checked"
        )

    # 3: the candidate against its own model
    rows, rows_from = _embedding_rows(candidate, config)
    max_vocab_id = max(cand_tok.get_vocab(with_added_tokens=True).values())
    max_corpus_id = max((max(e.ids) for e in cand_encs if e.ids), default=0)
    metrics.update(embedding_rows=float(rows), max_vocab_id=float(max_vocab_id), max_corpus_id=float(max_corpus_id))
    if max(max_vocab_id, max_corpus_id) >= rows:
        failed = True
        findings.append(
            f"token ids reach {max(max_vocab_id, max_corpus_id)} but the model has {rows} embedding "
            f"rows ({rows_from}): such ids crash or read garbage at inference"
        )
    positions = model_arch.usable_positions(candidate)
    trunc = (cand_data.get("truncation") or {}).get("max_length")
    model_max = cand_cfg.get("model_max_length")
    declared = {
        k: int(v)
        for k, v in (("tokenizer.json truncation", trunc), ("model_max_length", model_max))
        if isinstance(v, int | float) and 0 < v < _HUGE
    }
    metrics["max_positions"] = float(positions)
    if declared:
        metrics["declared_max_length"] = float(max(declared.values()))
    for where, length in declared.items():
        if length > positions:
            failed = True
            findings.append(
                f"{where} declares {length} tokens but the model has {positions} position embeddings: "
                f"inputs longer than {positions} tokens fail at inference"
            )
    thresholds = {"max_mismatch_rate": cfg.max_mismatch_rate, "embedding_rows": float(rows), "max_positions": float(positions)}
    status = Status.FAILED if failed else Status.WARNING if warned else Status.PASSED
    if status is Status.PASSED:
        findings.insert(0, f"{len(texts)} texts tokenize identically" if ref_file else "tokenizer fits the model")
    return CheckResult(NAME, status, metrics, thresholds, findings, [], details)
