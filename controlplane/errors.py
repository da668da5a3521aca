"""The exception tree. Every error the CLI can print is a ControlPlaneError.

ControlPlaneError
├── InputError          bad input from the user: exit code 2
│   ├── NotFoundError   unknown model, version, rollout, incident
│   └── ConflictError   e.g. a second active rollout for one model
├── NotAvailableError   a capability this build does not have: exit code 2
├── CheckFailed         a validation gate or rollout failed: exit code 1
└── ExternalError       a system at the edge failed
    ├── TemporaryError  worth retrying (timeouts, 409, 5xx); carries a delay
    └── PermanentError  retrying will not help (403, 422, schema)

Anything else escaping a command is a bug in ctl: one line naming it and the log file with
its traceback, exit code 70 (EXIT_SOFTWARE).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SOFTWARE = 70  # sysexits EX_SOFTWARE: ctl itself crashed (a bug), not the rollout nor the input


class ControlPlaneError(Exception):
    """Base of every error the control plane raises on purpose."""

    exit_code = EXIT_USAGE


class InputError(ControlPlaneError):
    """The user's input is wrong: a malformed ref, a missing file, a bad spec."""


class NotFoundError(InputError):
    """An object named by the user does not exist."""


class ConflictError(InputError):
    """The request conflicts with existing state."""


class NotAvailableError(ControlPlaneError):
    """The capability is not available in this installation or environment."""


class CheckFailed(ControlPlaneError):
    """A gate or rollout ended in failure (not a usage error)."""

    exit_code = EXIT_FAILED


class TimedOut(CheckFailed):
    """Something waited for did not happen within the time allowed."""


class ExternalError(ControlPlaneError):
    """A system at the edge (registry, database, cluster, Prometheus) failed."""


class TemporaryError(ExternalError):
    """A failure worth retrying after `delay` seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ExternalError):
    """A failure that retrying will not fix."""
