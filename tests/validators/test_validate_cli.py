"""`ctl validate` end to end: real registrations (SQLite MLflow), real checks, real subprocesses.

Exit codes: 0 all pass, 1 any fails, 2 bad input (one line on stderr, never a traceback).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from controlplane.app.gate import local_gate
from controlplane.engine import RolloutSpec
from controlplane.engine.types import ValidationState
from controlplane.workflows.results import CHECK_KEYS, RESULT_KEYS

from .conftest import Registered, ctl

pytestmark = pytest.mark.slow
MINE = "tokenizer-parity,head-collapse"


def _json(proc) -> dict:  # type: ignore[no-untyped-def]
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def _bad_input(proc, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, err
    assert err.startswith("error:"), err
    for fragment in fragments:
        assert fragment in err, err


def _statuses(data: dict) -> dict[str, str]:
    return {c["check"]: c["status"] for c in data["checks"]}


def _run_of(data: dict, check: str) -> str:
    return next(c["run_id"] for c in data["checks"] if c["check"] == check)


def test_healthy_passes_and_is_recorded(registry: Registered) -> None:
    """The default engine is the local one: the DAG in-process, one MLflow run and one store row per
    check (as each Argo step records), and the result shape both engines print."""
    ref = registry.ref("healthy")
    proc = ctl(registry, "validate", ref, "--checks", MINE, "--device", "cpu", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    data = _json(proc)
    assert set(data) == RESULT_KEYS and all(set(c) == CHECK_KEYS for c in data["checks"])
    assert data["engine"] == "local" and data["handle"].startswith("local/") and data["ref"] == ref
    assert data["phase"] == "Succeeded" and _statuses(data) == {"tokenizer-parity": "passed", "head-collapse": "passed"}
    name, version = ref.split(":v")
    mv = registry.ctx.registry.get_version(name, int(version))
    assert mv.tags["validation.status"] == "passed"
    assert mv.tags["validation.head-collapse"] == "passed"
    runs = {c["check"]: c["run_id"] for c in data["checks"]}
    assert len(set(runs.values())) == 2 and mv.tags["validation.run_id"] in runs.values()
    rows = registry.ctx.store.list_validations(name, int(version))
    assert {(r.check, r.run_id) for r in rows} >= set(runs.items())


def test_collapsed_fails_with_heatmaps_in_mlflow(registry: Registered) -> None:
    ref = registry.ref("collapsed")
    proc = ctl(registry, "validate", ref, "--checks", MINE, "--baseline", registry.ref("healthy"), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    data = _json(proc)
    assert _statuses(data) == {"tokenizer-parity": "passed", "head-collapse": "failed"}
    assert "did not pass validation: head-collapse" in proc.stderr

    from mlflow import MlflowClient  # the test reads MLflow directly to see what a user would see

    client = MlflowClient(tracking_uri=f"sqlite:///{registry.home / 'mlflow.db'}")
    run_id = _run_of(data, "head-collapse")
    run = client.get_run(run_id)
    assert run.data.metrics["head-collapse.layer3.mean_similarity"] > 0.999
    assert run.data.params["baseline"] == registry.ref("healthy")
    logged = {a.path for a in client.list_artifacts(run_id, "head-collapse")}
    assert {f"head-collapse/head-collapse-layer{i}.png" for i in range(6)} <= logged
    assert "validation-report.json" in {a.path for a in client.list_artifacts(run_id)}


def test_normalizer_fails_against_the_production_alias(registry: Registered) -> None:
    healthy = registry.ref("healthy")
    name, version = healthy.split(":v")
    registry.ctx.registry.set_alias(name, "production", int(version))
    proc = ctl(registry, "validate", registry.ref("normalizer"), "--checks", "tokenizer-parity",
               "--baseline", f"{name}@production", "-o", "json")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    data = _json(proc)
    assert data["phase"] == "Failed" and data["message"].startswith("tokenizer-parity failed")
    [check] = data["checks"]
    assert (check["check"], check["status"]) == ("tokenizer-parity", "failed"), check
    # the failure mode: the candidate's normalizer no longer lowercases, so real texts tokenize differently
    assert check["summary"].startswith("config differs: normalizer:"), check["summary"]
    assert '"lowercase": true' in check["summary"] and '"lowercase": false' in check["summary"]
    assert check["metrics"]["config_differences"] >= 1 and check["metrics"]["mismatched_texts"] > 0
    cand_name, cand_version = registry.ref("normalizer").split(":v")
    tags = registry.ctx.registry.get_version(cand_name, int(cand_version)).tags
    assert tags["validation.tokenizer-parity"] == "failed" and tags["validation.run_id"] == check["run_id"]


def test_reference_tokenizer_and_short_positions(registry: Registered, tmp_path: Path) -> None:
    training = registry.variant_dirs["healthy"] / "tokenizer.json"
    ok = ctl(registry, "validate", registry.ref("healthy"), "--checks", "tokenizer-parity",
             "--reference-tokenizer", str(training), "-o", "json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    short = ctl(registry, "validate", registry.ref("short-positions"), "--checks", "tokenizer-parity", "-o", "json")
    assert short.returncode == 1
    [result] = _json(short)["checks"]
    assert "64 position embeddings" in result["summary"], result


def _gate_verdict(gate, timeout: float = 600.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        state, evidence = gate.state()
        if state is not ValidationState.PENDING:
            return state, evidence
        assert time.monotonic() < deadline, "the gate never decided"
        time.sleep(0.2)


def test_rollout_gate_runs_the_dag_on_the_local_engine(registry: Registered) -> None:
    """The gate of a local rollout (controlplane/app/gate.py): the validation DAG in-process through
    the real validators; a failing check fails the gate with its failure mode, the version's
    overall tag is the worst of the steps' verdicts, and each step left its own run."""
    name, version = registry.ref("collapsed").split(":v")
    stable = int(registry.ref("healthy").split(":v")[1])
    spec = RolloutSpec(model=name, version=int(version), stable_version=stable,
                       checks=("head-collapse", "tokenizer-parity"))  # fmt: skip
    gate = local_gate(registry.ctx, spec, "cpu")
    gate.start(name, int(version))
    state, evidence = _gate_verdict(gate)
    assert state is ValidationState.FAILED, evidence
    assert evidence["checks"] == {"tokenizer-parity": "passed", "head-collapse": "failed"}
    assert evidence["failure_mode"] == "head-collapse"
    assert evidence["summary"].startswith("head-collapse failed")
    assert evidence["workflow"].startswith("local/")
    tags = registry.ctx.registry.get_version(name, int(version)).tags
    assert tags["validation.status"] == "failed" and tags["validation.tokenizer-parity"] == "passed"
    rows = [r for r in registry.ctx.store.list_validations(name, int(version)) if r.check in spec.checks]
    runs = {r.check: r.run_id for r in rows[-2:]}
    assert set(runs) == {"tokenizer-parity", "head-collapse"} and len(set(runs.values())) == 2

    # the same spec on a healthy version passes; an empty check list means every check
    healthy = RolloutSpec(model=name, version=stable, stable_version=None, checks=("tokenizer-parity",))
    ok = local_gate(registry.ctx, healthy, "cpu")
    assert _gate_verdict(ok)[0] is ValidationState.PASSED  # state() starts the run when nothing did
    assert local_gate(registry.ctx, RolloutSpec(model=name, version=stable), "cpu").request.checks == (
        "tokenizer-parity", "quantization-accuracy", "head-collapse", "long-seq-memory")


# ---- bad input: exit 2, one line ---------------------------------------------------------------


def test_bad_refs_checks_and_devices(registry: Registered) -> None:
    ref = registry.ref("healthy")
    _bad_input(ctl(registry, "validate", "minilm"), "invalid model reference")
    _bad_input(ctl(registry, "validate", "minilm:v999", "--checks", "tokenizer-parity"), "not found")
    _bad_input(ctl(registry, "validate", ref, "--checks", "tokenizer-parity,vibes"), "unknown check(s) 'vibes'")
    _bad_input(ctl(registry, "validate", ref, "--device", "tpu"), "invalid device 'tpu'")
    settings = registry.home / "bad-settings.yaml"
    settings.write_text("head_colapse:\n  identical_cosine: 0.9\n")
    _bad_input(ctl(registry, "validate", ref, "--settings", str(settings)), "unknown settings section 'head_colapse'")
    _bad_input(ctl(registry, "validate", ref, "--baseline", "minilm@nosuch", "--checks", "tokenizer-parity"),
               "no alias")  # fmt: skip


def test_cuda_absent_is_bad_input(registry: Registered) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present here")
    _bad_input(ctl(registry, "validate", registry.ref("healthy"), "--device", "cuda"), "no CUDA GPU")


def test_bad_corpus_files(registry: Registered, tmp_path: Path) -> None:
    ref = registry.ref("healthy")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _bad_input(ctl(registry, "validate", ref, "--checks", "tokenizer-parity", "--corpus", str(empty)), "is empty")
    missing = tmp_path / "nope.txt"
    _bad_input(ctl(registry, "validate", ref, "--checks", "tokenizer-parity", "--corpus", str(missing)),
               "does not exist")  # fmt: skip
    _bad_input(ctl(registry, "validate", ref, "--reference-tokenizer", str(missing)), "has no tokenizer")


def test_broken_artifacts(registry: Registered, broken_files: dict[str, Path], tiny_dir: Path) -> None:
    healthy_dir = registry.variant_dirs["healthy"]
    no_tok = registry.register_files("broken", healthy_dir, tokenizer=False)
    _bad_input(ctl(registry, "validate", no_tok, "--checks", MINE), "no tokenizer.json")
    corrupt = registry.register_files("broken", healthy_dir, onnx=broken_files["corrupt"])
    _bad_input(ctl(registry, "validate", corrupt, "--checks", MINE), "not a valid ONNX model")
    plain = registry.register_files("broken", healthy_dir, onnx=broken_files["plain"])
    _bad_input(ctl(registry, "validate", plain, "--checks", MINE), "not an attention model")
    tiny = registry.register_files("tiny", tiny_dir)
    _bad_input(ctl(registry, "validate", registry.ref("healthy"), "--checks", MINE, "--baseline", tiny),
               "different architecture")  # fmt: skip
