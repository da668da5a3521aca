"""The page frame, shared helpers and the markdown renderer (raw HTML in runbooks is not passed through)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

PHASE_CLASS = {"Promoted": "ok", "RolledBack": "bad", "Aborted": "bad", "Failed": "bad", "Paused": "warn"}


def page(title: str, body: str, *, poll: str | None = None, etag: str = "") -> str:
    """A whole page. ``poll``: the JSON endpoint the page script watches; the page reloads its main part
    when the endpoint's etag differs from ``etag`` (it stops once the rollout has ended)."""
    watch = f' data-poll="{escape(poll)}" data-etag="{escape(etag)}"' if poll else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · ctl dashboard</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script>'
        '</head><body><a class="skip" href="#main">Skip to content</a>'
        '<header><nav aria-label="site"><a href="/">Rollouts</a></nav>'
        '<span class="live" id="live" aria-live="polite"></span></header>'
        f'<main id="main" tabindex="-1"{watch}>{body}</main></body></html>'
    )


def when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return ""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def phase_badge(phase: Any) -> str:
    text = str(phase or "?")
    return f'<span class="badge {PHASE_CLASS.get(text, "info")}">{escape(text)}</span>'


def table(headers: list[str], rows: list[list[str]], cls: str = "", row_classes: list[str] | None = None) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(
        f'<tr{_cls(row_classes[i] if row_classes else "")}>' + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f'<table{_cls(cls)}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cls(name: str) -> str:
    return f' class="{name}"' if name else ""


def markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).render(text)


def num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a" if value is None else escape(str(value))
    return f"{value:.{digits}g}"
