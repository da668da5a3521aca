"""`ctl slo dashboards` as the user runs it: three Grafana dashboards that load back through the
grafana-foundation-sdk model, templated by model and version; bad input is one line, exit 2, nothing
written; `ctl --help` does not import the SDK. (The panels' PromQL on a real Prometheus:
tests/serve/test_grafana_panels.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SLO = """\
apiVersion: controlplane/v1
kind: SLO
model: minilm
objectives:
  availability: {target: 99.9}
  latency: {target: 95, threshold: 200ms}
"""


def ctl(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTROLPLANE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def contained(small: Any, big: Any, path: str = "") -> list[str]:
    """Where ``small`` is not part of ``big`` (every key and value of small is in big; big may add defaults)."""
    if isinstance(small, dict):
        if not isinstance(big, dict):
            return [path]
        return [p for k, v in small.items() for p in (contained(v, big[k], f"{path}.{k}") if k in big else [f"{path}.{k}"])]
    if isinstance(small, list):
        if not isinstance(big, list) or len(small) != len(big):
            return [path]
        return [p for i, (a, b) in enumerate(zip(small, big, strict=True)) for p in contained(a, b, f"{path}[{i}]")]
    return [] if small == big else [path]


def test_writes_three_dashboards_that_load_back_through_the_sdk_model(tmp_path: Path) -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    from controlplane.analysis.grafana import load

    slo = tmp_path / "slo.yaml"
    slo.write_text(SLO)
    out = tmp_path / "grafana"
    proc = ctl("slo", "dashboards", str(slo), "--out", str(out), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["minilm-debug.json", "minilm-executive.json", "minilm-oncall.json"]
    assert proc.stdout.split() == [str(out / n) for n in ("minilm-executive.json", "minilm-oncall.json", "minilm-debug.json")]
    for name in names:
        board = json.loads((out / name).read_text())
        decoded = load(board)  # the SDK's types: a key it does not know would be dropped here
        again = json.loads(JSONEncoder().encode(decoded))
        assert contained(board, again) == [], name
        assert decoded.uid == name.removesuffix(".json")
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert set(variables) == {"datasource", "model", "version"}
        assert variables["model"]["current"]["value"] == "minilm"
        assert variables["version"]["multi"] and variables["version"]["includeAll"]
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}"
                assert '"$model"' in target["expr"], (panel["title"], target["expr"])


def test_each_dashboard_has_the_panels_on_call_asked_for(tmp_path: Path) -> None:
    from controlplane.analysis.grafana import build_all
    from controlplane.analysis.slo import load_slo

    path = tmp_path / "slo.yaml"
    path.write_text(SLO)
    titles = {kind: [p["title"] for p in board["panels"]] for kind, board in build_all(load_slo(path)).items()}
    assert {"Error budget remaining", "SLO burn rate (5m) against the alert thresholds", "Active deployments",
            "SLO alerts (incidents)"} <= set(titles["executive"])  # fmt: skip
    assert {"Latency p95 and p99 by version", "Error ratio by version", "Out-of-memory errors", "Recent deploys",
            "Top offenders by model version"} <= set(titles["oncall"])  # fmt: skip
    assert {"Tokenization errors", "Per-head similarity and attention distributions"} <= set(titles["debug"])


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        (None, [], "SLO file not found"),
        ("model: [\n", [], "not valid YAML"),
        ("model: m\nobjectives: {availability: {target: 0.999}}\n", [], "objectives.availability.target"),
        (SLO, ["--out", "{tmp}/slo.yaml"], "not a folder"),
    ],
    ids=["missing", "not-yaml", "invalid-target", "out-is-a-file"],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, text: str | None, extra: list[str], message: str
) -> None:
    path = tmp_path / "slo.yaml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra] or ["--out", str(out)]
    before = sorted(tmp_path.iterdir())
    proc = ctl("slo", "dashboards", str(path), *args, home=tmp_path / "home")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
    assert sorted(p for p in tmp_path.iterdir() if p.name != "home") == before


def test_help_does_not_import_the_grafana_sdk(tmp_path: Path) -> None:
    env = {**os.environ, "CONTROLPLANE_HOME": str(tmp_path)}
    for args in (["--help"], ["slo", "--help"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "controlplane.cli.main", *args],
                              capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "grafana_foundation_sdk" not in proc.stderr
