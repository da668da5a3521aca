"""tokenizer-parity on real all-MiniLM-L6-v2 variants (no registry: the cached variant folders)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from controlplane.errors import InputError
from validators import tokenizer_parity
from validators.corpus import ADVERSARIAL, read_corpus
from validators.result import ModelUnderTest, Status
from validators.settings import Settings


def run(cand: ModelUnderTest, ref: ModelUnderTest | None, tmp_path: Path, **cfg: object):  # type: ignore[no-untyped-def]
    settings = Settings()
    if cfg:
        settings = replace(settings, tokenizer_parity=replace(settings.tokenizer_parity, **cfg))
    return tokenizer_parity.check(cand, ref, settings, workdir=tmp_path)


def test_corpus_covers_the_adversarial_categories() -> None:
    categories = {c for c, _ in ADVERSARIAL}
    assert {"nfc", "nfd", "combining", "case", "emoji", "cjk", "rtl", "control", "whitespace",
            "long-word", "url", "code"} <= categories  # fmt: skip


def test_healthy_against_itself_passes(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    result = run(variants["healthy"], variants["healthy"], tmp_path)
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["mismatch_rate"] == 0.0
    assert result.metrics["config_differences"] == 0.0
    assert result.metrics["max_vocab_id"] < result.metrics["embedding_rows"] == 30522


@pytest.mark.parametrize("name", ["int8-per-channel", "int8-per-tensor", "collapsed"])
def test_same_tokenizer_variants_pass(variants: dict[str, ModelUnderTest], name: str, tmp_path: Path) -> None:
    assert run(variants[name], variants["healthy"], tmp_path).status is Status.PASSED


def test_changed_normalizer_fails_with_side_by_side_tokens(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    result = run(variants["normalizer"], variants["healthy"], tmp_path)
    assert result.status is Status.FAILED
    assert any(f.startswith("config differs: normalizer") for f in result.findings)
    assert result.metrics["mismatch_rate"] > 0.5
    first = result.details["mismatches"][0]
    assert first["reference"] != first["candidate"]
    assert any("reference [CLS](101)" in f and "| candidate" in f for f in result.findings)
    assert len(result.details["mismatches"]) == Settings().tokenizer_parity.max_mismatches_reported


def test_reference_tokenizer_file_wins_over_no_baseline(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    training = variants["healthy"].model_dir / "tokenizer.json"
    assert run(variants["healthy"], None, tmp_path, reference_tokenizer=str(training)).status is Status.PASSED
    assert run(variants["normalizer"], None, tmp_path, reference_tokenizer=str(training)).status is Status.FAILED


def test_positions_cut_short_fail_without_any_reference(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    result = run(variants["short-positions"], None, tmp_path)
    assert result.status is Status.FAILED
    assert result.metrics["max_positions"] == 64
    assert any("declares 128 tokens but the model has 64 position embeddings" in f for f in result.findings)


def test_only_padding_differs_is_a_warning(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    folder = tmp_path / "ref"
    folder.mkdir()
    data = json.loads((variants["healthy"].model_dir / "tokenizer.json").read_text())
    data["truncation"]["max_length"] = 256
    (folder / "tokenizer.json").write_text(json.dumps(data))
    result = run(variants["healthy"], None, tmp_path, reference_tokenizer=str(folder))
    assert result.status is Status.WARNING
    assert any("truncation" in f for f in result.findings)


def test_ids_beyond_the_embedding_table_fail(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    """A tokenizer with an added token whose id the model has no embedding row for."""
    folder = tmp_path / "model"
    shutil.copytree(variants["healthy"].model_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    data = json.loads((folder / "tokenizer.json").read_text())
    data["added_tokens"].append({"id": 30522, "content": "<new>", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True})  # fmt: skip
    (folder / "tokenizer.json").write_text(json.dumps(data))
    cand = ModelUnderTest("local:extra-token", folder, folder / "model.onnx")
    result = run(cand, None, tmp_path)
    assert result.status is Status.FAILED
    assert any("30522 embedding rows" in f for f in result.findings)


def test_user_corpus_is_added(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one\n\n  \ntwo three\n", encoding="utf-8")
    assert read_corpus(corpus) == ["one", "two three"]
    result = run(variants["healthy"], variants["healthy"], tmp_path, corpus_file=str(corpus))
    assert result.metrics["texts"] == len(ADVERSARIAL) + 2


@pytest.mark.parametrize("content", [b"", b"\n  \n", b"\xff\xfe bad"])
def test_bad_corpus_is_input_error(content: bytes, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    with pytest.raises(InputError, match="corpus file"):
        read_corpus(corpus)


def test_missing_tokenizer_is_input_error(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy2(variants["healthy"].model_dir / "config.json", folder / "config.json")
    with pytest.raises(InputError, match="has no tokenizer"):
        run(ModelUnderTest("local:no-tok", folder, folder / "model.onnx"), None, tmp_path)


def test_vocabulary_difference_fails(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    folder = tmp_path / "ref"
    folder.mkdir()
    data = json.loads((variants["healthy"].model_dir / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab["cafe"], vocab["naive"] = vocab["naive"], vocab["cafe"]  # two ids swapped
    (folder / "tokenizer.json").write_text(json.dumps(data))
    result = run(variants["healthy"], None, tmp_path, reference_tokenizer=str(folder))
    assert result.status is Status.FAILED
    assert any(f.startswith("config differs: vocabulary") for f in result.findings)
    assert {"nfc", "nfd"} <= set(result.details["mismatched_categories"])
