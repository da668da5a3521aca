"""``ctl register --onnx``: graphs other people exported (legacy and dynamo ``torch.onnx``, onnxruntime's
fused optimizer output, each quantization scheme) registered byte for byte, tagged with the format
and signature they have, and gated by the real checks (real all-MiniLM-L6-v2, real SQLite MLflow).

Fixtures: tests/validators/prebuilt_fixtures.py (cached). ``optimum-onnx`` is not installed here, so no
graph comes from optimum's exporter; ``ort-fused`` is the onnxruntime optimizer pass optimum runs at -O2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controlplane.models import sha256_file
from tests.validators import prebuilt_fixtures as pf
from validators.result import Status
from validators.settings import HeadCollapseSettings, QuantizationSettings, Settings

pytestmark = pytest.mark.slow
REPORT = pf.root() / "report.json"  # the figures docs/validators.md records


@dataclass
class Home:
    env: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    _ctx: object | None = None

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        if self._ctx is None:
            from controlplane.app.context import open_context
            from controlplane.settings import load_settings

            self._ctx = open_context(load_settings(self.env))
        return self._ctx

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip

    def versions(self, name: str) -> list[int]:
        reg = self.ctx.registry
        return [v.version for v in reg.list_versions(name)] if name in reg.list_models() else []


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return pf.build_prebuilt()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    path = tmp_path_factory.mktemp("prebuilt-home")
    env = {k: v for k, v in os.environ.items() if k not in ("CONTROLPLANE_DB_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(CONTROLPLANE_HOME=str(path), NO_COLOR="1", COLUMNS="200")
    return Home(env)


@pytest.fixture(scope="module")
def report() -> dict[str, dict]:
    data: dict[str, dict] = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    yield data
    REPORT.write_text(json.dumps(data, indent=1, sort_keys=True))


def _bad_input(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1 and err.startswith("error:"), err
    for fragment in fragments:
        assert fragment in err, err


# Registered through a ``ctl register --onnx`` subprocess; the other fixtures go through the function
# that command calls (``register_prebuilt``), which keeps this module inside its time budget.
THROUGH_CLI = frozenset({"legacy", "dynamo", "legacy-int8-dynamic-per-channel", "ort-fused", "roberta"})


def _register(home: Home, name: str, folder: Path, source: str | None = None) -> str:
    if folder.name in THROUGH_CLI:
        proc = home.ctl("register", name, "--onnx", str(folder), *(("--source", source) if source else ()), "-o", "json")
        assert proc.returncode == 0, proc.stderr
        ref = json.loads(proc.stdout)["ref"]
    else:
        from controlplane.app.register import register_prebuilt

        ref = register_prebuilt(home.ctx, name, folder, source=source).version.ref
    home.refs[folder.name] = ref
    return ref


def _ref(home: Home, folder: Path, source: str | None = None) -> str:
    return home.refs.get(folder.name) or _register(home, f"minilm-{folder.name}", folder, source)


def _source(home: Home, built: dict[str, Path], style: str) -> str:
    return _ref(home, built[style])


def _run(home: Home, ref: str, checks: list[str], settings: Settings | None = None):  # type: ignore[no-untyped-def]
    from validators.runner import run_checks

    report = run_checks(ref, checks=checks, baseline_ref=None, device="cpu", registry=home.ctx.registry,
                        store=home.ctx.store, now=0.0, settings=settings)  # fmt: skip
    return {r.check: r for r in report.results}


# ---- formats ----------------------------------------------------------------------------------

EXPECTED_FORMAT = {  # fixture → (onnx.format tag, quantization tag)
    "legacy": ("fp32", "none"),
    "legacy-int8-dynamic-per-tensor": ("int8-dynamic", "int8-per-tensor"),
    "legacy-int8-dynamic-per-channel": ("int8-dynamic", "int8-per-channel"),
    "legacy-int8-static-qdq": ("int8-static-qdq", "int8-static-qdq"),
    "legacy-int8-weight-only-nbits": ("int8-weight-only", "int8-weight-only"),
    "legacy-int8-weight-only-dq": ("int8-weight-only", "int8-weight-only"),
    "legacy-fp16": ("fp16", "fp16"),
    "dynamo": ("fp32", "none"),
    "dynamo-int8-dynamic-per-channel": ("int8-dynamic", "int8-per-channel"),
    "dynamo-sdpa": ("fp32", "none"),
    "ort-fused": ("fp32", "none"),
}


def _verdict(metrics: dict[str, float], cfg: QuantizationSettings) -> Status:
    """What the cosines say, by the documented thresholds."""
    if (metrics["cosine_mean"] < cfg.min_mean_cosine or metrics["cosine_p1"] < cfg.min_p1_cosine
            or metrics["cosine_min"] < cfg.min_cosine or metrics["max_abs_error"] > cfg.max_abs_error):
        return Status.FAILED
    return Status.WARNING if metrics["cosine_mean"] < cfg.warn_mean_cosine else Status.PASSED


@pytest.mark.parametrize("fixture", list(EXPECTED_FORMAT))
def test_registers_with_its_format_and_gets_its_verdict(fixture: str, built: dict[str, Path], home: Home,
                                                        report: dict[str, dict]) -> None:
    """Register through ``ctl register --onnx`` (the fp32 graph it derives from as ``--source``); the
    stored bytes are the given bytes; quantization-accuracy's verdict is what its cosine says."""
    folder = built[fixture]
    style = fixture.split("-int8")[0].split("-fp16")[0]
    quantized = EXPECTED_FORMAT[fixture][1] != "none"
    ref = _ref(home, folder, _source(home, built, style) if quantized else None)
    name, version = ref.split(":v")
    mv = home.ctx.registry.get_version(name, int(version))
    assert (mv.tags["onnx.format"], mv.tags["quantization"]) == EXPECTED_FORMAT[fixture]
    assert mv.tags["arch.source"] == ("config" if (folder / "config.json").is_file() else "graph")
    assert (mv.tags["arch.layers"], mv.tags["arch.heads"], mv.tags["arch.hidden"]) == ("6", "12", "384")
    assert mv.tags["onnx.inputs"] == "input_ids,attention_mask" and mv.tags["onnx.output_kind"] == "token-states"
    stored = home.ctx.registry.fetch(name, int(version))
    given = {"model.onnx": folder / "model.onnx", **{p.name: p for p in folder.glob("*.data")}}
    assert {n: sha256_file(stored / n) for n in given} == {n: sha256_file(p) for n, p in given.items()}
    assert mv.tags["onnx.sha256"] == sha256_file(folder / "model.onnx")
    entry = {"format": mv.tags["onnx.format"], "quantization": mv.tags["quantization"],
             "arch_source": mv.tags["arch.source"], "attention": mv.tags["onnx.attention"]}
    if quantized:
        assert mv.tags["lineage.source"] == home.refs[style]
        [result] = _run(home, ref, ["quantization-accuracy"]).values()
        assert result.status is _verdict(result.metrics, QuantizationSettings()), result.findings
        entry.update(cosine_mean=round(result.metrics["cosine_mean"], 4), cosine_p1=round(result.metrics["cosine_p1"], 4),
                     cosine_min=round(result.metrics["cosine_min"], 4), verdict=str(result.status))
        if fixture.endswith("per-tensor"):  # the calibration docs/validators.md gives
            assert result.status is Status.FAILED
        if fixture.endswith(("per-channel", "fp16")):
            assert result.status is Status.PASSED
    report[fixture] = {**report.get(fixture, {}), **entry}


# ---- bad input -------------------------------------------------------------------------------


def _copy_tokenizer(src: Path, dst: Path) -> Path:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _small_graph(folder: Path, text: bool) -> None:
    """A vision graph (no token inputs), or a text graph that takes the right inputs but has no attention."""
    import onnx
    from onnx import TensorProto, helper

    if text:
        nodes = [helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
                 helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["ids_f", "mask_f"], ["last_hidden_state"])]
        inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask")]
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq"])]
    else:
        nodes = [helper.make_node("Relu", ["pixel_values"], ["last_hidden_state"])]
        inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 8, 8])]
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", 3, 8, 8])]
    graph = helper.make_graph(nodes, "small", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))


def _big_tokenizer(src: Path, folder: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.add_tokens([f"brandnewtoken{i}" for i in range(10)])  # ids 30522..30531: past the 30522 embedding rows
    tok.save(str(folder / "tokenizer.json"))


BAD = {  # case → (setup(src folders, tmp) → ctl register arguments, fragment of the one error line)
    "truncated": "is not a valid ONNX model",
    "not-onnx": "is not a valid ONNX model",
    "no-token-inputs": "lack input_ids, attention_mask",
    "no-attention": "is not an attention encoder",
    "vocab-too-large": "produces ids up to 30531 but model.onnx has 30522 embedding rows",
    "mismatched-source": "is a different architecture",
    "missing-external-data": "keeps its weights in model.onnx.data",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_registers_nothing(case: str, built: dict[str, Path], home: Home, tmp_path: Path) -> None:
    legacy = built["legacy"]
    args: list[str] = ["--onnx", str(tmp_path)]
    if case == "truncated":
        (tmp_path / "model.onnx").write_bytes((legacy / "model.onnx").read_bytes()[: 1 << 20])
    elif case == "not-onnx":
        (tmp_path / "model.onnx").write_text("this is a README, not a graph\n")
    elif case in ("no-token-inputs", "no-attention"):
        _small_graph(tmp_path, text=case == "no-attention")
    elif case == "vocab-too-large":
        _big_tokenizer(legacy, tmp_path)
        args = ["--onnx", str(legacy / "model.onnx"), "--tokenizer", str(tmp_path / "tokenizer.json")]
    elif case == "mismatched-source":
        distil = _ref(home, pf.build_family("distilbert"))
        args = ["--onnx", str(built["legacy-int8-dynamic-per-channel"]), "--source", distil]
    elif case == "missing-external-data":
        (tmp_path / "model.onnx").write_bytes((built["dynamo"] / "model.onnx").read_bytes())
    if case not in ("vocab-too-large", "mismatched-source"):
        _copy_tokenizer(legacy, tmp_path)
    name = f"bad-{case}"
    _bad_input(home.ctl("register", name, *args), BAD[case])
    assert home.versions(name) == []  # nothing registered, not even an empty model


# ---- head-collapse on each exporter's graph ----------------------------------------------------

ATTENTION = {  # fixture → how its attention shows: "softmax" (probabilities found) or the fused op named
    "legacy": "softmax",
    "dynamo": "softmax",
    "legacy-int8-static-qdq": "softmax",
    "legacy-fp16": "softmax",
    "dynamo-sdpa": "Attention (ai.onnx)",
    "ort-fused": "Attention (com.microsoft)",
}


@pytest.mark.parametrize("fixture", list(ATTENTION))
def test_head_collapse_reads_each_exporters_graph(fixture: str, built: dict[str, Path], home: Home,
                                                  report: dict[str, dict]) -> None:
    """Probabilities found in every graph that has them (the healthy model passes); fused attention is
    ``not-inspectable`` with the op named: a warning by default, a failure when the policy refuses it."""
    ref = _ref(home, built[fixture])
    [result] = _run(home, ref, ["head-collapse"]).values()
    if ATTENTION[fixture] == "softmax":
        assert result.status is Status.PASSED, result.findings
        assert result.metrics["layer5.mean_similarity"] < 0.95 and "inspection" not in result.details
        entry = {"head_collapse": f"passed (max pair similarity {result.metrics['max_similarity']:.3f})"}
    else:
        assert result.status is Status.WARNING, result.findings
        [finding] = result.findings
        assert finding.startswith("not-inspectable:") and ATTENTION[fixture] in finding, finding
        assert result.details["inspection"] == "not-inspectable" and result.metrics == {"inspectable": 0.0}
        refused = _run(home, ref, ["head-collapse"], Settings(head_collapse=HeadCollapseSettings(not_inspectable="fail")))
        assert refused["head-collapse"].status is Status.FAILED
        entry = {"head_collapse": f"not-inspectable: {ATTENTION[fixture]} x6 (warning; with not_inspectable=fail: failed)"}
    report[fixture] = {**report.get(fixture, {}), **entry}


def test_validate_cli_accepts_or_refuses_fused_attention_by_policy(built: dict[str, Path], home: Home, tmp_path: Path) -> None:
    ref = _ref(home, built["ort-fused"])
    accepted = home.ctl("validate", ref, "--checks", "head-collapse", "--device", "cpu", "-o", "json")
    assert accepted.returncode == 0, accepted.stderr
    [check] = json.loads(accepted.stdout)["checks"]
    assert check["status"] == "warning" and check["summary"].startswith("not-inspectable:"), check
    assert "Attention (com.microsoft)" in check["summary"]
    policy = tmp_path / "settings.json"
    policy.write_text(json.dumps({"head_collapse": {"not_inspectable": "fail"}}))
    refused = home.ctl("validate", ref, "--checks", "head-collapse", "--device", "cpu", "--settings", str(policy), "-o", "json")
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["checks"][0]["status"] == "failed"
    name, version = ref.split(":v")
    assert home.ctx.registry.get_version(name, int(version)).tags["validation.head-collapse"] == "failed"


# ---- other encoder families (random weights from small configs) --------------------------------


@pytest.mark.parametrize("family", list(pf.FAMILIES))
def test_other_families_register_and_are_checked(family: str, home: Home, report: dict[str, dict]) -> None:
    """DistilBERT, RoBERTa and MPNet: architecture from the config, attention probabilities found, the
    tokenizer's declared length checked against the usable positions (RoBERTa and MPNet: 130 - 2)."""
    folder = pf.build_family(family)
    ref = _ref(home, folder)
    name, version = ref.split(":v")
    tags = home.ctx.registry.get_version(name, int(version)).tags
    assert (tags["arch.model_type"], tags["arch.layers"], tags["arch.heads"], tags["arch.hidden"]) == (family, "2", "4", "64")
    assert tags["arch.source"] == "config" and tags["onnx.format"] == "fp32"
    results = _run(home, ref, ["tokenizer-parity", "head-collapse"])
    usable = 128
    assert results["tokenizer-parity"].status is Status.PASSED, results["tokenizer-parity"].findings
    assert results["tokenizer-parity"].metrics["max_positions"] == usable
    heads = results["head-collapse"]
    assert heads.status is not Status.ERROR and "layer1.mean_similarity" in heads.metrics, heads.findings
    report[family] = {"format": "fp32", "arch_source": "config", "head_collapse": f"{heads.status} (random weights)",
                      "usable_positions": usable, "position_embeddings": int(tags["arch.max_positions"])}


def test_long_seq_uses_robertas_usable_positions(home: Home) -> None:
    """130 position embeddings, 128 usable: probes stop at 128 (at 130 the graph would fail), and a declared
    130 fails up front."""
    from dataclasses import replace

    ref = _ref(home, pf.build_family("roberta"))
    result = _run(home, ref, ["long-seq-memory"])["long-seq-memory"]
    assert result.status is Status.PASSED, result.findings
    assert (result.metrics["max_positions"], result.metrics["position_embeddings"]) == (128, 130)
    assert max(p["seq_len"] for p in result.details["probes"]) == 128
    too_long = Settings(long_seq_memory=replace(Settings().long_seq_memory, max_seq_len=130))
    refused = _run(home, ref, ["long-seq-memory"], too_long)["long-seq-memory"]
    assert refused.status is Status.FAILED and "128 usable positions (130 position embeddings" in refused.findings[0]


def test_pooled_output_graph_is_driven_as_the_server_drives_it(built: dict[str, Path], home: Home, tmp_path: Path) -> None:
    """A graph that returns a pooled ``[batch, hidden]`` embedding under its own name: tagged as such, and
    the encoder (the one ``ctl serve`` and the checks use) normalizes it instead of pooling it again."""
    import numpy as np
    import onnx
    from onnx import helper

    from controlplane.models.encoder import OnnxEncoder

    legacy = built["legacy"]
    model = onnx.load(str(legacy / "model.onnx"))
    model.graph.node.append(helper.make_node("ReduceMean", ["last_hidden_state"], ["sentence_embedding"], axes=[1], keepdims=0))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("sentence_embedding", onnx.TensorProto.FLOAT, ["batch", 384]))
    onnx.save(model, str(tmp_path / "model.onnx"))
    _copy_tokenizer(legacy, tmp_path)
    ref = _register(home, "pooled", tmp_path)
    name, version = ref.split(":v")
    tags = home.ctx.registry.get_version(name, int(version)).tags
    assert (tags["onnx.output"], tags["onnx.output_kind"]) == ("sentence_embedding", "pooled")
    stored = OnnxEncoder(home.ctx.registry.fetch(name, int(version)))
    texts = ["A man is playing a guitar.", "Quarks and gluons.", "ok"]
    got = np.concatenate([stored.encode([t]) for t in texts])  # one text per batch: no padding in the mean
    want = OnnxEncoder(legacy).encode(texts)
    assert got.shape == (3, 384) and np.allclose(got, want, atol=1e-5)
