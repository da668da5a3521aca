"""`ctl serve` benchmark: throughput and latency against the floor and the peers, CPU, all-MiniLM-L6-v2.

Closed-loop clients (each sends one text, waits for the answer, sends the next) at concurrency 1, 8 and 32,
the texts cycling through the local corpus (short queries and long passages). Peers, all in this run:

* floor: onnxruntime called in-process with ideal batches (``concurrency`` texts at a time, length-sorted
  and cut into batches of similar lengths; every text's latency is its group's time); the same files,
  the same pooling;
* ``ctl serve`` (a subprocess, OpenAI ``/v1/embeddings``);
* ``mlflow models serve`` on a pyfunc logged from the same registered files (``/invocations``); MLflow cannot
  serve the registered version itself: it is plain ONNX files, not an MLflow model;
* ``infinity-emb`` (its own virtual environment under the work folder, offline, on the same model directory).

    python benchmarks/serve.py [--work DIR] [--seconds 9] [--rounds 3] [--peers floor,ctl,mlflow,infinity]

All servers run side by side; the measurement goes in rounds (every peer at every concurrency, in turn), so
a change of load on a shared machine affects every peer alike.

Prints a Markdown table (texts/s, p50, p99) and writes ``serve-bench.json`` in the work folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controlplane.local.corpus import default_corpus  # noqa: E402

CONCURRENCY = (1, 8, 32)
MODEL = "bench-minilm"
INFINITY = "infinity-emb[server,torch]==0.0.78"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Measured:
    latencies: list[float]  # one per text
    seconds: float
    failures: int

    def add(self, other: Measured) -> Measured:
        return Measured(self.latencies + other.latencies, self.seconds + other.seconds, self.failures + other.failures)

    def summary(self) -> dict[str, float]:
        return {
            "texts_per_s": len(self.latencies) / self.seconds,
            "p50_ms": percentile(self.latencies, 50) * 1e3,
            "p99_ms": percentile(self.latencies, 99) * 1e3,
            "failures": self.failures,
        }


# ---- the floor -------------------------------------------------------------------------------


def floor(embedder: Any, concurrency: int, seconds: float) -> Measured:
    """``concurrency`` texts at a time, tokenized, length-sorted and cut as ``ctl serve`` cuts them, run
    back to back in this process: the inference cost alone, no HTTP, no queue."""
    from controlplane.serve.batcher import split_by_length

    corpus = default_corpus()
    latencies: list[float] = []
    done, i = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = [corpus[(i + k) % len(corpus)] for k in range(concurrency)]
        i += concurrency
        t0 = time.perf_counter()
        seqs = sorted(embedder.tokenize(batch).seqs, key=len)
        for part in split_by_length([len(s) for s in seqs], 16384):
            embedder.run([seqs[k] for k in part])
        latencies += [time.perf_counter() - t0] * concurrency
        done += concurrency
    return Measured(latencies, time.perf_counter() - start, 0)


# ---- closed-loop HTTP clients ------------------------------------------------------------------


async def closed_loop(url: str, body: Callable[[str], bytes], concurrency: int, seconds: float) -> Measured:
    import aiohttp

    corpus = default_corpus()
    latencies: list[float] = []
    counter = 0
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:
        for text in corpus[:4]:  # warm-up
            async with session.post(url, data=body(text)) as resp:
                await resp.read()
        start = time.perf_counter()
        end = start + seconds

        async def client(k: int) -> None:
            nonlocal counter, failures
            while time.perf_counter() < end:
                text = corpus[(counter + k) % len(corpus)]
                counter += 1
                t0 = time.perf_counter()
                async with session.post(url, data=body(text)) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures += 1
                        continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    return Measured(latencies, elapsed, failures)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class HttpPeer:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    body: Callable[[str], bytes]
    ready_s: float


def start_peer(
    name: str, argv: list[str], env: dict[str, str], ready_url: str, url: str, body: Callable[[str], bytes], log: Path
) -> HttpPeer | str:
    """The started server, or why it did not start."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent)
    try:
        return HttpPeer(name, proc, url, body, wait_http(ready_url, proc))
    except RuntimeError as exc:
        stop(proc)
        return f"{exc}: {log.read_text(errors='replace')[-300:]}"


# ---- set-up ------------------------------------------------------------------------------------


def register(work: Path, env: dict[str, str]) -> Path:
    """Register all-MiniLM-L6-v2 (fp32) once in the work folder's embedded registry; its fetched files."""
    from controlplane.models import minilm_dir

    cache = work / "home" / "cache" / "models" / MODEL / "1"
    if not cache.is_dir():
        argv = [sys.executable, "-m", "controlplane.cli.main", "register", MODEL, "--model-dir", str(minilm_dir())]
        subprocess.run(argv, env=env, check=True, capture_output=True)
        code = (
            "from controlplane.app.context import open_context; "
            f"print(open_context().registry.fetch({MODEL!r}, 1))"
        )
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return cache


PYFUNC = '''
import mlflow.pyfunc

class Encoder(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from controlplane.models.encoder import OnnxEncoder
        self.encoder = OnnxEncoder(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        texts = list(model_input.iloc[:, 0]) if hasattr(model_input, "iloc") else list(model_input)
        return self.encoder.encode(texts)
'''


def log_pyfunc(work: Path, folder: Path, env: dict[str, str]) -> str:
    marker = work / "pyfunc.uri"
    if marker.is_file():
        return marker.read_text().strip()
    (work / "bench_pyfunc.py").write_text(PYFUNC)
    code = (
        "import sys, mlflow; sys.path.insert(0, {!r}); from bench_pyfunc import Encoder\n"
        "if mlflow.get_experiment_by_name('bench-pyfunc') is None:\n"
        "    mlflow.create_experiment('bench-pyfunc', artifact_location={!r})\n"
        "mlflow.set_experiment('bench-pyfunc')\n"
        "info = mlflow.pyfunc.log_model(name='model', python_model=Encoder(), artifacts={{'model_dir': {!r}}},"
        " code_paths=[{!r}], registered_model_name='bench-minilm-pyfunc', pip_requirements=['onnxruntime'])\n"
        "print('models:/bench-minilm-pyfunc/' + str(info.registered_model_version))"
    ).format(str(work), (work / "pyfunc-artifacts").as_uri(), str(folder), str(work / "bench_pyfunc.py"))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True, cwd=work)
    uri = out.stdout.strip().splitlines()[-1]
    marker.write_text(uri)
    return uri


def infinity_python(work: Path) -> Path | None:
    venv = work / "infinity-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "infinity_emb").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        got = subprocess.run([str(python), "-m", "pip", "install", "-q", INFINITY], capture_output=True, text=True)
        if got.returncode != 0:
            return None
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".controlplane" / "bench-serve")
    parser.add_argument("--seconds", type=float, default=9.0, help="per peer and concurrency, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", default="floor,ctl,mlflow,infinity")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    peers = args.peers.split(",")
    env = {**os.environ, "CONTROLPLANE_HOME": str(work / "home"), "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MODEL_URI", "MODEL_ROLE"):
        env.pop(key, None)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'home' / 'mlflow.db'}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # mlflow models serve runs `uvicorn`
    folder = register(work, env)
    results: dict[str, Any] = {}
    started: list[HttpPeer] = []
    try:
        if "ctl" in peers:
            port = free_port()
            got = start_peer(
                "ctl serve",
                [sys.executable, "-m", "controlplane.cli.main", "serve", f"models:/{MODEL}/1", "--host", "127.0.0.1",
                 "--port", str(port)],
                env, f"http://127.0.0.1:{port}/v2/health/ready", f"http://127.0.0.1:{port}/v1/embeddings",
                lambda t: json.dumps({"input": t}).encode(), work / "ctl-serve.log",
            )  # fmt: skip
            keep(results, started, "ctl serve", got)
        if "mlflow" in peers:
            uri = log_pyfunc(work, folder, env)
            port = free_port()
            got = start_peer(
                "mlflow",
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(port)],
                env, f"http://127.0.0.1:{port}/ping", f"http://127.0.0.1:{port}/invocations",
                lambda t: json.dumps({"inputs": [t]}).encode(), work / "mlflow-serve.log",
            )  # fmt: skip
            keep(results, started, "mlflow models serve (pyfunc)", got)
        if "infinity" in peers:
            python = infinity_python(work)
            if python is None:
                results["infinity-emb"] = {"error": f"pip install {INFINITY} failed in {work / 'infinity-venv'}"}
            else:
                from controlplane.models import minilm_dir

                port = free_port()
                ienv = {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0",
                        "DO_NOT_TRACK": "1"}  # fmt: skip
                got = start_peer(
                    "infinity",
                    [str(python.parent / "infinity_emb"), "v2", "--model-id", str(minilm_dir()), "--served-model-name",
                     MODEL, "--engine", "torch", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
                    ienv, f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{port}/embeddings",
                    lambda t: json.dumps({"model": MODEL, "input": [t]}).encode(), work / "infinity.log",
                )  # fmt: skip
                keep(results, started, "infinity-emb", got)
        embedder = None
        if "floor" in peers:
            from controlplane.models.encoder import OnnxEncoder
            from controlplane.serve.inference import Embedder

            embedder = Embedder(OnnxEncoder(folder))
            embedder.warm_up()
        # Rounds: every peer at every concurrency in turn, so a load change on a shared machine hits all alike.
        measured: dict[tuple[str, int], Measured] = {}
        slice_s = args.seconds / args.rounds
        for _ in range(args.rounds):
            for c in CONCURRENCY:
                if embedder is not None:
                    add(measured, (FLOOR, c), floor(embedder, c, slice_s))
                for peer in started:
                    add(measured, (peer.name, c), asyncio.run(closed_loop(peer.url, peer.body, c, slice_s)))
        if embedder is not None:
            results[FLOOR] = {"rows": {c: measured[FLOOR, c].summary() for c in CONCURRENCY}}
        for peer in started:
            results[peer.name] = {"ready_s": peer.ready_s, "rows": {c: measured[peer.name, c].summary() for c in CONCURRENCY}}
    finally:
        for peer in started:
            stop(peer.proc)
    order = [FLOOR, "ctl serve", "mlflow models serve (pyfunc)", "infinity-emb"]
    results = {k: results[k] for k in sorted(results, key=order.index)}
    (work / "serve-bench.json").write_text(json.dumps(results, indent=2, default=str))
    print_table(results)


FLOOR = "floor (onnxruntime in-process, ideal batches)"


def keep(results: dict[str, Any], started: list[HttpPeer], name: str, got: HttpPeer | str) -> None:
    if isinstance(got, str):
        results[name] = {"error": got}
    else:
        got.name = name
        started.append(got)


def add(measured: dict[tuple[str, int], Measured], key: tuple[str, int], more: Measured) -> None:
    measured[key] = measured[key].add(more) if key in measured else more


def print_table(results: dict[str, Any]) -> None:
    print(f"| server | ready (s) | {' | '.join(f'c={c} texts/s | c={c} p50 ms | c={c} p99 ms' for c in CONCURRENCY)} |")
    print("|---|---|" + "---|" * (3 * len(CONCURRENCY)))
    for name, result in results.items():
        if "error" in result:
            print(f"| {name} | failed: {result['error'].splitlines()[0]} |")
            continue
        ready = f"{result['ready_s']:.1f}" if "ready_s" in result else ""
        cells = []
        for c in CONCURRENCY:
            row = result["rows"][c]
            cells += [f"{row['texts_per_s']:.0f}", f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}"]
        print(f"| {name} | {ready} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
