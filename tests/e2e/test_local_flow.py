"""End to end through the real `ctl` in subprocesses: the real all-MiniLM-L6-v2, a SQLite MLflow
registry and store under a throw-away CONTROLPLANE_HOME, real onnxruntime inference on the local target.

One module-scoped home carries the story of the demo: v1 promoted, an int8 v2 promoted through
5/25/50/100 %, a v3 with cut position embeddings rolled back on real inference errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STEP = "6s"


class Ctl:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "CONTROLPLANE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CONTROLPLANE_DB_URL"):
            self.env.pop(key, None)

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controlplane.cli.main", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> object:
        proc = self(*args, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(err.splitlines()) == 1, err
    assert fragment in err, err


@pytest.fixture(scope="module")
def minilm() -> Path:
    from controlplane.models import minilm_dir

    return minilm_dir()


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctl]:
    yield Ctl(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def story(ctl: Ctl, minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run the demo's story once; the tests below read what it left behind."""
    from controlplane.models.variants import cut_positions

    runs: dict[str, subprocess.CompletedProcess[str]] = {}
    runs["register v1"] = ctl("register", "minilm", "--model-dir", str(minilm))
    runs["promote v1"] = ctl("promote", "minilm:v1", "--skip-validation", "--step-duration", STEP)
    runs["register v2"] = ctl("register", "minilm", "--model-dir", str(minilm), "--quantize", "int8")
    runs["promote v2"] = ctl("promote", "minilm:v2", "--skip-validation", "--steps", "5,25,50,100", "--step-duration", STEP)
    broken = cut_positions(minilm, tmp_path_factory.mktemp("short") / "minilm-short", 64)
    runs["register v3"] = ctl("register", "minilm", "--model-dir", str(broken))
    runs["promote v3"] = ctl("promote", "minilm:v3", "--skip-validation", "--step-duration", STEP)
    return runs


def test_register_prints_the_ref_and_tags_the_architecture(ctl: Ctl, story: dict) -> None:
    assert story["register v1"].returncode == 0, story["register v1"].stderr
    assert story["register v1"].stdout.strip().splitlines()[-1] == "minilm:v1"
    shown = ctl.json("models", "show", "minilm:v1")
    tags = shown["tags"]
    assert (tags["arch.layers"], tags["arch.heads"], tags["arch.hidden"], tags["arch.max_positions"]) == ("6", "12", "384", "512")
    assert len(tags["onnx.sha256"]) == 64 and len(tags["tokenizer.sha256"]) == 64


def test_int8_variant_names_its_source(ctl: Ctl, story: dict) -> None:
    assert story["register v2"].stdout.strip().splitlines()[-1] == "minilm:v2"
    tags = ctl.json("models", "show", "minilm:v2")["tags"]
    assert tags["quantization"].startswith("int8")
    assert tags["lineage.source"] == "minilm:v1"


def test_v2_is_promoted_through_every_step_and_holds_production(ctl: Ctl, story: dict) -> None:
    assert story["promote v1"].returncode == 0, story["promote v1"].stderr
    assert story["promote v2"].returncode == 0, story["promote v2"].stdout + story["promote v2"].stderr
    production = ctl.json("models", "show", "minilm@production")
    assert production["ref"] == "minilm:v2"  # v3 never took the alias
    history = ctl.json("history", "minilm")
    v2 = next(r for r in history if r["ref"] == "minilm:v2")
    assert v2["phase"] == "Promoted"
    weights = [e["evidence"].get("weight") for e in v2["events"] if e["kind"] == "StepStarted"]
    assert [w for w in weights if w is not None] == [5, 25, 50, 100]
    assert any(e["kind"] == "ValidationSkipped" for e in v2["events"])  # the skip is in the audit log
    assert v2["analysis"], "every step is judged"


def test_broken_v3_rolls_back_on_real_errors_with_evidence_and_an_incident(ctl: Ctl, story: dict) -> None:
    proc = story["promote v3"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    history = ctl.json("history", "minilm")
    v3 = next(r for r in history if r["ref"] == "minilm:v3")
    assert v3["phase"] == "RolledBack"
    assert v3["weight"] == 0
    failing = [a for a in v3["analysis"] if a["verdict"] == "fail"]
    assert failing and failing[-1]["evidence"], "the rollback carries its evidence"
    incidents = ctl.json("incident", "list")
    mine = [i for i in incidents if i.get("ref") == "minilm:v3" or i.get("version") == 3]
    assert mine and all(i.get("runbook") for i in mine)


def test_second_promote_while_active_is_refused_and_writes_nothing(ctl: Ctl, story: dict) -> None:
    started = ctl("promote", "minilm:v1", "--skip-validation", "--step-duration", "60s", "--no-wait")
    assert started.returncode == 0, started.stderr
    try:
        before = [r["id"] for r in ctl.json("history", "minilm")]
        again = ctl("promote", "minilm:v1", "--skip-validation")
        assert_one_line_error(again, 2, "already has an active rollout")
        assert [r["id"] for r in ctl.json("history", "minilm")] == before  # no second rollout row
    finally:
        aborted = ctl("abort", "minilm")
        assert aborted.returncode == 0, aborted.stderr
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ctl.json("status", "minilm")["phase"] == "Aborted":
            break
        time.sleep(1)
    assert ctl.json("status", "minilm")["phase"] == "Aborted"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["models", "show", "minilm:v99"], "v99"),
        (["models", "show", "nope:v1"], "nope"),
        (["models", "show", "minilm:1"], "NAME:vN"),
        (["promote", "minilm:v42", "--skip-validation"], "v42"),
        (["promote", "minilm:v1", "--steps", "50,25"], "steps"),
        (["promote", "minilm:v1", "--target", "moon"], "target"),
        (["promote", "minilm:v1", "--skip-validation", "--timeout", "soon"], "--timeout"),
        (["history", "unknown-model"], "unknown-model"),
    ],
)
def test_bad_input_is_one_line_exit_2(ctl: Ctl, story: dict, args: list[str], fragment: str) -> None:
    assert_one_line_error(ctl(*args), 2, fragment)


def test_bad_model_dirs_leave_nothing_registered(ctl: Ctl, story: dict, minilm: Path, tmp_path: Path) -> None:
    import shutil

    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(minilm, no_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (no_tokenizer / name).unlink(missing_ok=True)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(minilm, corrupt)
    for weights in corrupt.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    before = ctl.json("models", "show", "minilm:v3")  # the latest version before the attempts
    for model_dir, fragment in ((tmp_path / "missing", "missing"), (no_tokenizer, "tokenizer"), (corrupt, "")):
        proc = ctl("register", "minilm", "--model-dir", str(model_dir))
        assert_one_line_error(proc, 2, fragment)
    versions = ctl.json("models", "list")
    assert next(m for m in versions if m["name"] == "minilm")["versions"] == [1, 2, 3]
    assert before["ref"] == "minilm:v3"


def test_promote_runs_the_gate_and_refuses_a_failing_version_before_any_traffic(ctl: Ctl, story: dict) -> None:
    proc = ctl("promote", "minilm:v3", "--step-duration", STEP)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    latest = max(ctl.json("history", "minilm"), key=lambda r: r["id"])
    assert latest["ref"] == "minilm:v3"
    assert latest["phase"] == "Failed"
    kinds = [e["kind"] for e in latest["events"]]
    assert "ValidationFailed" in kinds, kinds
    assert "StepStarted" not in kinds, "no traffic moves before the gate passes"
    assert ctl.json("models", "show", "minilm@production")["ref"] == "minilm:v2"
    tags = ctl.json("models", "show", "minilm:v3")["tags"]
    assert tags["validation.status"] == "failed"


def test_promote_timeout_aborts_to_stable_and_exits_1(ctl: Ctl, story: dict) -> None:
    """CI's limit: a rollout that has not ended after --timeout is aborted (all traffic back to
    stable, the reason in the audit log) and the command exits 1 with one line. The limit here is
    shorter than the validation gates take (all four checks on MiniLM: 5 s or more), so it is
    reached while Validating, whatever the machine's speed; the gate's run is terminated."""
    proc = ctl("promote", "minilm:v1", "--step-duration", "10m", "--timeout", "2s")
    assert_one_line_error(proc, 1, "not finished within the --timeout of 2s")
    latest = max(ctl.json("history", "minilm"), key=lambda r: r["id"])
    assert latest["ref"] == "minilm:v1" and latest["phase"] == "Aborted" and latest["weight"] == 0
    kinds = [e["kind"] for e in latest["events"]]
    assert "ValidationStarted" in kinds and "StepStarted" not in kinds, kinds
    asked = [e for e in latest["events"] if e["kind"] == "AbortRequested"]
    assert asked and asked[-1]["evidence"]["reason"] == "not finished within the --timeout of 2s", asked
    assert ctl.json("models", "show", "minilm@production")["ref"] == "minilm:v2"
