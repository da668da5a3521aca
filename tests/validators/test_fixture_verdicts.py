"""The acceptance table: `ctl validate` with every check on the six registered fixtures, against the
healthy version as baseline, gives the expected verdict per check (and no false alarm on healthy).
The checks run as the validation DAG on the local engine (the default), which runs every check
whatever the earlier verdicts, so a version failing two checks shows both."""

from __future__ import annotations

import json

import pytest

from .conftest import Registered, ctl

pytestmark = pytest.mark.slow

# variant -> (exit code, checks that must fail; every other check must pass or warn)
EXPECTED = {
    "healthy": (0, set()),
    "int8-per-channel": (0, set()),
    "int8-per-tensor": (1, {"quantization-accuracy"}),
    "normalizer": (1, {"tokenizer-parity"}),
    "collapsed": (1, {"head-collapse"}),
    "short-positions": (1, {"tokenizer-parity", "long-seq-memory"}),
}


@pytest.mark.parametrize("variant", list(EXPECTED))
def test_every_check_on_every_fixture(registry: Registered, variant: str) -> None:
    code, must_fail = EXPECTED[variant]
    baseline = registry.ref("healthy")
    proc = ctl(registry, "validate", registry.ref(variant), "--baseline", baseline, "--device", "cpu", "-o", "json")
    assert proc.stdout.strip(), proc.stderr
    data = json.loads(proc.stdout)
    statuses = {c["check"]: c["status"] for c in data["checks"]}
    assert set(statuses) == {"tokenizer-parity", "quantization-accuracy", "head-collapse", "long-seq-memory"}
    failed = {c for c, s in statuses.items() if s not in ("passed", "warning")}
    assert failed == must_fail, (statuses, [c["summary"] for c in data["checks"]])
    assert proc.returncode == code, proc.stderr
