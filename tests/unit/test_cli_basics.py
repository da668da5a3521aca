"""CLI behaviour that needs no server: help is light, bad input is one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.cli.parsing import parse_duration, parse_steps
from controlplane.errors import InputError
from controlplane.refs import parse_ref, parse_versioned_ref

HEAVY = ("torch", "mlflow", "onnxruntime", "sqlalchemy", "kubernetes", "transformers")


def ctl(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTROLPLANE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    env = {**os.environ, "CONTROLPLANE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "controlplane.cli.main", "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "minilm"], "invalid model reference 'minilm'"),
        (["promote", "minilm@production"], "a version is required"),
        (["promote", "minilm:v2", "--target", "mars"], "unknown --target 'mars'"),
        (["promote", "minilm:v2", "--steps", "5,x"], "invalid --steps"),
        (["promote", "minilm:v2", "--step-duration", "soon"], "invalid --step-duration"),
        (["pause", "bad name!"], "invalid model name"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = ctl(*args, home=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "name", "version", "alias"),
    [("minilm:v3", "minilm", 3, None), ("minilm@production", "minilm", None, "production"),
     ("all-MiniLM_L6.v2:v12", "all-MiniLM_L6.v2", 12, None)],
)
def test_parse_ref(text: str, name: str, version: int | None, alias: str | None) -> None:
    ref = parse_ref(text)
    assert (ref.name, ref.version, ref.alias) == (name, version, alias)
    assert str(ref) == text


@pytest.mark.parametrize("text", ["minilm", "minilm:3", "minilm:v0", "minilm:v-1", ":v1", "minilm@", "a b:v1"])
def test_parse_ref_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_ref(text)


def test_versioned_ref_rejects_alias() -> None:
    with pytest.raises(InputError, match="version is required"):
        parse_versioned_ref("minilm@production")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), ("500ms", 0.5), ("7", 7.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1s", "fast", "10d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_duration(text)


def test_parse_steps() -> None:
    assert parse_steps("5,25,50,100") == (5, 25, 50, 100)
    with pytest.raises(InputError):
        parse_steps("5,,100")
