"""Runbooks: one markdown file per failure mode under ``runbooks/``, with YAML front matter.

Front matter fields: ``id`` (the file's stem and the primary failure mode), ``title``, ``severity``
(page or ticket), ``triggers`` (every failure mode the runbook covers, ``id`` included) and, for a
failure mode nothing in the project detects yet, ``detector: none`` (``render`` then says so on top).

Commands live in fenced ``sh`` blocks and queries in fenced ``promql`` blocks, so the suite can run
them. They may use the incident's values ``{model}``, ``{version}``, ``{ref}``, ``{stable}``,
``{incident}`` and the deployment's names, filled from the same definitions the controller and the
manifests use (never guessed): ``{namespace}`` ($CONTROLPLANE_NAMESPACE), ``{rollout}`` (the
ModelRollout ``ctl promote --target kubernetes`` names after the model), ``{deployment}`` and
``{canary_deployment}`` (the stable Deployment ``ctl promote --target kubernetes`` names after the
model, and its canary), ``{canary_selector}`` (the role label the controller puts on canary pods),
``{workflow_selector}`` (the label Argo puts on the validation Workflows), ``{mlflow_uri}`` (the
registry server ctl uses, when it is one) and ``{prometheus_url}`` ($PROMETHEUS_URL).

Reading runbooks touches no database: ``ctl runbook FAILURE_MODE`` works without a store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controlplane.errors import InputError, NotFoundError

RUNBOOKS_ENV = "CONTROLPLANE_RUNBOOKS"
SEVERITIES = ("page", "ticket")
INDEX = "README.md"
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLACEHOLDER = re.compile(
    r"\{(model|version|ref|stable|incident|namespace|rollout|deployment|canary_deployment|canary_selector"
    r"|workflow_selector|mlflow_uri|prometheus_url)\}"
)
_CTL_LINE = re.compile(r"^\s*(?:\$\s+)?(ctl\s.*?)\s*$")
_FENCE = re.compile(r"^\s*```(\w*)\s*$")
#: The label Argo Workflows puts on a Workflow submitted from a WorkflowTemplate.
WORKFLOW_TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
NO_DETECTOR_NOTE = (
    "> **No detector raises this failure mode yet**: nothing in the control plane opens this incident on\n"
    "> its own. Use this runbook when a person finds the symptoms below.\n\n"
)


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    severity: str
    triggers: tuple[str, ...]
    path: Path
    body: str
    detected: bool = True  # False for ``detector: none``: no check or analysis raises it yet

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
    detector = meta.get("detector")
    if detector not in (None, "none"):
        raise InputError(f"runbook {path.name}: detector must be 'none' when set, got {detector!r}")
    ordered = tuple(dict.fromkeys([rid, *triggers]))
    body = text[match.end() :].lstrip("\n")
    return Runbook(rid, title.strip(), severity, ordered, path, body, detected=detector is None)


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
    values = {**deployment_values(model), **{
        "model": model,
        "version": None if version is None else str(version),
        "ref": f"{model}:v{version}" if model and version is not None else None,
        "stable": None if stable is None else str(stable),
        "incident": None if incident is None else str(incident),
    }}

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return value if value is not None else match.group(0)

    body = _PLACEHOLDER.sub(fill, book.body)
    return body if book.detected else NO_DETECTOR_NOTE + body


def deployment_values(model: str | None, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Names the runbooks' commands use, from the definitions the controller and manifests use."""
    from controlplane.adapters.routers.common import ROLE_LABEL, canary_name
    from controlplane.app.kube_commands import rollout_name
    from controlplane.settings import load_settings
    from controlplane.workflows.template import TEMPLATE_NAME

    settings = load_settings(dict(env) if env is not None else None)
    deployment = rollout_name(model) if model else None
    return {
        "namespace": settings.namespace,
        "rollout": deployment,
        "deployment": deployment,
        "canary_deployment": canary_name(deployment) if deployment else None,
        "canary_selector": f"{ROLE_LABEL}=canary",
        "workflow_selector": f"{WORKFLOW_TEMPLATE_LABEL}={TEMPLATE_NAME}",
        "mlflow_uri": settings.tracking_uri if settings.tracking_uri.startswith(("http://", "https://")) else None,
        "prometheus_url": (env if env is not None else os.environ).get("PROMETHEUS_URL"),
    }


def blocks(text: str, language: str) -> list[str]:
    """The contents of the fenced blocks tagged ``language`` (``sh`` or ``promql``), in order."""
    found: list[str] = []
    inside: str | None = None  # the language of the block being read ("" when untagged); None outside
    current: list[str] = []
    for line in text.splitlines():
        fence = _FENCE.match(line)
        if fence and inside is None:
            inside, current = fence.group(1), []
        elif fence:
            if inside == language:
                found.append("\n".join(current).strip())
            inside = None
        elif inside is not None:
            current.append(line)
    return found


def shell_commands(text: str) -> list[str]:
    """Every command line of the ``sh`` blocks (comments after ``  #`` dropped)."""
    lines = (line.split("  #")[0].strip() for block in blocks(text, "sh") for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ctl_commands(text: str) -> list[str]:
    """The ``ctl ...`` command lines written in the ``sh`` blocks of a runbook body."""
    return [m.group(1) for m in map(_CTL_LINE.match, shell_commands(text)) if m]
