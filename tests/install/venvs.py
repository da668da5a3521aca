"""Fresh virtual environments with one role of attn-controlplane installed from the local wheel,
pinned by constraints.txt: what a CI job, a controller image or a model server installs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"


@dataclass(frozen=True)
class RoleVenv:
    path: Path
    extras: str  # "" for the base install
    install_s: float

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def site_packages(self) -> Path:
        return next((self.path / "lib").glob("python3*/site-packages"))

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.site_packages().rglob("*") if f.is_file() and not f.is_symlink())

    def importable(self, module: str) -> bool:
        probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
        return subprocess.run([self.python, "-c", probe], env=clean_env(), check=False).returncode == 0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH: the venv imports only what it installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


def build_wheel(out: Path) -> Path:
    """The project's wheel (no dependencies), as `pip wheel` builds it from this checkout."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, env=clean_env(), capture_output=True, text=True)
    return next(out.glob("attn_controlplane-*.whl"))


def make_role_venv(path: Path, wheel: Path, extras: str = "", *, cache: bool = True) -> RoleVenv:
    """A venv with ``wheel[extras]`` and its dependencies (pip's cache unless ``cache`` is False)."""
    venv.create(path, with_pip=True, clear=True)
    target = f"{wheel}[{extras}]" if extras else str(wheel)
    argv = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
            "-c", str(CONSTRAINTS), target]
    if not cache:
        argv.insert(4, "--no-cache-dir")
    started = time.monotonic()
    done = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {target} failed:\n{done.stderr[-4000:]}")
    return RoleVenv(path, extras, time.monotonic() - started)
