"""SLO spec parsing (one-line errors naming the field) and generated rules checked by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from controlplane.analysis.rules import generate_rules, render_rules
from controlplane.analysis.slo import default_slo, load_slo, parse_slo_yaml
from controlplane.errors import InputError

GOOD = textwrap.dedent(
    """\
    apiVersion: controlplane/v1
    kind: SLO
    model: minilm
    period: 28d
    objectives:
      availability: {target: 99.9}
      latency: {target: "95%", threshold: 200ms}
    canary:
      step_duration: 1m
      min_requests: 50
      burn_rates:
        - {burn: 14.4, long_steps: 1}
        - {burn: 6, long: 6m, short: 30s}
      compare: {confidence: 0.98, tolerance: 0.25, latency: p95}
    """
)


def test_parse_a_full_spec() -> None:
    slo = parse_slo_yaml(GOOD, "minilm.yaml")
    assert slo.model == "minilm"
    assert slo.availability is not None and slo.availability.target == pytest.approx(0.999)
    assert slo.latency is not None and slo.latency.threshold_s == pytest.approx(0.2)
    assert slo.period_s == 28 * 86400
    windows = slo.burn_windows()  # the spec's own 1 m step
    assert [(w.burn, w.long_s, w.short_s) for w in windows] == [(14.4, 60.0, 5.0), (6.0, 360.0, 30.0)]
    assert [round(t, 3) for _, t in slo.alert_thresholds()] == [13.44, 5.6, 2.8, 0.933]
    assert 'le="0.2"' in (slo.latency.good_query or "")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("model: minilm\nobjectives: {}\n", "objectives: at least one of availability or latency is required"),
        ("model: minilm\nobjectives: {availability: {target: 0.999}}\n", "looks like a ratio"),
        ("model: minilm\nobjectives: {availability: {target: 100}}\n", "strictly between 0 and 100"),
        ("model: minilm\nobjectives: {latency: {target: 95, threshold: fast}}\n", "objectives.latency.threshold"),
        ("model: minilm\nobjectives: {availability: {target: 99.9}}\nextra: 1\n", "extra: unknown field"),
        ("objectives: {availability: {target: 99.9}}\n", "model: required field is missing"),
        (
            "model: m\nobjectives: {availability: {target: 99.9}}\ncanary: {burn_rates: [{burn: 0.5}]}\n",
            "canary.burn_rates[0].burn: must be >= 1",
        ),
        (
            "model: m\nobjectives: {availability: {target: 99.9, errors_query: 'sum(x)'}}\n",
            "must contain ${selector} and ${window}",
        ),
        ("model: m\nkind: Deployment\n", "kind: expected SLO"),
        ("model: [\n", "not valid YAML at line"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_specs_are_one_line_errors(patch: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_slo_yaml(patch, "slo.yaml")
    text = str(info.value)
    assert message in text
    assert "\n" not in text and text.startswith("slo.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="SLO file not found"):
        load_slo(tmp_path / "nope.yaml")


def test_rules_have_sloth_names_and_workbook_thresholds() -> None:
    rules = generate_rules(default_slo("minilm"), {"slo-burn-errors": "runbooks/slo-burn-errors.md"})
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for name in ("slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate1h", "slo:sli_error:ratio_rate3d",
                 "slo:objective:ratio", "slo:error_budget:ratio", "slo:current_burn_rate:ratio"):
        assert name in records
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert {a["labels"]["severity"] for a in alerts} == {"page", "ticket"}
    page = next(a for a in alerts if a["labels"]["severity"] == "page" and a["labels"]["sloth_slo"].endswith("availability"))
    assert "(14.4 * 0.001)" in page["expr"] and "(6 * 0.001)" in page["expr"]
    assert page["annotations"]["runbook"] == "runbooks/slo-burn-errors.md"


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


@needs_promtool
@pytest.mark.parametrize("spec", ["default", "file"])
def test_generated_rules_pass_promtool_check(tmp_path: Path, spec: str) -> None:
    slo = default_slo("minilm") if spec == "default" else parse_slo_yaml(GOOD, "minilm.yaml")
    path = tmp_path / "rules.yaml"
    path.write_text(render_rules(slo))
    proc = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@needs_promtool
def test_generated_rules_fire_in_promtool_unit_tests(tmp_path: Path) -> None:
    """`promtool test rules`: 100 % canary errors page within the 5 m short window; healthy traffic never does."""
    slo = default_slo("minilm")
    (tmp_path / "rules.yaml").write_text(render_rules(slo))
    page_alert = next(
        r["alert"] for g in generate_rules(slo)["groups"] for r in g["rules"]
        if r.get("alert") and r["labels"]["severity"] == "page" and r["labels"]["sloth_slo"] == "requests-availability"
    )
    series = 'model_requests_total{model="minilm",version="3",role="canary",outcome="%s"}'
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series % "ok", "values": "0+600x120"},
                    {"series": series % "error", "values": "0x60 0+600x60"},  # every request fails after 1 h
                ],
                "alert_rule_test": [
                    {"eval_time": "55m", "alertname": page_alert, "exp_alerts": []},
                    {
                        "eval_time": "70m",
                        "alertname": page_alert,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "page",
                                    "sloth_severity": "page",
                                    "sloth_id": "minilm-requests-availability",
                                    "sloth_service": "minilm",
                                    "sloth_slo": "requests-availability",
                                },
                                "exp_annotations": _annotations(slo, page_alert),
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = subprocess.run([str(PROMTOOL), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _annotations(slo: object, alert: str) -> dict[str, str]:
    for group in generate_rules(slo)["groups"]:  # type: ignore[arg-type]
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                return dict(rule["annotations"])
    raise AssertionError(alert)
