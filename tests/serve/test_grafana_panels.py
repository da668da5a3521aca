"""Every panel of the dashboards `ctl slo dashboards` writes runs on a real Prometheus that loads the rules
`ctl slo rules` writes and scrapes two real `ctl serve` processes (the real all-MiniLM-L6-v2): a stable one
answering, and a canary whose tiny queue answers bursts with 503s (outcome="error"), so its errors burn the
budget and the page alert fires. Every query is accepted and returns series; the ones that single out the
failing version show the canary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.prometheus_fixture import PrometheusServer
from tests.serve.conftest import MODEL, Server, StartServer, ctl, ctl_env, infer_body

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server, pytest.mark.prometheus]

OIP = f"/v2/models/{MODEL}/infer"
SLO = f"""\
apiVersion: controlplane/v1
kind: SLO
model: {MODEL}
objectives:
  availability: {{target: 99.9}}
  latency: {{target: 95, threshold: 200ms}}
"""
#: What Grafana puts in for the dashboard variables (all versions; the rate interval of a 1 s scrape).
VARIABLES = {"$model": MODEL, "$version": ".*", "$__rate_interval": "30s", "$__range": "10m"}


class RulesPrometheus(PrometheusServer):
    """The test Prometheus with a rule file loaded (evaluated every second, like the scrapes)."""

    def __init__(self, targets: list[str], rules: Path, binary: str) -> None:
        super().__init__(targets, binary=binary)
        self.rules = rules

    def config_text(self) -> str:
        return super().config_text() + f"rule_files: ['{self.rules}']\n"


def instant(url: str, expr: str) -> dict[str, Any]:
    return httpx.post(f"{url}/api/v1/query", data={"query": expr}, timeout=10.0).json()


def _until(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The rule file and the dashboards folder, written by the real CLI."""
    work = tmp_path_factory.mktemp("grafana")
    (work / "slo.yaml").write_text(SLO)
    env = ctl_env(work, f"sqlite:///{work / 'unused.db'}")
    rules = ctl("slo", "rules", str(work / "slo.yaml"), "--out", str(work / "rules.yaml"), env=env)
    assert rules.returncode == 0, rules.stderr
    boards = ctl("slo", "dashboards", str(work / "slo.yaml"), "--out", str(work / "dashboards"), env=env)
    assert boards.returncode == 0, boards.stderr
    return work / "rules.yaml", work / "dashboards"


@pytest.fixture(scope="module")
def prometheus(generated: tuple[Path, Path], start_server: StartServer, prometheus_bin: str) -> Iterator[str]:
    stable = start_server(role="stable")
    canary = start_server("--max-queue", "2", "--max-request-texts", "2", role="canary")
    prom = RulesPrometheus([s.url.removeprefix("http://") for s in (stable, canary)], generated[0], prometheus_bin).start()
    try:
        prom.wait_for_targets()
        traffic(stable, canary)
        _until(lambda: bool(instant(prom.url, 'ALERTS{alertstate="firing",sloth_severity="page"}')["data"]["result"]),
               "the page alert fires on the canary's errors")  # fmt: skip
        _until(lambda: bool(instant(prom.url, "slo:period_error_budget_remaining:ratio")["data"]["result"]),
               "the period rules have a value")  # fmt: skip
        yield prom.url
    finally:
        prom.cleanup()


def traffic(stable: Server, canary: Server) -> None:
    """Healthy stable requests, a lone surrogate and a long text (tokenizer counters), canary bursts of 503s."""
    for i in range(30):
        assert stable.post(OIP, infer_body([f"stable request {i}", "a second text"]))[0] == 200
    stable.request("POST", OIP, b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["\\ud800"]}]}')
    assert stable.post(OIP, infer_body(["word " * 600]))[0] == 200  # truncated
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: canary.post(OIP, infer_body([f"burst {i}", "x"]))[0], range(160)))
    assert 503 in codes and 200 in codes, codes


def queries(folder: Path) -> list[tuple[str, str, str]]:
    from controlplane.analysis.grafana import panel_queries

    found = []
    for path in sorted(folder.glob("*.json")):
        for title, expr in panel_queries(json.loads(path.read_text())):
            for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(name, value)
            found.append((path.stem, title, expr))
    return found


def test_every_panel_query_is_accepted_and_returns_series(prometheus: str, generated: tuple[Path, Path]) -> None:
    found = queries(generated[1])
    assert len(found) >= 25
    empty, rejected = [], []
    for board, title, expr in found:
        body = instant(prometheus, expr)
        if body["status"] != "success":
            rejected.append(f"{board} / {title}: {body.get('error')}")
        elif not body["data"]["result"]:
            empty.append(f"{board} / {title}: {expr}")
    assert rejected == []
    assert empty == []


def test_the_panels_that_single_out_a_version_show_the_failing_canary(prometheus: str, generated: tuple[Path, Path]) -> None:
    by_title = {title: expr for _, title, expr in queries(generated[1])}

    def values(title: str) -> dict[str, float]:
        result = instant(prometheus, by_title[title])["data"]["result"]
        return {s["metric"].get("role", s["metric"].get("alertname", "")): float(s["value"][1]) for s in result}

    offenders = values("Top offenders by model version")
    assert offenders["canary"] > 0 and offenders.get("stable", 0.0) == 0.0, offenders
    assert set(values("Active deployments")) == {"stable", "canary"}
    assert set(values("Recent deploys")) == {"stable", "canary"}
    alerts = [s["metric"] for s in instant(prometheus, by_title["SLO alerts (incidents)"])["data"]["result"]]
    assert any(a["severity"] == "page" and a["alertstate"] == "firing" for a in alerts), alerts
    assert values("Firing SLO alerts")[""] >= 1
    tokenization = instant(prometheus, f'sum(increase(model_tokenization_errors_total{{model="{MODEL}"}}[10m]))')
    assert float(tokenization["data"]["result"][0]["value"][1]) > 0
