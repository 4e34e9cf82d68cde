"""Micro-batching: many small requests, one model, large forward passes.

Like text-embeddings-inference's queue: each request puts its texts on a bounded queue and
awaits a future. A free worker thread takes its share of what is queued (all of it when the
other workers are busy, half when one other is idle), tokenizes it in one call, and packs the
texts length-sorted into forward batches bounded by the token budget (the same planner and
forward as ``textgate.infer``; padding-free for BERT classifiers, see ``textgate.infer.packed``).
``workers`` threads (default 2, see :func:`split_threads`) share the queue; forward passes only
read the weights, so they may run at once, while tokenizing (the fast tokenizer re-applies its
settings on each call) and the shadow take turns. While another worker is busy, a free one
first waits up to ``gather_ms`` for ``gather_texts`` texts, because a 1-text pass costs 1.6x a
16-text pass per text (benchmarks/packed_batch_size.py). A request's future is resolved as soon
as its last row is done, so a short request need not wait for a long neighbour's last batch.
With one request in flight and the workers idle there is no added delay at all.

A full queue (``max_queue_texts`` texts waiting) raises :class:`QueueFull` at once; the HTTP
layer turns it into 503 with ``Retry-After``. A shadow model, if any, runs on the same texts
after the primary's rows are resolved, so it never delays or changes a response; its errors
are counted, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textgate.errors import BatcherClosed, QueueFull, TextgateError
from textgate.model import Classifier

__all__ = ["Batcher", "BatcherClosed", "QueueFull", "ShadowOutput", "TextsResult", "split_threads", "worker_cores"]

logger = logging.getLogger(__name__)

TOKENIZERS_PARALLELISM = "TOKENIZERS_PARALLELISM"
_NOT_SAVED = object()  # close() without start(): leave the environment alone


@dataclass(frozen=True)
class ShadowOutput:
    """The shadow model's output for one request's texts, in request order."""

    labels: list[str]
    probabilities: np.ndarray  # (n, K_shadow) float32, columns in the shadow's label order
    token_counts: np.ndarray  # (n,) tokens after truncation
    truncated: np.ndarray  # (n,) bool


@dataclass(frozen=True)
class TextsResult:
    """The model's output for one request's texts, in request order."""

    probabilities: np.ndarray  # (n, K) float32
    token_counts: np.ndarray  # (n,) tokens after truncation
    truncated: np.ndarray  # (n,) bool
    shadow: asyncio.Future | None = None  # resolves to the shadow's ShadowOutput, or None on error


@dataclass(eq=False)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future
    shadow: asyncio.Future | None
    start: int = 0  # offset of the job's rows in the cycle
    remaining: int = 0
    error: BaseException | None = None
    rows: np.ndarray | None = field(default=None, repr=False)


class Batcher:
    """Queue + inference worker threads for one classifier (and an optional shadow)."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        token_budget: int,
        max_queue_texts: int,
        shadow: Classifier | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
        on_shadow: Callable[[Sequence[str], Sequence[str]], None] | None = None,
        on_shadow_error: Callable[[], None] | None = None,
        workers: int = 1,
        torch_threads: int | None = None,
        worker_cores: Sequence[Sequence[int]] | None = None,
        gather_ms: float = 0.0,
        gather_texts: int = 16,
    ):
        """Batches run padding-free (textgate.infer.packed) whenever the classifier supports it;
        ``token_budget`` then bounds real tokens, not padded ones. ``workers``: inference threads taking turns at the queue; ``torch_threads``: torch's
        thread count while the batcher runs (restored by :meth:`close`); see :func:`split_threads`.
        ``worker_cores``: CPU cores each worker thread is pinned to (see :func:`worker_cores`).
        ``gather_ms``/``gather_texts``: how long a free worker waits for a fuller batch while
        another worker is busy (0: never waits)."""
        from textgate.infer.batches import can_pack

        for name, value in (("token_budget", token_budget), ("max_queue_texts", max_queue_texts),
                            ("workers", workers), ("gather_texts", gather_texts)):
            if value < 1:
                raise ValueError(f"Batcher {name} must be >= 1. Got {value}.")
        if gather_ms < 0:
            raise ValueError(f"Batcher gather_ms must be >= 0 (0: never wait for a fuller batch). Got {gather_ms}.")
        if worker_cores is not None and len(worker_cores) != workers:
            raise ValueError(f"worker_cores names {len(worker_cores)} core sets for {workers} workers")
        self.classifier, self.shadow = classifier, shadow
        self.token_budget, self.max_queue_texts = token_budget, max_queue_texts
        self.on_batch, self.on_queue_depth = on_batch, on_queue_depth
        self.on_shadow, self.on_shadow_error = on_shadow, on_shadow_error
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0
        self._wakeup: asyncio.Event | None = None
        self.workers, self.torch_threads = workers, torch_threads
        self._threads_before: int | None = None
        self._worker_tasks: list[asyncio.Task] = []
        # A queue that cannot hold gather_texts would make a free worker always wait the window out.
        self.gather_s, self.gather_texts = gather_ms / 1000, min(gather_texts, max_queue_texts)
        self.worker_cores = [list(cores) for cores in worker_cores] if worker_cores else None
        self._worker_index = itertools.count()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="textgate-infer",
                                            initializer=self._pin_thread)
        # A fast tokenizer is not safe to call from two threads at once (it re-applies its
        # truncation settings on each call), so tokenizing takes turns; forward passes do not.
        self._tokenize_lock = threading.Lock()
        self._shadow_lock = threading.Lock()
        self._closing = False
        self._busy = 0  # workers running a cycle
        self._handoff = False  # the last worker to take left texts behind for an idle one
        self._parallelism_before: str | None | object = _NOT_SAVED
        self.packed = can_pack(classifier)

    # -- lifecycle (call from the event loop) ---------------------------------------------

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        if self.torch_threads is not None:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.torch_threads)
        # The Rust tokenizer's own thread pool only competes with the workers for the cores:
        # tokenizing takes turns anyway and micro-batches are small.
        if self._parallelism_before is _NOT_SAVED:
            self._parallelism_before = os.environ.get(TOKENIZERS_PARALLELISM)
        os.environ[TOKENIZERS_PARALLELISM] = "false"
        loop = asyncio.get_running_loop()
        self._worker_tasks = [loop.create_task(self._work(), name=f"textgate-batcher-{i}")
                              for i in range(self.workers)]

    async def close(self) -> None:
        """Take no new work, finish what is queued, stop the worker threads."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker_tasks:
            await asyncio.gather(*self._worker_tasks)
        self._executor.shutdown(wait=True)
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)
        if self._parallelism_before is None:
            os.environ.pop(TOKENIZERS_PARALLELISM, None)
        elif self._parallelism_before is not _NOT_SAVED:
            os.environ[TOKENIZERS_PARALLELISM] = self._parallelism_before
        self._parallelism_before = _NOT_SAVED

    @property
    def queue_depth(self) -> int:
        """Texts waiting for a worker (not counting the batches being run)."""
        return self._queued_texts

    # -- request path ---------------------------------------------------------------------

    async def submit(self, texts: Sequence[str]) -> TextsResult:
        """Queue ``texts`` and wait for their rows. Raises QueueFull at once when full.

        Cancelling the wait (a request timeout) removes the texts from the queue if the
        worker has not taken them yet."""
        if self._closing or not self._worker_tasks:
            raise BatcherClosed("The server is shutting down; retry on another instance.")
        if self._queued_texts + len(texts) > self.max_queue_texts:
            raise QueueFull(f"The queue holds {self._queued_texts} texts and takes at most "
                            f"{self.max_queue_texts}; retry in a moment.")
        loop = asyncio.get_running_loop()
        job = _Job(list(texts), loop.create_future(), loop.create_future() if self.shadow else None)
        self._queue.append(job)
        self._set_depth(self._queued_texts + len(texts))
        self._wakeup.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            if job in self._queue:
                self._queue.remove(job)
                self._set_depth(self._queued_texts - len(job.texts))
            raise

    def _set_depth(self, depth: int) -> None:
        self._queued_texts = depth
        if self.on_queue_depth is not None:
            self.on_queue_depth(depth)

    # -- worker ---------------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._closing and not self._queue:
                self._wakeup.set()  # let the other workers see it too
                return
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._queue:
                continue
            await self._gather()
            if not self._queue:
                continue
            jobs = self._take_share()
            self._busy += 1
            if self._queue:
                self._wakeup.set()  # an idle worker takes the rest
            try:
                await loop.run_in_executor(self._executor, self._run_cycle, jobs, loop)
            except Exception as exc:  # noqa: BLE001 - a bug in the cycle itself: fail its requests, keep serving
                logger.error("inference cycle failed: %s: %s", type(exc).__name__, exc)
                for job in jobs:
                    _resolve(job.future, error=exc)
                    if job.shadow is not None:
                        _resolve(job.shadow, value=None)
            finally:
                self._busy -= 1
            if self._queue:
                self._wakeup.set()

    async def _gather(self) -> None:
        """While another worker is busy, wait up to ``gather_s`` for ``gather_texts`` texts:
        under load, requests arrive in bursts as a pass finishes, and a free worker that takes
        the first one alone runs a 1-text pass. Texts that a worker left for an idle one
        (``_handoff``) and a batcher with every worker idle never wait."""
        deadline = time.perf_counter() + self.gather_s
        while (self._busy and not self._handoff and not self._closing
               and self._queued_texts < self.gather_texts):
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)

    def _take_share(self) -> list[_Job]:
        """Whole jobs, at least this worker's share of the queued texts: all of them when the
        other workers are busy, half when one other is idle, and so on."""
        share = -(-self._queued_texts // (self.workers - self._busy))
        jobs: list[_Job] = []
        taken = 0
        while self._queue and (not jobs or taken < share):
            job = self._queue.popleft()
            jobs.append(job)
            taken += len(job.texts)
        self._set_depth(self._queued_texts - taken)
        self._handoff = bool(self._queue)  # the rest is an idle worker's share: it must not wait
        return jobs

    def _pin_thread(self) -> None:
        """Executor initializer: pin this worker thread to its cores, so that two busy workers
        stay on separate cores instead of queueing behind each other on one."""
        index = next(self._worker_index)
        if self.worker_cores is not None and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):  # a cpuset changed under us: run unpinned
                os.sched_setaffinity(threading.get_native_id(), self.worker_cores[index % len(self.worker_cores)])

    def _run_cycle(self, jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: every queued text of ``jobs`` through the model, then the shadow."""
        from textgate.infer.batches import (
            check_lengths,
            encode,
            plan_batches,
            plan_packed_batches,
            run_batch,
        )

        jobs = [job for job in jobs if not job.future.done()]  # timed out while queued
        texts = [text for job in jobs for text in job.texts]
        classifier = self.classifier
        with self._tokenize_lock:
            encoded, lengths, truncated = encode(classifier, texts)
        owner = np.empty(len(texts), dtype=np.int64)
        start = 0
        for j, job in enumerate(jobs):
            job.start, job.remaining = start, len(job.texts)
            owner[start : start + len(job.texts)] = j
            try:  # truncation = false and a text too long: only that request fails
                check_lengths(classifier, lengths[start : start + len(job.texts)])
            except TextgateError as exc:
                job.error, job.remaining = exc, 0
                loop.call_soon_threadsafe(_resolve, job.future, None, exc)
            start += len(job.texts)
        runnable = np.flatnonzero([jobs[o].error is None for o in owner]) if len(texts) else np.array([], int)
        probabilities = np.zeros((len(texts), len(classifier.label_names)), dtype=np.float32)
        plan = (plan_packed_batches(lengths[runnable], self.token_budget) if self.packed
                else plan_batches(lengths[runnable], classifier, self.token_budget))
        for batch in plan:
            batch = dataclasses.replace(batch, rows=runnable[batch.rows])
            started = time.perf_counter()
            try:
                probabilities[batch.rows] = run_batch(classifier, encoded, batch)
            except Exception as exc:  # noqa: BLE001 - fail only the requests in this batch
                logger.error("forward pass failed: %s: %s", type(exc).__name__, exc)
                for j in sorted(set(owner[batch.rows].tolist())):
                    if jobs[j].error is None:
                        jobs[j].error, jobs[j].remaining = exc, 0
                        loop.call_soon_threadsafe(_resolve, jobs[j].future, None, exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch.rows), time.perf_counter() - started)
            for j, done in zip(*np.unique(owner[batch.rows], return_counts=True)):
                job = jobs[j]
                if job.error is not None:
                    continue
                job.remaining -= int(done)
                if job.remaining == 0:
                    rows = slice(job.start, job.start + len(job.texts))
                    result = TextsResult(probabilities[rows].copy(), lengths[rows].copy(),
                                         truncated[rows].copy(), job.shadow)
                    loop.call_soon_threadsafe(_resolve, job.future, result)
        for job in jobs:  # requests with no texts to run (all failed or empty)
            if job.error is None and job.remaining == 0 and not len(job.texts):
                loop.call_soon_threadsafe(_resolve, job.future, TextsResult(
                    probabilities[:0], lengths[:0], truncated[:0], job.shadow))
        if self.shadow is not None:
            self._run_shadow(jobs, texts, probabilities, loop)

    def _run_shadow(self, jobs: list[_Job], texts: list[str], primary: np.ndarray,
                    loop: asyncio.AbstractEventLoop) -> None:
        from textgate.infer import predict

        ok = [job for job in jobs if job.error is None]
        try:
            shadow_texts = [text for job in ok for text in job.texts]
            with self._shadow_lock:
                output = predict(self.shadow, shadow_texts, token_budget=self.token_budget,
                                 progress=False) if shadow_texts else None
            labels = [] if output is None else output.predicted.tolist()
        except Exception as exc:  # noqa: BLE001 - counted, never raised: the shadow must not hurt the primary
            logger.warning("shadow model failed: %s: %s", type(exc).__name__, exc)
            if self.on_shadow_error is not None:
                self.on_shadow_error()
            for job in jobs:
                loop.call_soon_threadsafe(_resolve, job.shadow, None)
            return
        names = self.classifier.label_names
        primary_labels = [names[i] for job in ok
                          for i in primary[job.start : job.start + len(job.texts)].argmax(axis=1)]
        if self.on_shadow is not None:
            self.on_shadow(primary_labels, labels)
        offset = 0
        for job in jobs:
            if job.error is None:
                rows = slice(offset, offset + len(job.texts))
                loop.call_soon_threadsafe(_resolve, job.shadow, None if output is None else ShadowOutput(
                    labels[rows], output.probabilities[rows], output.token_counts[rows], output.truncated[rows]))
                offset += len(job.texts)
            else:
                loop.call_soon_threadsafe(_resolve, job.shadow, None)


def split_threads(workers: int | None, cores: int | None = None) -> tuple[int, int]:
    """Share the cores between inference workers: ``workers`` (default: 2 when there are 2 or
    more cores) each get cores // workers torch threads. Returns (workers, threads per worker).

    Why two single-threaded workers beat one two-threaded one on 2 cores: a forward pass split
    over 2 threads waits at every op for the slower thread, and on a server the event loop,
    the log writer and the clients keep taking one of the cores away; two independent workers
    just run at whatever speed they get (benchmarks/serve_load.py)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = workers or (2 if cores >= 2 else 1)
    return workers, max(1, cores // workers)


def worker_cores(workers: int, threads: int) -> list[list[int]] | None:
    """Disjoint core sets, ``threads`` cores per worker, from the cores this process may use;
    None (no pinning) when there are fewer cores than workers x threads."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if workers * threads > len(cores):
        return None
    return [cores[i * threads : (i + 1) * threads] for i in range(workers)]


def _resolve(future: asyncio.Future | None, value: Any = None, error: BaseException | None = None) -> None:
    if future is None or future.done():  # cancelled by a timeout: nobody is waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
