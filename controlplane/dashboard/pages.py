"""The pages: the rollouts list, one rollout, one incident with its runbook."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from controlplane.dashboard import charts
from controlplane.dashboard.layout import markdown, num, page, phase_badge, table, when

VERDICT_CLASS = {"pass": "ok", "fail": "bad", "inconclusive": "warn", "passed": "ok", "failed": "bad", "error": "bad"}


def notices(lines: Sequence[str]) -> str:
    """What could not be read (e.g. the API server's 403s under the controller's RBAC), one line each."""
    return "".join(f'<p class="notice bad" role="status">{escape(line)}</p>' for line in lines)


def rollouts_page(rollouts: list[dict[str, Any]], etag: str, problems: Sequence[str] = ()) -> str:
    rows = [
        [f'<a href="/rollouts/{r["id"]}">#{r["id"]}</a>', escape(r["ref"]), phase_badge(r["phase"]),
         _weight(r["weight"]), escape(_steps(r)), escape(str(r.get("message") or "")), when(r["updated_at"])]
        for r in rollouts
    ]
    body = "<h1>Rollouts</h1>" + notices(problems) + (
        table(["rollout", "ref", "phase", "weight", "step", "last message", "updated"], rows, "rollouts")
        if rows else '<p class="muted">no rollouts yet: <code>ctl promote MODEL:vN</code> starts one</p>'
    )
    return page("Rollouts", body, poll="/api/rollouts", etag=etag)


def rollout_page(r: dict[str, Any], etag: str, live: bool) -> str:
    stable = f"v{r['stable_version']}" if r.get("stable_version") is not None else "none"
    parts = [
        f'<h1>Rollout #{r["id"]}: {escape(r["ref"])} {phase_badge(r["phase"])}</h1>',
        f'<p class="summary">weight <strong id="weight">{_weight(r["weight"])}</strong> · step {escape(_steps(r))}'
        f" · stable {escape(stable)} · started {when(r['created_at'])} · updated {when(r['updated_at'])}</p>",
        f'<p class="message">{escape(str(r.get("message") or ""))}</p>',
        _toc(r),
        '<section id="timeline" aria-labelledby="h-timeline"><h2 id="h-timeline">Step timeline</h2>',
        charts.timeline(r["events"], r["analysis"]),
        _decisions(r["events"]),
        "</section>",
        _analyses(r["analysis"]),
        _validations(r["validations"]),
        _incidents(r["incidents"]),
        _audit(r["events"]),
    ]
    return page(f"Rollout #{r['id']} {r['ref']}", "".join(parts), poll=f"/api/rollouts/{r['id']}" if live else None,
                etag=etag)


def incident_page(i: dict[str, Any]) -> str:
    back = f'<p><a href="/rollouts/{i["rollout_id"]}">back to rollout #{i["rollout_id"]}</a></p>' if i["rollout_id"] else ""
    body = (
        f'<h1>Incident #{i["id"]}: {escape(i["failure_mode"])} on {escape(i["ref"])}</h1>{back}'
        f'<p>{_badge(i["severity"], "bad" if i["severity"] == "page" else "warn")} {_badge(i["state"], "info")} '
        f'opened {when(i["opened_at"])}</p><p>{escape(i["summary"])}</p>'
        f'<h2>Commands</h2>{_commands(i["commands"])}'
        f'<h2 id="runbook">Runbook: {escape(i["runbook_title"])}</h2><p class="muted">{escape(i["runbook"])}</p>'
        f'<article class="runbook">{markdown(i["runbook_markdown"])}</article>'
    )
    return page(f"Incident #{i['id']}", body)


def not_found(message: str) -> str:
    return page("Not found", f'<h1>Not found</h1><p>{escape(message)}</p><p><a href="/">all rollouts</a></p>')


# ---- sections ---------------------------------------------------------------------------------


def _toc(r: dict[str, Any]) -> str:
    links = [("timeline", "Timeline"), ("analyses", f"Analyses ({len(r['analysis'])})"),
             ("validations", f"Validation ({len(r['validations'])})"), ("incidents", f"Incidents ({len(r['incidents'])})"),
             ("audit", f"Audit log ({len(r['events'])})")]
    return '<nav aria-label="sections" class="toc">' + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in links) + "</nav>"


def _decisions(events: list[dict[str, Any]]) -> str:
    rows = [
        [when(e["at"]), escape(e["kind"]), f"{w}%", escape(e["message"])]
        for e, (_t, w, _k) in zip(events, charts.weight_points(events), strict=True)
        if e["kind"] not in {"ValidationStarted"}
    ]
    return "<h3>Decisions</h3>" + table(["at", "decision", "weight after", "why"], rows, "decisions")


def _analyses(analyses: list[dict[str, Any]]) -> str:
    parts = [f'<section id="analyses" aria-labelledby="h-analyses"><h2 id="h-analyses">Analyses ({len(analyses)})</h2>']
    if not analyses:
        parts.append('<p class="muted">no analysis yet</p>')
    for n, a in enumerate(analyses, 1):
        ev = a.get("evidence") or {}
        verdict = str(a.get("verdict"))
        parts.append(
            f'<article class="analysis v-{VERDICT_CLASS.get(verdict, "warn")}" id="analysis-{n}">'
            f"<h3>Analysis {n}: step {num(_step_no(a))} at {_weight(a.get('weight'))} "
            f'{_badge(verdict, VERDICT_CLASS.get(verdict, "warn"))}'
            + (f' <span class="mode">{escape(str(ev["failure_mode"]))}</span>' if ev.get("failure_mode") else "")
            + f'</h3><p>{escape(str(a.get("reason") or ""))}</p>'
        )
        burn = ev.get("burn") or []
        if burn:
            parts.append(charts.burn_bars(burn))
            parts.append(burn_table(burn))
        parts.append(_comparison(ev))
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def burn_table(burn: list[dict[str, Any]]) -> str:
    rows, classes = [], []
    for b in burn:
        fired = b.get("status") == "fired"
        status = '<strong class="bad">FAILING: over threshold</strong>' if fired else escape(str(b.get("status")))
        rows.append([escape(str(b.get("objective"))), escape(str(b.get("severity"))),
                     f"{charts.duration(b.get('long_window_s'))} / {charts.duration(b.get('short_window_s'))}",
                     f"{num(b.get('long_burn'))}x", f"{num(b.get('short_burn'))}x", f"{num(b.get('burn_threshold'))}x",
                     status])
        classes.append("failing" if fired else "")
    return table(["objective", "severity", "long / short window", "long burn", "short burn", "threshold", "window"],
                 rows, "burn", classes)


def _comparison(ev: dict[str, Any]) -> str:
    canary, stable = ev.get("canary") or {}, ev.get("stable") or {}
    charts_html = "".join(
        f"<figure>{svg}<figcaption>{escape(title)}: canary solid, stable dashed</figcaption></figure>"
        for title, key in (("latency ms", "latencies_ms"), ("error ratio", "error_ratios"))
        if (svg := charts.series(canary.get(key) or [], stable.get(key) or [], title))
    )
    rows = [
        [escape(str(c.get("metric"))), escape(str(c.get("status"))), num(c.get("canary_mean")), num(c.get("stable_mean")),
         num(c.get("p_value")), escape(str(c.get("reason") or ""))]
        for c in ev.get("comparison") or []
    ]
    counts = [
        [role, num(s.get("requests"), 6), num(s.get("errors"), 6)]
        for role, s in (("canary", canary), ("stable", stable)) if s
    ]
    out = f'<div class="figures">{charts_html}</div>' if charts_html else ""
    if counts:
        out += table(["version", "requests", "errors"], counts, "counts")
    if rows:
        out += table(["compared", "status", "canary mean", "stable mean", "p-value", "reason"], rows, "comparison")
    if ev.get("comparison_note"):
        out += f'<p class="muted">{escape(str(ev["comparison_note"]))}</p>'
    return out


def _validations(validations: list[dict[str, Any]]) -> str:
    rows = [
        [escape(v["check"]), _badge(v["status"], VERDICT_CLASS.get(v["status"], "info")),
         escape(", ".join(f"{k}={num(x)}" for k, x in sorted(v["metrics"].items()) if not isinstance(x, dict | list))),
         escape("; ".join(v["findings"])), when(v["at"])]
        for v in validations
    ]
    inner = table(["check", "verdict", "metrics", "findings", "at"], rows, "validations") if rows else (
        '<p class="muted">no validation recorded for this version</p>')
    return f'<section id="validations" aria-labelledby="h-val"><h2 id="h-val">Validation</h2>{inner}</section>'


def _incidents(incidents: list[dict[str, Any]]) -> str:
    parts = ['<section id="incidents" aria-labelledby="h-inc"><h2 id="h-inc">Incidents</h2>']
    if not incidents:
        parts.append('<p class="muted">none</p>')
    for i in incidents:
        parts.append(
            f'<article class="incident"><h3>#{i["id"]} {escape(i["failure_mode"])} '
            f'{_badge(i["severity"], "bad" if i["severity"] == "page" else "warn")} {_badge(i["state"], "info")}</h3>'
            f'<p>{escape(i["summary"])}</p>'
            f'<p><a class="runbook-link" href="/incidents/{i["id"]}#runbook">Runbook: {escape(i["runbook_title"])}</a> '
            f'<span class="muted">({escape(i["runbook"])})</span></p>{_commands(i["commands"])}</article>'
        )
    parts.append("</section>")
    return "".join(parts)


def _commands(commands: list[str]) -> str:
    items = "".join(
        f'<li><code>{escape(c)}</code> <button type="button" class="copy" data-copy="{escape(c)}">Copy</button></li>'
        for c in commands
    )
    return f'<ul class="commands">{items}</ul>'


def _audit(events: list[dict[str, Any]]) -> str:
    rows = [[when(e["at"]), escape(e["kind"]), escape(str(e.get("phase") or "")), escape(e["message"])] for e in events]
    return (f'<section id="audit" aria-labelledby="h-audit"><h2 id="h-audit">Audit log</h2>'
            f'{table(["at", "event", "phase", "message"], rows, "audit")}</section>')


def _badge(text: Any, cls: str) -> str:
    return f'<span class="badge {cls}">{escape(str(text))}</span>'


def _weight(weight: Any) -> str:
    return f"{weight}%" if isinstance(weight, int) else "n/a"


def _steps(r: dict[str, Any]) -> str:
    steps = r.get("steps") or []
    step = r.get("step")
    return f"{step + 1}/{len(steps)}" if isinstance(step, int) and step >= 0 and steps else f"-/{len(steps)}"


def _step_no(a: dict[str, Any]) -> int | None:
    step = a.get("step")
    return step + 1 if isinstance(step, int) else None
