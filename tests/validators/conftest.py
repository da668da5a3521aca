"""Fixtures for the validator tests: real all-MiniLM-L6-v2 variants (tests/validators/fixtures.py,
cached under .cache/) and, for the runner and CLI tests, one session-scoped CONTROLPLANE_HOME in which
each variant is registered at most once, on first use, through ``register_model`` (SQLite MLflow).

``registry.ref("collapsed")`` → ``"minilm:v5"``-style reference; ``registry.env`` is the environment
for ``ctl`` subprocesses; ``registry.ctx`` the in-process application context.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.validators import fixtures
from validators.result import ModelUnderTest

MODEL = "minilm"


@pytest.fixture(scope="session")
def variant_dirs() -> dict[str, Path]:
    return fixtures.build_variants()


@pytest.fixture(scope="session")
def variants(variant_dirs: dict[str, Path]) -> dict[str, ModelUnderTest]:
    """Each variant as a ModelUnderTest straight from the cache (no registry)."""
    return {name: fixtures.under_test(name, path) for name, path in variant_dirs.items()}


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    return fixtures.build_tiny()


@pytest.fixture(scope="session")
def broken_files() -> dict[str, Path]:
    return fixtures.build_broken()


@dataclass
class Registered:
    home: Path
    env: dict[str, str]
    variant_dirs: dict[str, Path]
    refs: dict[str, str] = field(default_factory=dict)
    _ctx: object | None = None

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        if self._ctx is None:
            from controlplane.app.context import open_context
            from controlplane.settings import load_settings

            self._ctx = open_context(load_settings(self.env))
        return self._ctx

    def ref(self, variant: str) -> str:
        """Register ``variant`` (once per session) and return its ``NAME:vN``."""
        if variant not in self.refs:
            self.refs[variant] = self._register(variant)
        return self.refs[variant]

    def _register(self, variant: str) -> str:
        from controlplane.app.register import register_model

        if variant == "int8-per-channel":
            self.ref("healthy")  # the fp32 source the lineage tag points at
            return register_model(self.ctx, MODEL, self.variant_dirs["healthy"], quantize="int8").version.ref
        if variant == "int8-per-tensor":  # register_model only makes the good kind: register the files
            return self.register_files(MODEL, self.variant_dirs[variant], quantization="int8-per-tensor",
                                       lineage=self.ref("healthy"))  # fmt: skip
        return register_model(self.ctx, MODEL, self.variant_dirs[variant]).version.ref

    def register_files(self, name: str, folder: Path, *, onnx: Path | None = None, tokenizer: bool = True,
                       quantization: str = "none", lineage: str | None = None) -> str:  # fmt: skip
        """Register prebuilt files as they are (for variants and broken artifacts ``ctl register`` refuses)."""
        from controlplane import models
        from controlplane.models.hf import architecture_from_config, read_json
        from controlplane.ports import NewVersion

        files = {"model.onnx": onnx or folder / "model.onnx", "config.json": folder / "config.json"}
        if tokenizer:
            files.update({n: folder / n for n in fixtures.HF_FILES[1:] if (folder / n).is_file()})
        tags = {**architecture_from_config(read_json(folder / "config.json", "config")).to_tags(),
                "quantization": quantization}  # fmt: skip
        if tokenizer:
            tags["tokenizer.sha256"] = models.tokenizer_hash(folder / "tokenizer.json")
        if lineage:
            tags["lineage.source"] = lineage
        return self.ctx.registry.register(NewVersion(name=name, files=files, tags=tags)).ref


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, variant_dirs: dict[str, Path]) -> Iterator[Registered]:
    home = tmp_path_factory.mktemp("validators-home")
    env = {k: v for k, v in os.environ.items()
           if k not in ("CONTROLPLANE_DB_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}  # fmt: skip
    env.update(CONTROLPLANE_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    yield Registered(home, env, variant_dirs)


def ctl(registry: Registered, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real ``ctl`` in a subprocess against the session's home."""
    cmd = [sys.executable, "-m", "controlplane.cli.main", *args]
    return subprocess.run(cmd, env=registry.env, capture_output=True, text=True, timeout=timeout, check=False)
