"""The end-to-end local demo (`make demo`): real model, real MLflow, real inference.

1. register all-MiniLM-L6-v2 as minilm v1 and promote it;
2. register its per-channel int8 variant as v2 and promote it through 5/25/50/100 %;
3. register a broken v3 (position embeddings cut to 64 rows: long inputs fail at
   inference), show the validation gate refusing it, force it with --skip-validation,
   and watch the canary analysis roll it back on real errors, with an incident.

Every step is a real `ctl` command in a subprocess, as a user would type it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)
STEP = os.environ.get("DEMO_STEP_DURATION", "8s")


def ctl(*args: str, expect: int | None = 0, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    console.print(f"[bold cyan]$ ctl {' '.join(args)}[/]")
    proc = subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], env=env, text=True,
                          capture_output=True)
    out = (proc.stdout + proc.stderr).rstrip()
    if out and "-o" not in args:
        console.print(out, highlight=False, markup=False)
    if expect is not None and proc.returncode != expect:
        console.print(out, highlight=False, markup=False)
        raise SystemExit(f"demo: `ctl {' '.join(args)}` exited {proc.returncode}, expected {expect}")
    return proc


def main() -> None:
    from controlplane.models import minilm_dir
    from controlplane.models.variants import cut_positions

    started = time.monotonic()
    home = Path(os.environ.get("CONTROLPLANE_HOME", ".controlplane/demo")).resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "CONTROLPLANE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("CONTROLPLANE_DB_URL", None)
    src = minilm_dir()
    console.rule(f"demo home: {home}")

    ctl("register", "minilm", "--model-dir", str(src), env=env)
    ctl("promote", "minilm:v1", "--step-duration", STEP, env=env)

    ctl("register", "minilm", "--model-dir", str(src), "--quantize", "int8", env=env)
    ctl("promote", "minilm:v2", "--steps", "5,25,50,100", "--step-duration", STEP, env=env)

    with tempfile.TemporaryDirectory(prefix="minilm-short-") as tmp:
        broken = cut_positions(src, Path(tmp) / "minilm-short", 64)
        ctl("register", "minilm", "--model-dir", str(broken), env=env)
    ctl("validate", "minilm:v3", "--baseline", "minilm@production", expect=1, env=env)
    console.print("[yellow]The gate refuses v3. Forcing it through to show the runtime safety net:[/]")
    ctl("promote", "minilm:v3", "--skip-validation", "--step-duration", STEP, expect=1, env=env)

    ctl("incident", "list", env=env)
    incidents = json.loads(ctl("incident", "list", "-o", "json", env=env).stdout)
    v3 = [i for i in incidents if i.get("ref") == "minilm:v3"]
    if v3:  # the rollback's incident, with its runbook and the commands to act
        ctl("incident", "show", str(v3[-1]["id"]), env=env)
    history = json.loads(ctl("history", "minilm", "-o", "json", env=env).stdout)
    summary(history, time.monotonic() - started)


def summary(history: list[dict[str, object]], wall: float) -> None:
    table = Table(title="What happened")
    for col in ("rollout", "version", "stable before", "phase", "weights reached", "analyses", "why"):
        table.add_column(col)
    for r in history:
        events = r.get("events") or []
        weights = [e["evidence"].get("weight") for e in events if isinstance(e, dict) and e.get("kind") == "StepStarted"]
        analyses = r.get("analysis") or []
        verdicts = ", ".join(f"{n} {v}" for v, n in _counts(a["verdict"] for a in analyses).items())  # type: ignore[index]
        table.add_row(
            f"#{r['id']}",
            str(r["ref"]),
            f"v{r['stable_version']}" if r["stable_version"] else "-",
            str(r["phase"]),
            " → ".join(f"{w}%" for w in weights if w is not None) or "-",
            verdicts or "-",
            str(r["message"]),
        )
    console.print(table)
    console.print(f"demo wall time: {wall:.0f} s")


def _counts(items: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:  # type: ignore[attr-defined]
        counts[str(item)] = counts.get(str(item), 0) + 1
    return counts


if __name__ == "__main__":
    main()
