"""head-collapse on real all-MiniLM-L6-v2 variants, read from the ONNX artifacts themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controlplane.errors import InputError
from validators import head_collapse
from validators.head_collapse import HeadStats, judge
from validators.result import ModelUnderTest, Status
from validators.settings import HeadCollapseSettings, Settings

from .fixtures import COLLAPSED_LAYER, under_test

PNG = b"\x89PNG\r\n\x1a\n"


def run(cand: ModelUnderTest, ref: ModelUnderTest | None, tmp_path: Path):  # type: ignore[no-untyped-def]
    return head_collapse.check(cand, ref, Settings(), workdir=tmp_path / "out")


@pytest.mark.slow
def test_healthy_passes_although_some_heads_are_similar(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    result = run(variants["healthy"], None, tmp_path)
    assert result.status is Status.PASSED, result.findings
    # the real model has head pairs above 0.9 cosine: the thresholds must live with them
    assert 0.9 < result.metrics["max_similarity"] < Settings().head_collapse.identical_cosine
    assert sum(result.metrics[f"layer{i}.pairs_above_0.9"] for i in range(6)) > 10
    pngs = [p for p in result.artifacts if p.suffix == ".png"]
    assert len(pngs) == 6 and all(p.read_bytes().startswith(PNG) for p in pngs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["healthy", "int8-per-channel", "int8-per-tensor", "normalizer"])
def test_no_false_alarm_against_the_baseline(variants: dict[str, ModelUnderTest], name: str, tmp_path: Path) -> None:
    result = run(variants[name], variants["healthy"], tmp_path)
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["max_mean_similarity_increase"] < Settings().head_collapse.max_mean_similarity_increase


@pytest.mark.slow
def test_collapsed_layer_fails_on_absolute_guards(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    result = run(variants["collapsed"], None, tmp_path)
    assert result.status is Status.FAILED
    assert result.findings[0].startswith(f"layer {COLLAPSED_LAYER}: 12 of 12 heads have identical attention")
    assert result.metrics[f"layer{COLLAPSED_LAYER}.mean_similarity"] > 0.999
    assert result.metrics["duplicate_pairs"] == 66


@pytest.mark.slow
def test_collapsed_layer_fails_as_a_regression(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    result = run(variants["collapsed"], variants["healthy"], tmp_path)
    assert result.status is Status.FAILED
    assert result.metrics["max_mean_similarity_increase"] > 0.2
    assert any("against the baseline" in f for f in result.findings)


@pytest.mark.slow
def test_different_architecture_baseline_is_input_error(
    variants: dict[str, ModelUnderTest], tiny_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="different architecture"):
        run(variants["healthy"], under_test("tiny", tiny_dir), tmp_path)


def test_non_attention_graph_is_input_error(
    variants: dict[str, ModelUnderTest], broken_files: dict[str, Path], tmp_path: Path
) -> None:
    cand = ModelUnderTest("local:plain", variants["healthy"].model_dir, broken_files["plain"])
    with pytest.raises(InputError, match="Softmax"):
        run(cand, None, tmp_path)


# ---- the judgement on synthetic statistics (what each guard does) ---------------------------


def _stats(layers: int = 2, heads: int = 4) -> HeadStats:
    rng = np.random.default_rng(0)
    sim = np.full((layers, heads, heads), 0.5) + rng.uniform(0, 0.1, (layers, heads, heads))
    sim = (sim + sim.transpose(0, 2, 1)) / 2
    for layer in range(layers):
        np.fill_diagonal(sim[layer], 1.0)
    return HeadStats(sim, np.full((layers, heads), 0.5), np.ones((layers, heads)))


def test_judge_one_duplicate_pair_warns_a_group_fails() -> None:
    cfg = HeadCollapseSettings()
    stats = _stats()
    stats.similarity[1, 0, 1] = stats.similarity[1, 1, 0] = 0.995
    assert judge(stats, None, cfg)[0] is Status.WARNING
    for i, j in [(0, 2), (1, 2)]:
        stats.similarity[1, i, j] = stats.similarity[1, j, i] = 0.995
    status, _, findings = judge(stats, None, cfg)
    assert status is Status.FAILED and "3 of 4 heads" in findings[0]


def test_judge_uniform_and_dead_heads() -> None:
    cfg = HeadCollapseSettings()
    stats = _stats()
    stats.entropy[0, 0] = 0.99
    assert judge(stats, None, cfg)[0] is Status.WARNING
    stats.entropy[0, :2] = 0.99
    assert judge(stats, None, cfg)[0] is Status.FAILED
    stats = _stats()
    assert stats.output_norm is not None
    stats.output_norm[1, :2] = 0.01
    status, metrics, findings = judge(stats, None, cfg)
    assert status is Status.FAILED and metrics["dead_heads"] == 2 and "dead" in findings[0]
