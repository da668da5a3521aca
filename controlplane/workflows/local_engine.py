"""``--engine local``: the validation DAG executed in-process.

Checks run in threads as soon as the checks they depend on have finished (so the parallel
branches of the DAG really run concurrently). A failed check does not stop the run: every
selected check runs, in the DAG's order, and reports its own verdict, as the Argo template does
(``failFast: false``, dependencies on completion). Failing fast is the rollout gate's choice
(it terminates the run at the first failure). Two things do stop the run early: bad input
(``InputError`` from a check: a missing artifact, an absent device; no other check can judge
the model either) and ``terminate``; the checks left over are reported ``skipped``. Each check
is one call of the injected check runner; in production that calls the validators' runner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from controlplane.errors import InputError, NotFoundError
from controlplane.ports import CheckOutcome, ValidationRequest, WorkflowState
from controlplane.workflows.dag import ValidationDag
from controlplane.workflows.params import normalize_request, workflow_name, workflow_parameters
from controlplane.workflows.results import FAILING, FINISHED, PASSING, TERMINATED_MESSAGE, final_phase
from controlplane.workflows.template import TEMPLATE_NAME, VALIDATION_DAG

CheckRunner = Callable[[ValidationRequest, str], CheckOutcome]
"""Runs one check of a request and returns its outcome (passed, warning, failed or error)."""

HANDLE_PREFIX = "local/"


@dataclass
class _Run:
    request: ValidationRequest
    depends: dict[str, tuple[str, ...]]
    outcomes: dict[str, CheckOutcome]
    phase: str = "Pending"
    message: str = ""
    terminated: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def snapshot(self, handle: str) -> WorkflowState:
        with self.lock:
            return WorkflowState(handle, self.phase, tuple(self.outcomes.values()), self.message)


class LocalEngine:
    """Implements ``ports.WorkflowEngine`` with threads. ``submit`` returns at once; a run
    is kept in memory (per engine instance) and a resubmission of the same request returns
    the same handle."""

    name = "local"

    def __init__(self, runner: CheckRunner, dag: ValidationDag = VALIDATION_DAG) -> None:
        self.runner = runner
        self.dag = dag
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    # ---- WorkflowEngine ---------------------------------------------------------------

    def handle_for(self, request: ValidationRequest) -> str:
        request = normalize_request(request, self.dag)
        return HANDLE_PREFIX + workflow_name(request, TEMPLATE_NAME, workflow_parameters(request, self.dag))

    def submit(self, request: ValidationRequest) -> str:
        request = normalize_request(request, self.dag)
        handle = self.handle_for(request)
        with self._lock:
            if handle in self._runs:
                return handle
            run = _Run(
                request=request,
                depends=self.dag.effective_depends(request.checks),
                outcomes={c: CheckOutcome(c, "pending") for c in request.checks},
            )
            self._runs[handle] = run
        thread = threading.Thread(target=self._execute, args=(run,), name=f"validate-{handle}", daemon=True)
        thread.start()
        return handle

    def poll(self, handle: str) -> WorkflowState:
        return self._run(handle).snapshot(handle)

    def terminate(self, handle: str) -> None:
        """Stop the run: nothing new starts, running checks are reported ``error``
        (their late results are dropped), the run ends Failed at once."""
        run = self._run(handle)
        with run.lock:
            if run.done.is_set():
                return
            run.terminated = True
            for name, outcome in run.outcomes.items():
                if outcome.status == "running":
                    run.outcomes[name] = CheckOutcome(name, "error", TERMINATED_MESSAGE)
                elif outcome.status == "pending":
                    run.outcomes[name] = CheckOutcome(name, "skipped", f"not run: {TERMINATED_MESSAGE}")
            run.phase, run.message = "Failed", TERMINATED_MESSAGE
            run.done.set()

    # ---- conveniences -------------------------------------------------------------------

    def wait(self, handle: str, timeout: float | None = None) -> WorkflowState:
        """Block until the run ends and return its state. After ``timeout`` seconds the run
        is terminated and a Failed state is returned (as the Argo engine does)."""
        run = self._run(handle)
        if not run.done.wait(timeout):
            self.terminate(handle)
            with run.lock:
                if run.message == TERMINATED_MESSAGE:
                    run.message = f"timed out after {timeout:g} s; {TERMINATED_MESSAGE}"
        return self.poll(handle)

    # ---- internals ------------------------------------------------------------------------

    def _run(self, handle: str) -> _Run:
        with self._lock:
            run = self._runs.get(handle)
        if run is None:
            raise NotFoundError(f"no local validation run {handle!r}")
        return run

    def _execute(self, run: _Run) -> None:
        with run.lock:
            if run.terminated:
                return
            run.phase = "Running"
        order = list(run.outcomes)
        with ThreadPoolExecutor(max_workers=len(order), thread_name_prefix="check") as pool:
            running: dict[Future[CheckOutcome], str] = {}
            while True:
                with run.lock:
                    if not run.terminated and not any(o.input_error for o in run.outcomes.values()):
                        for name in order:
                            ready = all(run.outcomes[d].status in FINISHED for d in run.depends[name])
                            if run.outcomes[name].status == "pending" and ready:
                                run.outcomes[name] = CheckOutcome(name, "running")
                                running[pool.submit(self._call, run.request, name)] = name
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    with run.lock:
                        if not run.terminated:
                            run.outcomes[name] = future.result()
        self._finish(run)

    def _call(self, request: ValidationRequest, check: str) -> CheckOutcome:
        start = time.monotonic()
        outcome = self._outcome(request, check)
        return replace(outcome, seconds=round(time.monotonic() - start, 3))

    def _outcome(self, request: ValidationRequest, check: str) -> CheckOutcome:
        try:
            outcome = self.runner(request, check)
        except InputError as exc:  # bad input, not a verdict on the model: the run stops
            return CheckOutcome(check, "error", " ".join(str(exc).split()), input_error=True)
        except Exception as exc:  # a crashing check is an error outcome, never a pass
            text = " ".join((str(exc) or type(exc).__name__).split())
            return CheckOutcome(check, "error", f"{type(exc).__name__}: {text}")
        if not isinstance(outcome, CheckOutcome):
            return CheckOutcome(check, "error", f"the check runner returned {type(outcome).__name__}")
        if outcome.status not in PASSING | FAILING:
            return CheckOutcome(check, "error", f"the check runner returned status {outcome.status!r}")
        return replace(outcome, check=check)

    @staticmethod
    def _finish(run: _Run) -> None:
        with run.lock:
            if run.terminated:
                return
            bad_input = next((o for o in run.outcomes.values() if o.input_error), None)
            for name, outcome in run.outcomes.items():
                if outcome.status == "pending":
                    reason = f"not run: bad input ({bad_input.check})" if bad_input else "not run"
                    run.outcomes[name] = CheckOutcome(name, "skipped", reason)
            run.phase = final_phase(tuple(run.outcomes.values()))
            failing = [o for o in run.outcomes.values() if o.status in FAILING]
            if failing:  # "first failed: its summary; second failed; ..."
                first = failing[0]
                run.message = f"{first.check} {first.status}" + (f": {first.summary}" if first.summary else "")
                run.message += "".join(f"; {o.check} {o.status}" for o in failing[1:])
            run.done.set()
