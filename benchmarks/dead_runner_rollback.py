"""How long `ctl rollback` takes, from the command to weight 0, when the runner driving the rollout
was killed (SIGKILL): the on-call path after the terminal that owned `ctl promote --no-wait` died.

The real all-MiniLM-L6-v2 is registered (v1 fp32 holding production, v2 its int8 variant) in a
throw-away home; each run starts `ctl promote minilm:v2 --no-wait`, waits until the canary serves
5 %, SIGKILLs the runner, and times `ctl rollback minilm` as a subprocess until it returns (it
returns once the rollout is RolledBack at weight 0; checked in the store). Printed beside it, from
the same run: the same rollback with the runner alive, and `ctl status` (the CLI's floor: start
Python, read the store).

Run: ``python benchmarks/dead_runner_rollback.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Ctl:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "CONTROLPLANE_HOME": str(home), "PYTHONPATH": str(ROOT)}
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CONTROLPLANE_DB_URL"):
            self.env.pop(key, None)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], env=self.env, text=True,
                              capture_output=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"ctl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def timed(self, *args: str) -> tuple[float, Any]:
        started = time.perf_counter()
        proc = self(*args, "-o", "json")
        return time.perf_counter() - started, json.loads(proc.stdout)


def _wait(check: Any, what: str, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def one_run(ctl: Ctl, kill: bool) -> float:
    from controlplane.app.runner_lease import holder_pid, is_driven
    from controlplane.store import SqlStore

    rid = json.loads(ctl("promote", "minilm:v2", "--no-wait", "--skip-validation", "--step-duration", "10m",
                         "-o", "json").stdout)["id"]
    with SqlStore(f"sqlite:///{ctl.home / 'state.db'}") as store:
        _wait(lambda: store.get_rollout(rid).status.get("weight") == 5, "the canary at 5 %")
        if kill:
            os.kill(_wait(lambda: holder_pid(ctl.home, rid), "the runner's pid"), signal.SIGKILL)
            _wait(lambda: not is_driven(ctl.home, rid), "the runner to die")
        seconds, answer = ctl.timed("rollback", "minilm")
        status = store.get_rollout(rid).status
    if (answer["phase"], status["phase"], status["weight"]) != ("RolledBack", "RolledBack", 0):
        raise SystemExit(f"rollback did not end the rollout: {answer}, {status}")
    if kill and not answer["ended_here"]:
        raise SystemExit(f"expected the command to end the rollout itself: {answer}")
    if not kill:
        _wait(lambda: not is_driven(ctl.home, rid), "the runner to exit")
    return seconds


def summary(values: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
            "max_s": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from controlplane.models import minilm_dir

    with tempfile.TemporaryDirectory(prefix="dead-runner-") as tmp:
        ctl = Ctl(Path(tmp))
        model = str(minilm_dir())
        ctl("register", "minilm", "--model-dir", model)
        ctl("promote", "minilm:v1", "--skip-validation", "--step-duration", "1s")
        ctl("register", "minilm", "--model-dir", model, "--quantize", "int8")
        dead = [one_run(ctl, kill=True) for _ in range(args.runs)]
        alive = [one_run(ctl, kill=False) for _ in range(args.runs)]
        floor = [ctl.timed("status", "minilm")[0] for _ in range(args.runs)]
    result = {
        "runs": args.runs,
        "dead_runner_rollback_to_weight_0": summary(dead),
        "live_runner_rollback_to_weight_0": summary(alive),
        "ctl_status_floor": summary(floor),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
