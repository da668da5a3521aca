"""Benchmark: the four validators on all-MiniLM-L6-v2 (CPU) against their floor, in one run.

    .venv/bin/python benchmarks/validators.py [--json]

The candidate is the per-channel int8 export (what ``ctl register --quantize int8`` makes) and the
baseline/fp32 source the fp32 export, so every check does its real work. Two fresh child processes,
one after the other, after the model files were read once (warm page cache for both):

* **suite**: each check's ``check()`` (through ``validators.runner.run_one`` when it exists), as
  ``ctl validate`` runs them;
* **floor**: only the tokenizations and forward passes those checks need, with none of the checks'
  logic: both tokenizers on the adversarial corpus (tokenizer-parity); both models' hidden states on
  the quantization corpus (quantization-accuracy); both attention-probability graphs on the probe
  corpus (head-collapse); one in-process session at each (batch, seq_len) the memory check probed
  (long-seq-memory, shapes taken from the suite's run).

Each child times its work (wall clock, and CPU seconds of itself and its children, which a shared
machine disturbs less) after the imports both share (numpy, onnxruntime, tokenizers) and reports
its own peak RSS (``VmHWM``). long-seq-memory's probes run in grandchildren of the suite, so the suite
also reports its process tree's peak (its RSS plus its children's, sampled every 50 ms). ``--repeat N``
alternates suite and floor N times and keeps each side's fastest run (the machine may be shared).
Checks whose modules are missing are named and left out of both sides.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path and its name would shadow the package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

CHECKS = {
    "tokenizer-parity": "validators.tokenizer_parity",
    "quantization-accuracy": "validators.quantization_accuracy",
    "head-collapse": "validators.head_collapse",
    "long-seq-memory": "validators.long_seq_memory",
}
MIB = float(1 << 20)


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its waited-for children: robust to a shared machine."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _hwm() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024.0
    return float("nan")


class TreeSampler:
    """Samples this process's RSS plus its children's every few ms: the process tree's peak, which
    VmHWM alone misses when work runs in child processes (long-seq-memory's probes)."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    @staticmethod
    def _rss(pid: str) -> float:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024.0
        except OSError:
            pass
        return 0.0

    def _children(self) -> list[str]:
        pids: list[str] = []
        for task in Path("/proc/self/task").iterdir():
            try:
                pids += (task / "children").read_text().split()
            except OSError:
                continue
        return pids

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            total = self._rss("self") + sum(self._rss(pid) for pid in self._children())
            self.peak = max(self.peak, total)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _available() -> tuple[dict[str, str], list[str]]:
    present, missing = {}, []
    for name, module in CHECKS.items():
        try:
            importlib.import_module(module)
            present[name] = module
        except ModuleNotFoundError:
            missing.append(name)
    return present, missing


def _models() -> tuple[Any, Any]:
    from tests.validators import partb_models

    return partb_models.quantized("int8-per-channel"), partb_models.healthy()


def _common_imports() -> None:
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401
    import tokenizers  # noqa: F401

    import controlplane.models.encoder  # noqa: F401


def run_suite(workdir: Path) -> dict[str, Any]:
    _common_imports()
    candidate, baseline = _models()
    present, _ = _available()
    start, cpu = time.perf_counter(), _cpu()
    from validators.settings import Settings

    try:
        from validators.runner import run_one
    except ImportError:
        run_one = None
    settings, results = Settings(), {}
    sampler = TreeSampler().__enter__()
    for name, module in present.items():
        t0, c0 = time.perf_counter(), _cpu()
        if run_one is not None:
            result = run_one(name, candidate, baseline, settings, "cpu", workdir / name)
        else:
            result = importlib.import_module(module).check(candidate, baseline, settings, device="cpu",
                                                           workdir=workdir / name)
        results[name] = {"status": str(result.status), "seconds": time.perf_counter() - t0, "cpu": _cpu() - c0,
                         "findings": result.findings[:2]}
        if name == "long-seq-memory":
            probes = result.details.get("probes", [])
            results[name]["shapes"] = [[p["batch"], p["seq_len"]] for p in probes]
            results[name]["probe_peaks"] = [p["peak_bytes"] for p in probes]
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    sampler.__exit__()
    return {"wall": wall, "cpu": cpu, "peak": _hwm(), "tree_peak": max(sampler.peak, _hwm()), "checks": results}


def run_floor(shapes: list[list[int]]) -> dict[str, Any]:
    _common_imports()
    candidate, baseline = _models()
    present, _ = _available()
    start, cpu = time.perf_counter(), _cpu()
    from controlplane.models.encoder import load_tokenizer, make_session, tokenize
    from controlplane.models.hf import architecture_from_config, read_json

    parts: dict[str, float] = {}
    cpu_parts: dict[str, float] = {}
    arch = architecture_from_config(read_json(candidate.model_dir / "config.json", "config"))
    if "tokenizer-parity" in present:
        t0, c0 = time.perf_counter(), _cpu()
        from validators.corpus import ADVERSARIAL

        texts = [t for _, t in ADVERSARIAL]
        for model in (candidate, baseline):
            load_tokenizer(model.model_dir / "tokenizer.json").encode_batch(texts)
        parts["tokenizer-parity"], cpu_parts["tokenizer-parity"] = time.perf_counter() - t0, _cpu() - c0
    if "quantization-accuracy" in present:
        t0, c0 = time.perf_counter(), _cpu()
        from validators.quantization_accuracy import BATCH, BUILTIN_CORPUS, read_corpus
        from validators.settings import QuantizationSettings

        texts = read_corpus(BUILTIN_CORPUS)
        tok = load_tokenizer(candidate.model_dir / "tokenizer.json", QuantizationSettings().max_length)
        sessions = [make_session(m.onnx_path) for m in (candidate, baseline)]
        ordered = sorted(texts, key=len)
        for i in range(0, len(ordered), BATCH):
            ids, mask = tokenize(tok, ordered[i : i + BATCH])
            for session in sessions:
                session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
        del sessions
        parts["quantization-accuracy"], cpu_parts["quantization-accuracy"] = time.perf_counter() - t0, _cpu() - c0
    if "head-collapse" in present:
        t0, c0 = time.perf_counter(), _cpu()
        import onnxruntime as ort

        from controlplane.models.onnx_graph import attention_graph
        from validators.corpus import PROBE
        from validators.settings import HeadCollapseSettings

        max_tokens = min(getattr(HeadCollapseSettings(), "max_probe_tokens", 128), arch.max_positions)
        ids, mask = tokenize(load_tokenizer(candidate.model_dir / "tokenizer.json", max_tokens), list(PROBE))
        for model in (candidate, baseline):
            data, probs, contexts = attention_graph(model.onnx_path, arch.layers)
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            session.run(probs + contexts, {"input_ids": ids, "attention_mask": mask})
            del session, data
        parts["head-collapse"], cpu_parts["head-collapse"] = time.perf_counter() - t0, _cpu() - c0
    if "long-seq-memory" in present and shapes:
        t0, c0 = time.perf_counter(), _cpu()
        from validators.memory_probe import token_batch

        session = make_session(candidate.onnx_path)
        for batch, seq in shapes:
            ids, mask = token_batch(batch, seq, arch.vocab_size)
            session.run(None, {"input_ids": ids, "attention_mask": mask})
        del session
        parts["long-seq-memory"], cpu_parts["long-seq-memory"] = time.perf_counter() - t0, _cpu() - c0
    return {"wall": time.perf_counter() - start, "cpu": _cpu() - cpu, "peak": _hwm(), "parts": parts,
            "cpu_parts": cpu_parts}


def _child(part: str, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--part", part, *extra],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"benchmark {part} process failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "suite", "floor"), default="all")
    parser.add_argument("--shapes", default="[]", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--repeat", type=int, default=1, help="alternate suite and floor N times; keep the fastest")
    args = parser.parse_args(argv)
    if args.part == "suite":
        with tempfile.TemporaryDirectory(prefix="bench-validators-") as tmp:
            print(json.dumps(run_suite(Path(tmp))))
        return 0
    if args.part == "floor":
        print(json.dumps(run_floor(json.loads(args.shapes))))
        return 0

    _, missing = _available()
    candidate, baseline = _models()  # build (or reuse) the cached artifacts outside the measurements
    for model in (candidate, baseline):
        for path in [model.onnx_path, *model.model_dir.glob("*.json")]:
            path.read_bytes()  # warm page cache, identically for both sides
    suites, floors = [], []
    for _ in range(max(1, args.repeat)):
        suites.append(_child("suite", []))
        shapes = suites[0]["checks"].get("long-seq-memory", {}).get("shapes", [])
        floors.append(_child("floor", ["--shapes", json.dumps(shapes)]))
    suite, floor = min(suites, key=lambda r: r["wall"]), min(floors, key=lambda r: r["wall"])
    suite_walls, floor_walls = [round(r["wall"], 2) for r in suites], [round(r["wall"], 2) for r in floors]
    probe_peak = max((p for p in suite["checks"].get("long-seq-memory", {}).get("probe_peaks", [])
                      if isinstance(p, float) and p == p), default=0.0)
    figures = {
        "candidate": candidate.ref, "baseline": baseline.ref, "missing_checks": missing,
        "suite_seconds": suite["wall"], "floor_seconds": floor["wall"],
        "suite_peak_rss_mib": suite["peak"] / MIB, "floor_peak_rss_mib": floor["peak"] / MIB,
        "probe_child_peak_rss_mib": probe_peak / MIB, "suite_tree_peak_rss_mib": suite["tree_peak"] / MIB,
        "suite_cpu_seconds": suite["cpu"], "floor_cpu_seconds": floor["cpu"],
        "time_ratio": suite["wall"] / floor["wall"], "cpu_ratio": suite["cpu"] / floor["cpu"],
        "memory_ratio": suite["peak"] / floor["peak"],
        "tree_memory_ratio": suite["tree_peak"] / floor["peak"],
        "checks": suite["checks"], "floor_parts": floor["parts"],
        "suite_runs_seconds": suite_walls, "floor_runs_seconds": floor_walls,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"validators on all-MiniLM-L6-v2, CPU: candidate {candidate.ref} (int8 per-channel), "
          f"baseline {baseline.ref} (fp32)")
    if missing:
        print(f"missing check modules (left out of suite and floor): {', '.join(missing)}")
    print(f"{'check':24} {'status':8} {'suite s':>8} {'floor s':>8} {'suite cpu':>10} {'floor cpu':>10}")
    for name, info in suite["checks"].items():
        print(f"{name:24} {info['status']:8} {info['seconds']:8.2f} {floor['parts'].get(name, float('nan')):8.2f}"
              f" {info['cpu']:10.2f} {floor['cpu_parts'].get(name, float('nan')):10.2f}")
    print(f"{'suite':24} {'':8} wall {suite['wall']:7.2f} s   cpu {suite['cpu']:7.2f} s"
          f"   peak RSS {suite['peak'] / MIB:7.1f} MiB   (process tree, sampled: {suite['tree_peak'] / MIB:.1f} MiB;"
          f" largest probe child {probe_peak / MIB:.1f} MiB)")
    print(f"{'floor':24} {'':8} wall {floor['wall']:7.2f} s   cpu {floor['cpu']:7.2f} s"
          f"   peak RSS {floor['peak'] / MIB:7.1f} MiB")
    if len(suites) > 1:
        print(f"{'runs (fastest kept)':24} {'':8} suite {suite_walls} s, floor {floor_walls} s")
    print(f"{'ratio (goal <= 1.5)':24} {'':8} time {figures['time_ratio']:6.2f}x   cpu {figures['cpu_ratio']:5.2f}x   "
          f"memory {figures['memory_ratio']:6.2f}x"
          f"   (process tree {figures['tree_memory_ratio']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
