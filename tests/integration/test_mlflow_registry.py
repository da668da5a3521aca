"""MlflowRegistry against a real ``mlflow server`` and against the embedded SQLite default (no mocks).

One registry per backend for the module (the embedded store's first use creates MLflow's
database, which takes seconds); each test works on its own model name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from controlplane.adapters.mlflow_registry import MlflowRegistry
from controlplane.errors import ExternalError, InputError, NotFoundError
from controlplane.ports import ModelRegistry, NewVersion
from controlplane.settings import load_settings


@pytest.fixture(scope="module", params=["sqlite", pytest.param("server", marks=[pytest.mark.mlflow_server])])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowRegistry]:
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    if request.param == "sqlite":  # the embedded default: nothing but CONTROLPLANE_HOME
        settings = load_settings({"CONTROLPLANE_HOME": str(home)})
        assert settings.tracking_uri.startswith("sqlite:///")
        yield MlflowRegistry.from_settings(settings)
    else:
        uri = request.getfixturevalue("mlflow_server")
        yield MlflowRegistry(uri, uri, home / "mlartifacts", home / "cache")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A tiny stand-in for an exported model: names as the real thing, small dummy content."""
    src = tmp_path / "export"
    src.mkdir()
    (src / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (src / "tokenizer.json").write_text('{"version": "1.0"}')
    (src / "config.json").write_text('{"hidden_size": 384}')
    return {"model.onnx": src / "weights.bin", "tokenizer.json": src / "tokenizer.json", "config.json": src / "config.json"}


def _register(registry: MlflowRegistry, name: str, files: dict[str, Path], n: int) -> int:
    new = NewVersion(name=name, files=files, tags={"sha256": f"hash{n}", "format": "onnx"}, params={"opset": "17"})
    return registry.register(new).version


def test_is_a_model_registry(registry: MlflowRegistry) -> None:
    assert isinstance(registry, ModelRegistry)


def test_register_two_versions_get_and_list(registry: MlflowRegistry, files: dict[str, Path]) -> None:
    start = time.monotonic()
    first = registry.register(NewVersion("reg-a", files, {"sha256": "aaa"}, {"opset": "17"}, "first"))
    second = registry.register(NewVersion("reg-a", {"model.onnx": files["model.onnx"]}, {"sha256": "bbb"}))
    print(f"two registrations: {time.monotonic() - start:.2f} s")
    assert (first.name, first.version, second.version) == ("reg-a", 1, 2)
    assert first.source_uri == "models:/reg-a/1" and first.ref == "reg-a:v1"
    assert first.tags == {"sha256": "aaa"} and first.run_id and first.created_at
    got = registry.get_version("reg-a", 2)
    assert (got.version, got.tags, got.run_id) == (2, {"sha256": "bbb"}, second.run_id)
    assert [v.version for v in registry.list_versions("reg-a")] == [1, 2]
    assert "reg-a" in registry.list_models()
    assert registry.list_models() == sorted(registry.list_models())


def test_alias_set_get_delete(registry: MlflowRegistry, files: dict[str, Path]) -> None:
    for n in (1, 2):
        _register(registry, "alias-m", files, n)
    assert registry.get_alias("alias-m", "production") is None
    registry.set_alias("alias-m", "production", 1)
    got = registry.get_alias("alias-m", "production")
    assert got is not None and got.version == 1 and "production" in got.aliases
    registry.set_alias("alias-m", "production", 2)  # moving an alias
    assert registry.get_alias("alias-m", "production").version == 2  # type: ignore[union-attr]
    registry.delete_alias("alias-m", "production")
    assert registry.get_alias("alias-m", "production") is None
    registry.delete_alias("alias-m", "production")  # deleting an absent alias is a no-op
    for reserved in ("latest", "v1", "V2"):
        with pytest.raises(InputError, match="reserved"):
            registry.set_alias("alias-m", reserved, 1)
    with pytest.raises(NotFoundError, match=r"alias-m:v7 not found \(latest is v2\)"):
        registry.set_alias("alias-m", "production", 7)


def test_set_tags(registry: MlflowRegistry, files: dict[str, Path]) -> None:
    _register(registry, "tags-m", files, 1)
    registry.set_tags("tags-m", 1, {"validation": "passed", "sha256": "changed"})
    assert registry.get_version("tags-m", 1).tags == {"sha256": "changed", "format": "onnx", "validation": "passed"}
    with pytest.raises(NotFoundError):
        registry.set_tags("tags-m", 5, {"x": "y"})


def test_fetch_returns_the_files(registry: MlflowRegistry, files: dict[str, Path]) -> None:
    _register(registry, "fetch-m", files, 1)
    _register(registry, "fetch-m", {"model.onnx": files["config.json"]}, 2)
    folder = registry.fetch("fetch-m", 1)
    assert folder == registry.cache_dir / "fetch-m" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.onnx", "tokenizer.json"]
    assert (folder / "model.onnx").read_bytes() == files["model.onnx"].read_bytes()
    assert registry.fetch("fetch-m", 1) == folder  # cached
    assert [p.name for p in registry.fetch("fetch-m", 2).iterdir()] == ["model.onnx"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["1", "2"]  # no temp dirs left behind
    with pytest.raises(NotFoundError, match=r"fetch-m:v3 not found \(latest is v2\)"):
        registry.fetch("fetch-m", 3)
    assert not (folder.parent / "3").exists()


def test_log_run(registry: MlflowRegistry, files: dict[str, Path], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    _register(registry, "run-m", files, 1)
    report = tmp_path / "report.json"
    report.write_text('{"ok": true}')
    run_id = registry.log_run(
        "run-m", 1, "validate-run-m-v1", {"checks": "entropy,quant"}, {"cos_p1": 0.981, "entropy": 1.5}, [report],
        tags={"purpose": "validation"},
    )  # fmt: skip
    client = MlflowClient(registry.tracking_uri, registry.registry_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "validate-run-m-v1"
    assert run.data.tags["model_name"] == "run-m" and run.data.tags["model_version"] == "1"
    assert run.data.tags["purpose"] == "validation"
    assert run.data.metrics == {"cos_p1": 0.981, "entropy": 1.5}
    assert run.data.params == {"checks": "entropy,quant"}
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.json"]
    with pytest.raises(NotFoundError):
        registry.log_run("run-m", 9, "x", {}, {}, [])


def test_not_found_messages(registry: MlflowRegistry, files: dict[str, Path]) -> None:
    for n in (1, 2, 3):
        _register(registry, "nf-m", files, n)
    with pytest.raises(NotFoundError) as err:
        registry.get_version("nf-m", 9)
    assert str(err.value) == "model version nf-m:v9 not found (latest is v3)"
    for call in (
        lambda: registry.get_version("no-such-model", 1),
        lambda: registry.list_versions("no-such-model"),
        lambda: registry.get_alias("no-such-model", "production"),
    ):
        with pytest.raises(NotFoundError) as err:
            call()
        assert str(err.value) == "model 'no-such-model' not found in the registry"


def test_failed_registration_leaves_nothing(registry: MlflowRegistry, files: dict[str, Path], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    with pytest.raises(InputError, match="file not found"):
        registry.register(NewVersion("broken-m", {"model.onnx": tmp_path / "missing.onnx"}, {}))
    # fails midway (MLflow rejects the tag key after the model and the run exist): everything is undone
    with pytest.raises(InputError):
        registry.register(NewVersion("broken-m", files, {"bad key/../x": "1" * 10, "": "empty key"}))
    assert "broken-m" not in registry.list_models()
    client = MlflowClient(registry.tracking_uri, registry.registry_uri)
    exp = client.get_experiment_by_name("broken-m")
    if exp is not None:
        assert client.search_runs([exp.experiment_id]) == []  # active runs only: the failed one was deleted


def test_unreachable_server_fails_with_one_line(tmp_path: Path) -> None:
    registry = MlflowRegistry("http://127.0.0.1:1", None, tmp_path / "art", tmp_path / "cache")
    with pytest.raises(ExternalError) as err:
        registry.list_models()
    assert str(err.value) == "cannot reach MLflow at http://127.0.0.1:1: connection refused"
    with pytest.raises(ExternalError, match="cannot reach MLflow"):
        registry.get_version("m", 1)
    with pytest.raises(ExternalError, match="cannot reach MLflow"):
        registry.register(NewVersion("m", {"f": Path(__file__)}, {}))


class _Unavailable(BaseHTTPRequestHandler):
    """An MLflow that answers 503 to everything, counting the requests."""

    hits: list[str] = []

    def _answer(self) -> None:
        _Unavailable.hits.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        return


def test_a_failing_server_is_asked_once_per_call_not_retried(tmp_path: Path) -> None:
    """Fail fast: MLflow's client would retry a 503 with back-off for minutes; each call here sends one
    request and raises (how long that takes: benchmarks/fail_fast.py)."""
    server = HTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    registry = MlflowRegistry(url, None, tmp_path / "art", tmp_path / "cache")
    try:
        for call in (registry.list_models, lambda: registry.get_version("m", 1),
                     lambda: registry.register(NewVersion("m", {"f": Path(__file__)}, {}))):
            before = len(_Unavailable.hits)
            with pytest.raises(ExternalError, match=f"cannot reach MLflow at {url}"):
                call()
            assert len(_Unavailable.hits) - before == 1, _Unavailable.hits[before:]
    finally:
        server.shutdown()
        server.server_close()
