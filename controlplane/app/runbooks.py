"""Runbooks: one markdown file per failure mode under ``runbooks/``, with YAML front matter.

Front matter fields: ``id`` (the file's stem and the primary failure mode), ``title``, ``severity``
(page or ticket) and ``triggers`` (every failure mode the runbook covers, ``id`` included).
Commands in the body may use ``{model}``, ``{version}``, ``{ref}``, ``{stable}`` and ``{incident}``;
``render`` fills them with an incident's values so the on-call person can paste them.

Reading runbooks touches no database: ``ctl runbook FAILURE_MODE`` works without a store.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from controlplane.errors import InputError, NotFoundError

RUNBOOKS_ENV = "CONTROLPLANE_RUNBOOKS"
SEVERITIES = ("page", "ticket")
INDEX = "README.md"
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLACEHOLDER = re.compile(r"\{(model|version|ref|stable|incident)\}")
_CTL_LINE = re.compile(r"^\s*(?:\$\s+)?(ctl\s.*?)\s*$")


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    severity: str
    triggers: tuple[str, ...]
    path: Path
    body: str

    @property
    def link(self) -> str:
        """Where the incident points: the path relative to the repository (``runbooks/<id>.md``)."""
        return f"runbooks/{self.path.name}"


def runbooks_dir() -> Path:
    """``$CONTROLPLANE_RUNBOOKS``, else ``runbooks/`` next to the ``controlplane`` package (the repository)."""
    configured = os.environ.get(RUNBOOKS_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "runbooks"


def parse_runbook(path: Path) -> Runbook:
    import yaml

    text = path.read_text(encoding="utf-8")
    match = _FRONT.match(text)
    if match is None:
        raise InputError(f"runbook {path.name}: no front matter (a '---' block at the top)")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise InputError(f"runbook {path.name}: front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise InputError(f"runbook {path.name}: front matter must be a mapping")
    rid, title, severity = meta.get("id"), meta.get("title"), meta.get("severity")
    triggers = meta.get("triggers") or [rid]
    if not isinstance(rid, str) or not _ID.match(rid) or rid != path.stem:
        raise InputError(f"runbook {path.name}: id must be the file's stem ({path.stem!r}), got {rid!r}")
    if not isinstance(title, str) or not title.strip():
        raise InputError(f"runbook {path.name}: title is required")
    if severity not in SEVERITIES:
        raise InputError(f"runbook {path.name}: severity must be page or ticket, got {severity!r}")
    if not isinstance(triggers, list) or not all(isinstance(t, str) and _ID.match(t) for t in triggers):
        raise InputError(f"runbook {path.name}: triggers must be a list of failure modes")
    ordered = tuple(dict.fromkeys([rid, *triggers]))
    return Runbook(rid, title.strip(), severity, ordered, path, text[match.end() :].lstrip("\n"))


def load_runbooks(directory: Path | None = None) -> dict[str, Runbook]:
    """Every runbook in ``directory`` by id; InputError when one is malformed or two claim one trigger."""
    folder = directory or runbooks_dir()
    if not folder.is_dir():
        raise NotFoundError(f"runbooks folder not found: {folder} (set {RUNBOOKS_ENV})")
    books: dict[str, Runbook] = {}
    claimed: dict[str, str] = {}
    for path in sorted(folder.glob("*.md")):
        if path.name == INDEX:
            continue
        book = parse_runbook(path)
        for trigger in book.triggers:
            if trigger in claimed:
                raise InputError(f"runbooks {claimed[trigger]} and {book.id} both claim failure mode {trigger!r}")
            claimed[trigger] = book.id
        books[book.id] = book
    return books


def runbook_for(failure_mode: str, books: dict[str, Runbook] | None = None) -> Runbook:
    """The runbook whose id or triggers name ``failure_mode``; NotFoundError otherwise."""
    books = books if books is not None else load_runbooks()
    if failure_mode in books:
        return books[failure_mode]
    for book in books.values():
        if failure_mode in book.triggers:
            return book
    raise NotFoundError(f"no runbook for failure mode {failure_mode!r} (known: {', '.join(sorted(books))})")


def runbook_link(failure_mode: str) -> str:
    """The link stored on an incident; the index when no runbook matches (never fails an incident)."""
    try:
        return runbook_for(failure_mode).link
    except InputError:
        return f"runbooks/{INDEX}"


def render(
    book: Runbook,
    *,
    model: str | None = None,
    version: int | None = None,
    stable: int | None = None,
    incident: int | None = None,
) -> str:
    """The body with placeholders filled; unknown values stay as ``{model}`` etc."""
    values = {
        "model": model,
        "version": None if version is None else str(version),
        "ref": f"{model}:v{version}" if model and version is not None else None,
        "stable": None if stable is None else str(stable),
        "incident": None if incident is None else str(incident),
    }

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return value if value is not None else match.group(0)

    return _PLACEHOLDER.sub(fill, book.body)


def ctl_commands(text: str) -> list[str]:
    """The ``ctl ...`` command lines written in fenced code blocks of a runbook body."""
    commands: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            match = _CTL_LINE.match(line)
            if match:
                commands.append(match.group(1).split("  #")[0].strip())
    return commands
