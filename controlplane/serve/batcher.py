"""Micro-batching with backpressure.

Requests (already tokenized) join one queue. A single worker takes the first waiting request, then
gathers more for at most ``max_wait_s`` (and only while other requests are still being received, so a
lone request never waits) or until ``max_batch_tokens`` tokens are waiting, sorts the
gathered texts by length and runs them in batches of similar lengths (``split_by_length``) of at most
``max_batch_tokens`` padded tokens (texts x longest), on one inference thread. While a batch runs, the
next one gathers. The queue is bounded in texts: ``submit`` raises ``QueueFull`` instead of letting
memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from controlplane.serving_metrics import ServerMetrics

RunBatch = Callable[[Sequence[Sequence[int]]], np.ndarray]
PAD_RATIO = 1.5
PAD_SLACK = 8


class QueueFull(Exception):
    """More texts are waiting than the queue holds."""


@dataclass
class _Job:
    seqs: list[list[int]]
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self,
        run: RunBatch,
        metrics: ServerMetrics,
        max_batch_tokens: int,
        max_wait_s: float,
        max_queue_texts: int,
        arriving: Callable[[], int] = lambda: 0,
    ) -> None:
        self._run = run
        self._arriving = arriving  # requests being received or tokenized: worth waiting for
        self._metrics = metrics
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.max_queue_texts = max_queue_texts
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._pending = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    def submit(self, seqs: list[list[int]]) -> asyncio.Future[np.ndarray]:
        """A future of ``[len(seqs), dim]`` embeddings; QueueFull when the queue has no room."""
        if self._pending + len(seqs) > self.max_queue_texts:
            raise QueueFull(f"{self._pending} texts already queued (limit {self.max_queue_texts})")
        job = _Job(seqs, asyncio.get_running_loop().create_future())
        self._pending += len(seqs)
        self._metrics.queued.set(self._pending)
        self._jobs.put_nowait(job)
        return job.future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather(loop)
            self._pending -= sum(len(j.seqs) for j in jobs)
            self._metrics.queued.set(self._pending)
            now = time.perf_counter()
            for job in jobs:
                self._metrics.queue_wait.observe(now - job.queued_at)
            results = await loop.run_in_executor(self._executor, self._run_jobs, jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Job]:
        jobs = [await self._jobs.get()]
        tokens = sum(len(s) for s in jobs[0].seqs)
        deadline = loop.time() + self.max_wait_s
        while tokens < self.max_batch_tokens:
            try:
                job = self._jobs.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0 or not self._arriving():  # nothing on its way: run now
                    break
                try:
                    job = await asyncio.wait_for(self._jobs.get(), remaining)
                except TimeoutError:
                    break
            jobs.append(job)
            tokens += sum(len(s) for s in job.seqs)
        return jobs

    def _run_jobs(self, jobs: list[_Job]) -> list[np.ndarray | BaseException]:
        """On the inference thread: every text of ``jobs``, sorted by length, in token-bounded batches."""
        texts = [(len(seq), j, i) for j, job in enumerate(jobs) for i, seq in enumerate(job.seqs)]
        texts.sort(key=lambda t: t[0])
        outputs: list[np.ndarray | None] = [None] * len(jobs)
        failed: dict[int, BaseException] = {}
        for batch in self._split(texts):
            try:
                vectors = self._run([jobs[j].seqs[i] for _, j, i in batch])
            except Exception as exc:
                for _, j, _ in batch:
                    failed.setdefault(j, exc)
                continue
            self._metrics.batch.observe(len(batch))
            for row, (_, j, i) in enumerate(batch):
                if outputs[j] is None:
                    outputs[j] = np.empty((len(jobs[j].seqs), vectors.shape[1]), dtype=np.float32)
                outputs[j][i] = vectors[row]  # type: ignore[index]
        return [failed.get(j) or outputs[j] for j in range(len(jobs))]  # type: ignore[misc]

    def _split(self, texts: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
        return [[texts[k] for k in batch] for batch in split_by_length([t[0] for t in texts], self.max_batch_tokens)]


def split_by_length(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices of ascending ``lengths`` cut into consecutive batches: each stays within ``max_tokens`` padded
    tokens (texts x longest), and a batch's longest text is at most ``PAD_RATIO`` x its shortest + ``PAD_SLACK``
    tokens, so padding stays small (a 10-token query is not padded to a 128-token passage)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for k, length in enumerate(lengths):  # ascending: the newest text is the batch's longest
        if current and (
            (len(current) + 1) * length > max_tokens or length > PAD_RATIO * lengths[current[0]] + PAD_SLACK
        ):
            batches.append(current)
            current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches
