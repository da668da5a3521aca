"""The user's intents on a local rollout, whatever state its runner is in.

The intent is recorded on the rollout (app.rollouts.request). Then:
- rollback and abort are seen through to their end (all traffic on stable): by the runner
  when one is alive, else here at once (local_run.settle), and the answer is the ended rollout;
- pause and resume need a runner to serve the rollout at its weight: one is started when none
  is alive (also when nothing new was recorded: `ctl resume` re-drives an orphaned rollout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.app.context import Context
from controlplane.app.local_run import settle
from controlplane.app.rollouts import IntentResult, request
from controlplane.app.runner_lease import holder_pid, is_driven
from controlplane.errors import TimedOut
from controlplane.ports import RolloutRecord

ENDING_INTENTS = ("rollback", "abort")
POLL_S = 0.1


@dataclass(frozen=True)
class LocalIntent:
    result: IntentResult
    record: RolloutRecord  # the rollout after the intent (ended, for rollback and abort)
    runner_started: bool = False
    ended_here: bool = False  # no runner was alive: this process ended the rollout


def local_intent(
    ctx: Context,
    model: str,
    intent: str,
    spawn_runner: Callable[[int], None],
    wait_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> LocalIntent:
    result = request(ctx, model, intent)
    record = result.record
    if not record.active:
        return LocalIntent(result, record)
    home = ctx.settings.home
    if intent not in ENDING_INTENTS:
        if is_driven(home, record.id):
            return LocalIntent(result, record)
        spawn_runner(record.id)
        return LocalIntent(result, record, runner_started=True)
    deadline = time.monotonic() + wait_s
    ended_here = False
    while record.active:
        if not is_driven(home, record.id):
            ended_here = settle(ctx, record.id) or ended_here
        record = ctx.store.get_rollout(record.id)
        if not record.active:
            break
        if time.monotonic() > deadline:
            pid = holder_pid(home, record.id)
            raise TimedOut(
                f"{intent} recorded on rollout #{record.id} but its runner (pid {pid or '?'}) has not carried it out "
                f"within {wait_s:g}s: see {home / 'logs' / f'rollout-{record.id}.log'}"
            )
        sleep(POLL_S)
    return LocalIntent(result, record, ended_here=ended_here)
