"""schemathesis against the live server's own OpenAPI document: no 5xx, no response outside the schema
(status codes, content types, bodies), across examples, boundary cases, fuzzing and stateful phases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import Server
from tests.serve.test_serve_http import counters

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server]

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_5xx_and_no_schema_breaking_response(server: Server, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is not installed (the dev extra)"
    before = counters(server)
    proc = subprocess.run(
        [st, "run", f"{server.url}/openapi.json", "--checks", CHECKS, "--max-examples", "40", "--seed", "1",
         "--no-color", "--report", "junit", "--report-dir", str(tmp_path)],
        text=True, capture_output=True, timeout=600, cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    after = counters(server)
    assert after["ok"] > before["ok"] and after["invalid"] > before["invalid"]  # it reached the model, and bad input
    assert after["error"] == before["error"]
