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
from validators.settings import QuantizationSettings, Settings

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


def _register(home: Home, name: str, folder: Path, *extra: str) -> dict:
    proc = home.ctl("register", name, "--onnx", str(folder), *extra, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    home.refs[folder.name] = data["ref"]
    return data


def _source(home: Home, built: dict[str, Path], style: str) -> str:
    if style not in home.refs:
        _register(home, f"minilm-{style}", built[style])
    return home.refs[style]


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
    extra = ("--source", _source(home, built, style)) if quantized else ()
    ref = home.refs.get(fixture) or _register(home, f"minilm-{fixture}", folder, *extra)["ref"]
    data = {"ref": ref}
    name, version = data["ref"].split(":v")
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
        [result] = _run(home, data["ref"], ["quantization-accuracy"]).values()
        assert result.status is _verdict(result.metrics, QuantizationSettings()), result.findings
        entry.update(cosine_mean=round(result.metrics["cosine_mean"], 4), cosine_p1=round(result.metrics["cosine_p1"], 4),
                     cosine_min=round(result.metrics["cosine_min"], 4), verdict=str(result.status))
        if fixture.endswith("per-tensor"):  # the calibration docs/validators.md gives
            assert result.status is Status.FAILED
        if fixture.endswith(("per-channel", "fp16")):
            assert result.status is Status.PASSED
    report[fixture] = {**report.get(fixture, {}), **entry}
