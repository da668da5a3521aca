"""Inside a workflow step: ``python -m controlplane.workflows.step CHECK EXIT_CODE RESULT_FILE``
prints the step's status (passed, warning, failed or error) for its ``status`` output."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from controlplane.workflows.argo_status import step_status


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m controlplane.workflows.step CHECK EXIT_CODE RESULT_FILE", file=sys.stderr)
        return 2
    check, code, path = args
    try:
        exit_code = int(code)
    except ValueError:
        exit_code = 2
    result = Path(path)
    text = result.read_text(errors="replace") if result.is_file() else ""
    sys.stdout.write(step_status(check, exit_code, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
