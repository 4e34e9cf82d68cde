"""The LogWriter: commits the prediction log off the request path, from one background thread.

The request path only ever calls ``LogWriter.submit``, which never blocks: a full queue drops
the records (counted in ``dropped``) and hands back a future already failed with
``LogQueueFull``. The future of an accepted submit completes once its records are committed,
so a server that waits for it (``log_ack = "committed"``) has acknowledged only rows that
survive SIGKILL of the server (SQLite ``synchronous=FULL``; PostgreSQL commits are durable).
A busy or locked database (``is_transient``: another connection's write lock, a PostgreSQL lock
timeout, deadlock, serialization failure or dropped connection) is retried with exponential
backoff for up to ``retry_s`` seconds before the batch fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Self

from textgate.errors import ConfigError, LogQueueFull
from textgate.serve.databases import first_line, is_transient
from textgate.serve.store import LogRecord, PredictionStore

__all__ = ["LogWriter"]

# The prediction log's one logger, as before its modules were split.
logger = logging.getLogger("textgate.serve.store")

# Retries of a busy database: the first wait, doubled after each attempt up to the cap.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0
# close() waits retry_s plus this long for the queue to drain.
CLOSE_GRACE_S = 5.0


@dataclass
class _Pending:
    records: Sequence[LogRecord]
    future: Future[None]
    arrived: float  # time.monotonic() when submitted


def _settle(future: Future[None], error: BaseException | None = None) -> None:
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:  # the caller cancelled it (client went away): nothing to tell
        pass


class LogWriter:
    """Commits submitted records to a store from one background thread, in group commits.

    ``submit`` never blocks. An accepted submit waits in a queue of at most ``max_queue``
    records; the thread takes whole submits, up to ``max_batch`` records, and commits them in
    one transaction. A batch starts once ``max_batch`` records are waiting or the oldest has
    waited ``flush_interval_s`` (0 commits as soon as the thread is free); submits arriving
    while commit runs share the next one. A busy or locked database (``is_transient``) is
    retried with exponential backoff (50 ms doubling up to 1 s) for up to ``retry_s`` seconds
    (counted in ``retries``); a commit that still fails, or fails otherwise, fails its futures,
    counts the records in ``failed``, logs one line, and the writer goes on with the next batch.

    ``on_batch(seconds, size)`` is called after every commit attempt (for metrics).
    The writer does not own the store: close the writer first, then the store.
    """

    def __init__(
        self,
        store: PredictionStore,
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        flush_interval_s: float = 0.05,
        retry_s: float = 10.0,
        on_batch: Callable[[float, int], None] | None = None,
    ):
        if max_queue < 1:
            raise ConfigError(f"LogWriter max_queue must be >= 1. Got {max_queue}.", field="max_queue")
        if max_batch < 1:
            raise ConfigError(f"LogWriter max_batch must be >= 1. Got {max_batch}.", field="max_batch")
        if flush_interval_s < 0:
            raise ConfigError(
                f"LogWriter flush_interval_s must be >= 0. Got {flush_interval_s}.",
                field="flush_interval_s",
            )
        if retry_s < 0:
            raise ConfigError(f"LogWriter retry_s must be >= 0. Got {retry_s}.", field="retry_s")
        self.store = store
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.flush_interval_s = flush_interval_s
        self.retry_s = retry_s
        self.on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued = 0  # records waiting in _queue
        self._dropped = 0
        self._failed = 0
        self._written = 0
        self._retries = 0
        self._closing = False
        self._drain_by: float | None = None  # set by close(): no retries after this time
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="textgate-log-writer", daemon=True)
        self._thread.start()

    # -- request path --------------------------------------------------------------------

    def submit(self, records: Iterable[LogRecord]) -> Future[None]:
        """Queue the records; the future completes when they are committed.

        Never blocks. When the queue has no room for all of them (or the writer is closed),
        none are queued: they are counted in ``dropped`` and the future is already failed.
        """
        batch = list(records)
        future: Future[None] = Future()
        if not batch:
            future.set_result(None)
            return future
        with self._cond:
            if self._closing:
                self._dropped += len(batch)
                error: BaseException = LogQueueFull(
                    f"The prediction log writer is closed; {len(batch)} records were dropped."
                )
            elif self._queued + len(batch) > self.max_queue:
                self._dropped += len(batch)
                error = LogQueueFull(
                    f"The prediction log queue holds at most {self.max_queue} records and "
                    f"{self._queued} are waiting; {len(batch)} records were dropped "
                    "(the store is slower than the traffic)."
                )
            else:
                self._queue.append(_Pending(batch, future, time.monotonic()))
                self._queued += len(batch)
                self._cond.notify()
                return future
        future.set_exception(error)
        return future

    # -- counters --------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Records accepted and waiting for a commit to start."""
        with self._cond:
            return self._queued

    @property
    def dropped(self) -> int:
        """Records refused because the queue was full or the writer closed."""
        return self._dropped

    @property
    def failed(self) -> int:
        """Records whose commit failed."""
        return self._failed

    @property
    def written(self) -> int:
        """Records committed."""
        return self._written

    @property
    def retries(self) -> int:
        """Commit attempts repeated because the database was busy or locked."""
        return self._retries

    # -- writer thread ---------------------------------------------------------------------

    def _take(self) -> list[_Pending] | None:
        """Wait for the next batch; None when closing and nothing is left."""
        with self._cond:
            while True:
                if not self._queue:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                due = self._queue[0].arrived + self.flush_interval_s - time.monotonic()
                if self._closing or self._queued >= self.max_batch or due <= 0:
                    break
                self._cond.wait(due)
            taken: list[_Pending] = []
            size = 0
            # Whole submits only, so one future maps to one transaction; at least one even
            # when it alone exceeds max_batch.
            while self._queue and (not taken or size + len(self._queue[0].records) <= self.max_batch):
                pending = self._queue.popleft()
                taken.append(pending)
                size += len(pending.records)
            self._queued -= size
            return taken

    def _write(self, records: list[LogRecord]) -> None:
        """One batch, retried while the database is busy, for up to retry_s (less once closing)."""
        give_up = time.monotonic() + self.retry_s
        delay = RETRY_FIRST_S
        while True:
            try:
                self.store.write_many(records)
                return
            except Exception as exc:
                limit = give_up if self._drain_by is None else min(give_up, self._drain_by)
                if not is_transient(exc) or time.monotonic() + delay > limit:
                    raise
                if delay == RETRY_FIRST_S:
                    logger.warning("prediction log: database busy (%s); retrying %d records for up to %.1f s",
                                   first_line(exc), len(records), max(0.0, limit - time.monotonic()))
            self._retries += 1
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            records = [r for pending in taken for r in pending.records]
            start = time.perf_counter()
            try:
                self._write(records)
            except Exception as exc:  # noqa: BLE001 - any store error fails the batch, not the writer
                self._failed += len(records)
                logger.error(
                    "prediction log: could not write %d records (%s: %s); continuing",
                    len(records),
                    type(exc).__name__,
                    first_line(exc),
                )
                for pending in taken:
                    _settle(pending.future, exc)
            else:
                self._written += len(records)
                for pending in taken:
                    _settle(pending.future)
            if self.on_batch is not None:
                try:
                    self.on_batch(time.perf_counter() - start, len(records))
                except Exception:  # a metrics bug must not stop the log
                    logger.exception("prediction log: on_batch callback failed")

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, retrying a busy database as usual, then stop the thread.
        Idempotent; new submits are refused from the start.

        Waits up to ``timeout`` seconds (default: ``retry_s`` + 5); a batch still retrying then
        gets no further retry, and records still queued (a hung store) are dropped, counted and
        their futures failed.
        """
        timeout = self.retry_s + CLOSE_GRACE_S if timeout is None else timeout
        with self._cond:
            self._closing = True
            if self._drain_by is None:
                self._drain_by = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            lost = self._queued
            self._queued = 0
            self._dropped += lost
        if lost:
            logger.error(
                "prediction log: store still busy after %.1f s; dropped %d queued records",
                timeout,
                lost,
            )
        error = LogQueueFull(
            f"The prediction log writer closed before {lost} queued records were written."
        )
        for pending in left:
            _settle(pending.future, error)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
