"""Installed size and cold-cache install time of each role (pyproject's extras), from the local wheel
with constraints.txt, each into a fresh venv with `pip install --no-cache-dir` (every wheel downloaded).

Run: ``python benchmarks/install_roles.py [ROLE ...]`` (default: every role; torch roles take minutes).
A role is an extra, or ``base`` for the plain install. Prints one JSON line per role.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.install.venvs import build_wheel, make_role_venv  # noqa: E402

ROLES = ("base", "registry", "controller", "serve", "serve-gpu", "validate", "all")


def main(roles: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="ctl-roles-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        for role in roles:
            env = make_role_venv(Path(tmp) / role, wheel, "" if role == "base" else role, cache=False)
            mib = env.size_bytes() / 2**20
            print(json.dumps({"role": role, "site_packages_mib": round(mib), "cold_install_s": round(env.install_s)}),
                  flush=True)
            shutil.rmtree(env.path)


if __name__ == "__main__":
    main(sys.argv[1:] or list(ROLES))
