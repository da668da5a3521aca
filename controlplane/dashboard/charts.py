"""Inline SVG charts: the weight timeline, burn rates against their thresholds, canary versus stable series.
Each chart carries a text title and the same figures are in a table beside it (screen readers, copy)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

ZERO_WEIGHT = frozenset({"RolledBack", "Aborted", "ValidationFailed"})
PAUSES = frozenset({"Paused", "PausedInconclusive"})
VERDICT_CLASS = {"pass": "ok", "fail": "bad", "inconclusive": "warn"}


def weight_points(events: Sequence[dict[str, Any]]) -> list[tuple[float, int, str]]:
    """(time, weight after the event, kind) for each event: the canary's traffic share over time."""
    weight, points = 0, []
    for event in events:
        kind, evidence = event["kind"], event.get("evidence") or {}
        if kind == "StepStarted" and isinstance(evidence.get("weight"), int):
            weight = evidence["weight"]
        elif kind in ZERO_WEIGHT:
            weight = 0
        elif kind == "Promoted":
            weight = 100
        points.append((float(event["at"]), weight, kind))
    return points


def timeline(events: Sequence[dict[str, Any]], analyses: Sequence[dict[str, Any]], width: int = 760,
             height: int = 180) -> str:
    """Weight (0-100 %) as a step line over the rollout's time; pauses as amber marks, analyses as dots
    coloured by verdict, the end (rolled back, promoted) labelled."""
    points = weight_points(events)
    if not points:
        return '<p class="muted">no events yet</p>'
    pad_l, pad_r, pad_t, pad_b = 40, 12, 10, 24
    t0 = points[0][0]
    ends = [p[0] for p in points] + [_analysis_time(a) or t0 for a in analyses]
    span = max(max(ends) - t0, 1.0)

    def x(t: float) -> float:
        return pad_l + (t - t0) / span * (width - pad_l - pad_r)

    def y(w: float) -> float:
        return pad_t + (100 - w) / 100 * (height - pad_t - pad_b)

    path, prev = [], None
    for t, w, _kind in points:
        if prev is not None:
            path.append(f"L{x(t):.1f},{y(prev):.1f}")
        path.append(f"{'M' if prev is None else 'L'}{x(t):.1f},{y(w):.1f}")
        prev = w
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="tl-title">',
        '<title id="tl-title">canary weight over time</title>',
    ]
    for w in (0, 50, 100):
        parts.append(f'<line class="grid" x1="{pad_l}" x2="{width - pad_r}" y1="{y(w):.1f}" y2="{y(w):.1f}"/>')
        parts.append(f'<text class="axis" x="{pad_l - 6}" y="{y(w) + 4:.1f}" text-anchor="end">{w}%</text>')
    for t, _w, kind in points:
        if kind in PAUSES:
            parts.append(f'<line class="pause" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{pad_t}" y2="{height - pad_b}">'
                         f'<title>{escape(kind)}</title></line>')
    parts.append(f'<path class="weight" d="{" ".join(path)}"/>')
    for t, w, kind in points:
        if kind == "StepStarted":
            parts.append(f'<text class="axis" x="{x(t) + 3:.1f}" y="{y(w) - 5:.1f}">{w}%</text>')
    for a in analyses:
        at = _analysis_time(a)
        if at is not None:
            cls = VERDICT_CLASS.get(a.get("verdict", ""), "warn")
            parts.append(f'<circle class="dot {cls}" cx="{x(at):.1f}" cy="{y(a.get("weight") or 0):.1f}" r="4">'
                         f'<title>{escape(str(a.get("verdict")))} at {a.get("weight")}%</title></circle>')
    t_end, w_end, kind_end = points[-1]
    parts.append(f'<text class="label" x="{min(x(t_end), width - 130):.1f}" y="{y(w_end) - 6:.1f}">'
                 f'{escape(kind_end)} {w_end}%</text>')
    parts.append(f'<text class="axis" x="{pad_l}" y="{height - 6}">0 s</text>')
    parts.append(f'<text class="axis" x="{width - pad_r}" y="{height - 6}" text-anchor="end">{span:.0f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _analysis_time(analysis: dict[str, Any]) -> float | None:
    window = (analysis.get("evidence") or {}).get("window") or {}
    end = window.get("end")
    return float(end) if isinstance(end, int | float) else None


def burn_bars(burn: Sequence[dict[str, Any]], width: int = 560) -> str:
    """One row per burn window: long and short burn rates as bars against the window's threshold (the
    dashed line); a window that fired is drawn red and labelled FAILING."""
    if not burn:
        return ""
    row_h, pad_l, pad_r = 34, 180, 110
    thresholds = [b["burn_threshold"] for b in burn if isinstance(b.get("burn_threshold"), int | float)]
    burns = [v for b in burn for v in (b.get("long_burn"), b.get("short_burn")) if isinstance(v, int | float)]
    top = (max(thresholds) * 2.5 if thresholds else max(burns, default=0) * 1.15) or 1.0  # longer bars are clipped
    scale = (width - pad_l - pad_r) / top
    height = row_h * len(burn) + 6
    parts = [f'<svg class="chart burn" viewBox="0 0 {width} {height}" role="img" aria-label="burn rates against thresholds">']
    for i, b in enumerate(burn):
        y0 = 4 + i * row_h
        fired = b.get("status") == "fired"
        cls = "bad" if fired else ("ok" if b.get("status") == "ok" else "warn")
        label = f"{b.get('objective')} {duration(b.get('long_window_s'))}/{duration(b.get('short_window_s'))}"
        parts.append(f'<text class="axis" x="{pad_l - 6}" y="{y0 + 18}" text-anchor="end">{escape(label)}</text>')
        for j, key in enumerate(("long_burn", "short_burn")):
            value = b.get(key)
            w = min(value or 0, top) * scale
            parts.append(f'<rect class="bar {cls}" x="{pad_l}" y="{y0 + 4 + j * 12}" width="{max(w, 1):.1f}" height="10">'
                         f'<title>{key.split("_")[0]} window burn {_fmt(value)}</title></rect>')
            parts.append(f'<text class="axis" x="{pad_l + max(w, 1) + 4:.1f}" y="{y0 + 13 + j * 12}">{_fmt(value)}x</text>')
        threshold = b.get("burn_threshold")
        if isinstance(threshold, int | float):
            tx = pad_l + threshold * scale
            parts.append(f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="{y0}" y2="{y0 + 30}">'
                         f'<title>threshold {threshold}x</title></line>')
        if fired:
            parts.append(f'<text class="label bad" x="{width - 4}" y="{y0 + 18}" text-anchor="end">FAILING</text>')
    parts.append("</svg>")
    return "".join(parts)


def series(canary: Sequence[float | None], stable: Sequence[float | None], title: str, width: int = 360,
           height: int = 120) -> str:
    """Canary (solid) and stable (dashed) as lines over the analysis window's intervals."""
    values = [v for v in (*canary, *stable) if isinstance(v, int | float)]
    if not values:
        return ""
    pad, top = 8, max(values) * 1.1 or 1.0
    n = max(len(canary), len(stable), 2)

    def line(points: Sequence[float | None], cls: str) -> str:
        coords = [
            (pad + i / (n - 1) * (width - 2 * pad), height - pad - v / top * (height - 2 * pad))
            for i, v in enumerate(points) if isinstance(v, int | float)
        ]
        dots = "".join(f'<circle class="pt {cls}" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5"/>' for cx, cy in coords)
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        return f'<polyline class="{cls}" points="{path}"/>{dots}' if coords else ""

    return (
        f'<svg class="chart series" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)} (max {_fmt(max(values))})</title>"
        f'{line(stable, "stable")}{line(canary, "canary")}</svg>'
    )


def duration(seconds: Any) -> str:
    """A window length for people: whole hours or minutes when exact, else seconds to 3 digits."""
    if not isinstance(seconds, int | float):
        return "?"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.0f}s" if seconds >= 100 else f"{seconds:.3g}s"


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "n/a"
