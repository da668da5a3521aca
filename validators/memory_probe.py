"""Peak-memory probes for long-seq-memory: one forward pass at (batch, seq_len), measured in isolation.

CPU: each probe is a fresh child process (``python -m validators.memory_probe``) that builds the
onnxruntime session exactly as the serving encoder does (default CPU arena) and runs one batch of
``batch x seq_len`` tokens; its peak RSS is the child's own ``VmHWM`` (``ru_maxrss`` would also count the
parent's image copied before ``exec``), so model load, runtime and arena growth are all counted and
nothing leaks between probes. The parent
watches the child's RSS and kills it above ``kill_above`` bytes (outcome ``over-budget``); a child
killed by the kernel's OOM killer is ``oom``. Nothing the child does can crash the caller.

CUDA: the Hugging Face weights run in torch in this process; the peak is
``torch.cuda.max_memory_reserved()`` after ``reset_peak_memory_stats()`` (reserved, not allocated:
the caching allocator's blocks are what the device actually gives up) plus the device memory torch's
allocator does not see (CUDA context, other processes: ``total - free - reserved`` when the prober
starts); ``OutOfMemoryError`` is caught and reported as ``oom``; the cache is emptied after every probe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

POLL_S = 0.02
TOKEN_LOW, TOKEN_HIGH = 1000, 2000  # ordinary word pieces; ids stay below any real vocabulary


@dataclass(frozen=True)
class Probe:
    batch: int
    seq_len: int
    peak_bytes: float  # nan unless outcome == "ok"
    seconds: float
    outcome: str  # ok | over-budget | oom | error
    message: str = ""
    purpose: str = ""  # fit | declared | verify
    loaded_bytes: float = float("nan")  # peak once the model was loaded, before the forward pass

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_batch(batch: int, seq_len: int, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    high = max(2, min(TOKEN_HIGH, vocab))
    low = min(TOKEN_LOW, high - 1)
    ids = (np.arange(batch * seq_len, dtype=np.int64).reshape(batch, seq_len) % (high - low)) + low
    return ids, np.ones_like(ids)


def _status_bytes(pid: int | str, field: str) -> int:
    """``VmRSS``/``VmHWM`` of a process from /proc, in bytes (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def cpu_probe(onnx_path: Path, batch: int, seq_len: int, vocab: int, *, kill_above: float | None,
              timeout_s: float, purpose: str = "") -> Probe:
    """Peak RSS of a fresh child process running one (batch, seq_len) forward pass."""
    cmd = [sys.executable, "-m", "validators.memory_probe", str(onnx_path), str(batch), str(seq_len), str(vocab)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    killed = ""
    status = 0
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if kill_above is not None and _status_bytes(proc.pid, "VmRSS") > kill_above:
            killed = "over-budget"
        elif time.monotonic() - start > timeout_s:
            killed = "timeout"
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, _ = os.wait4(proc.pid, 0)
            break
        time.sleep(POLL_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    seconds = time.monotonic() - start
    if killed == "over-budget":
        return Probe(batch, seq_len, float("nan"), seconds, "over-budget", f"RSS passed {kill_above:.0f} bytes", purpose)
    if killed:
        return Probe(batch, seq_len, float("nan"), seconds, "error", f"no result within {timeout_s:.0f} s", purpose)
    if proc.returncode == -signal.SIGKILL or "bad_alloc" in err or "MemoryError" in err:
        return Probe(batch, seq_len, float("nan"), seconds, "oom", "killed for memory", purpose)
    if proc.returncode != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return Probe(batch, seq_len, float("nan"), seconds, "error", f"exit {proc.returncode}: {last[:200]}", purpose)
    try:
        data = json.loads(out.strip().splitlines()[-1])
        peak, loaded = float(data["peak_bytes"]), float(data["loaded_bytes"])
    except (ValueError, IndexError, KeyError, TypeError):
        return Probe(batch, seq_len, float("nan"), seconds, "error", "probe printed no result", purpose)
    return Probe(batch, seq_len, peak, seconds, "ok", "", purpose, loaded)


class CudaProber:
    """Probes on one CUDA device with the torch model; never raises for out-of-memory."""

    def __init__(self, model_dir: Path, device: str, half: bool) -> None:
        import torch

        from controlplane.models.export import load_torch_model

        self.torch = torch
        self.device = torch.device(device)
        model = load_torch_model(model_dir)
        self.model = (model.half() if half else model).to(self.device).eval()
        free, total = torch.cuda.mem_get_info(self.device)
        self.outside = float(total - free - torch.cuda.memory_reserved(self.device))  # context, other processes

    def total_bytes(self) -> int:
        return int(self.torch.cuda.get_device_properties(self.device).total_memory)

    def probe(self, batch: int, seq_len: int, vocab: int, purpose: str = "") -> Probe:
        torch = self.torch
        ids_np, mask_np = token_batch(batch, seq_len, vocab)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        loaded = float(torch.cuda.memory_reserved(self.device)) + self.outside
        start = time.monotonic()
        try:
            ids, mask = torch.from_numpy(ids_np).to(self.device), torch.from_numpy(mask_np).to(self.device)
            with torch.inference_mode():
                self.model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
            torch.cuda.synchronize(self.device)
            peak = float(torch.cuda.max_memory_reserved(self.device)) + self.outside
            return Probe(batch, seq_len, peak, time.monotonic() - start, "ok", "", purpose, loaded)
        except torch.cuda.OutOfMemoryError:
            return Probe(batch, seq_len, float("nan"), time.monotonic() - start, "oom", "CUDA out of memory", purpose)
        except RuntimeError as exc:  # e.g. cuBLAS allocation failures surface as RuntimeError
            kind = "oom" if "out of memory" in str(exc).lower() else "error"
            return Probe(batch, seq_len, float("nan"), time.monotonic() - start, kind, str(exc)[:200], purpose)
        finally:
            ids = mask = None
            torch.cuda.empty_cache()


def _child(argv: list[str]) -> int:
    """Child entry: build the serving session, run one batch, print the peak RSS as JSON."""
    from controlplane.models.encoder import make_session

    onnx_path, batch, seq_len, vocab = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    session = make_session(onnx_path)
    loaded = _status_bytes("self", "VmHWM")
    names = {i.name for i in session.get_inputs()}
    ids, mask = token_batch(batch, seq_len, vocab)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    session.run(None, feeds)
    peak = _status_bytes("self", "VmHWM")
    print(json.dumps({"batch": batch, "seq_len": seq_len, "peak_bytes": peak, "loaded_bytes": loaded}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
