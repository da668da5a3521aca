"""Start, overload and stop of a real `ctl serve` process: refused starts (one line, exit 2), 503 with
Retry-After and bounded memory under overload, SIGTERM draining every accepted request then exit 0."""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controlplane.local.corpus import LONG
from controlplane.ports import NewVersion
from tests.serve.conftest import MODEL, Registered, Server, StartServer, ctl, ctl_env, infer_body

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server]


def assert_one_line_error(proc: object, fragment: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    err = proc.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert fragment in err, err


def test_tampered_onnx_is_refused_at_start(registered: Registered, tmp_path: Path) -> None:
    """A version whose model.onnx does not match its onnx.sha256 tag never serves."""
    from controlplane.adapters.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry(registered.tracking_uri, None, tmp_path / "art", tmp_path / "cache")
    good = registry.fetch(MODEL, 1)
    tampered = tmp_path / "tampered"
    shutil.copytree(good, tampered)
    with (tampered / "model.onnx").open("ab") as fh:
        fh.write(b"\0")  # one byte more than what was registered
    tags = dict(registry.get_version(MODEL, 1).tags)
    files = {p.name: p for p in tampered.iterdir() if p.is_file()}
    version = registry.register(NewVersion(name=f"{MODEL}-tampered", files=files, tags=tags)).version
    env = ctl_env(tmp_path / "home", registered.tracking_uri)
    proc = ctl("serve", f"{MODEL}-tampered:v{version}", "--host", "127.0.0.1", "--port", "0", env=env, timeout=120)
    assert_one_line_error(proc, "does not match its onnx.sha256 tag")


@pytest.mark.parametrize(
    ("args", "tracking", "fragment"),
    [
        ((f"{MODEL}:v99",), None, "not found"),
        (("models:/no-such-model/1",), None, "not found"),
        ((f"{MODEL}@nope",), None, "has no alias"),
        (("not a ref",), None, "invalid model reference"),
        ((), None, "MODEL_URI"),
        ((f"{MODEL}:v1",), "http://127.0.0.1:9", "cannot reach MLflow"),
    ],
    ids=["missing version", "missing model", "missing alias", "malformed", "nothing to serve", "registry unreachable"],
)
def test_start_failures_are_one_line_and_exit_2(
    registered: Registered, tmp_path: Path, args: tuple[str, ...], tracking: str | None, fragment: str
) -> None:
    env = ctl_env(tmp_path, tracking or registered.tracking_uri)
    proc = ctl("serve", *args, "--host", "127.0.0.1", "--port", "0", env=env, timeout=120)
    assert_one_line_error(proc, fragment)


def rss_bytes(server: Server) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_overload_answers_503_with_retry_after_and_memory_stays_bounded(start_server: StartServer) -> None:
    server = start_server("--max-queue", "64", "--max-request-texts", "32", "--no-truncate")
    texts = [LONG[i % len(LONG)][:400] for i in range(32)]
    baseline = rss_bytes(server)
    peak = baseline
    statuses: list[int] = []
    retry_after: set[str | None] = set()
    done = threading.Event()

    def one(_: int) -> None:
        status, headers, _ = server.request("POST", f"/v2/models/{MODEL}/infer", json.dumps(infer_body(texts)).encode())
        statuses.append(status)
        if status == 503:
            retry_after.add(headers.get("retry-after"))

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(server))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(one, range(120)))
    done.set()
    watcher.join()
    assert set(statuses) == {200, 503} and statuses.count(503) > 0, statuses
    assert retry_after == {"1"}
    assert peak - baseline < 300 * 2**20, (baseline, peak)  # at most 64 queued texts, whatever the offered load
    assert server.post("/v1/embeddings", {"input": "after the storm"})[0] == 200
    # --no-truncate: a text above the model's length is refused (400) and counted as bad input, not an error
    status, body = server.post("/v1/embeddings", {"input": "word " * 600})
    assert status == 400 and "longer than the model" in body["error"]["message"]


def test_sigterm_drains_every_accepted_request_then_exits_0(start_server: StartServer) -> None:
    server = start_server("--drain-seconds", "600")  # no drain limit within the test: the machine may be slow
    texts = [LONG[i % len(LONG)] for i in range(24)]
    n = 12
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(server.post, f"/v2/models/{MODEL}/infer", infer_body(texts), 300) for _ in range(n)]
        deadline = time.monotonic() + 60
        while inflight(server) < n:  # every request is in the server before the signal
            assert time.monotonic() < deadline, "requests never all in flight"
            time.sleep(0.02)
        code = server.terminate()
        replies = [f.result() for f in futures]
    assert code == 0, server.output()
    assert [status for status, _ in replies] == [200] * n
    assert all(body["outputs"][0]["shape"] == [24, 384] for _, body in replies)
    with pytest.raises(OSError):
        server.request("GET", "/v2/health/live", timeout=2)


def inflight(server: Server) -> float:
    labels = (("model", MODEL), ("role", "canary"), ("version", "1"))
    return server.metrics().get(("model_inflight_requests", labels), 0.0)
