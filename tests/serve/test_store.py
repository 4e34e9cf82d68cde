"""The prediction log (``textgate.serve.store``, ``.databases``, ``.writer``) on SQLite always,
and on PostgreSQL when ``TEXTGATE_TEST_POSTGRES_URL`` is set (``scripts/start_postgres.sh``
starts one; CI does): the ``log_url`` fixture of conftest.py."""

from __future__ import annotations

import logging
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

sa = pytest.importorskip("sqlalchemy")

from textgate._internal.hashing import text_hash
from textgate.errors import ConfigError, LogQueueFull
from textgate.serve.databases import is_transient
from textgate.serve.store import LogRecord, PredictionStore, log_hash_key, open_store
from textgate.serve.writer import LogWriter

KEY = b"k" * 32

class HeldLock:
    """Another connection holding the log's write lock: ``BEGIN EXCLUSIVE`` on SQLite,
    ``LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE`` on PostgreSQL (the table must exist)."""

    def __init__(self, log_url: str):
        self.released = threading.Event()
        if log_url.startswith("sqlite"):
            self._sqlite = sqlite3.connect(sa.make_url(log_url).database, isolation_level=None,
                                           check_same_thread=False)
            self._sqlite.execute("BEGIN EXCLUSIVE")
            return
        self._sqlite = None
        self._engine = sa.create_engine(sa.make_url(log_url).set(drivername="postgresql+psycopg"))
        self._conn = self._engine.connect()
        self._transaction = self._conn.begin()
        self._conn.execute(sa.text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))

    def release(self) -> None:
        if self.released.is_set():
            return
        self.released.set()
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            return
        self._transaction.rollback()
        self._conn.close()
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def wait_for(condition, what: str, bound_s: float = 120) -> None:
    """Poll ``condition`` until true; a generous bound, so a slow machine only takes longer."""
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {bound_s} s")
        time.sleep(0.02)


@pytest.fixture
def store(log_url: str) -> Iterator[PredictionStore]:
    opened = open_store(log_url)
    yield opened
    opened.close()


def record(request_id: str = "req-1", item: int = 0, **changes) -> LogRecord:
    fields = {
        "time": 1_750_000_000.123456,
        "request_id": request_id,
        "item": item,
        "model_fingerprint": "sha256:abc123",
        "model_label": "candidate",
        "label": "positive",
        "score": 0.875,
        "scores": {"negative": 0.0625, "neutral": 0.0625, "positive": 0.875},
        "status": "ok",
        "reasons": (),
        "text_sha256": text_hash(f"text {request_id} {item}", KEY),
        "text": None,
    }
    fields.update(changes)
    return LogRecord(**fields)


# -- PredictionStore ---------------------------------------------------------------------


def test_round_trip(store: PredictionStore):
    written = [
        record("req-1", 0),
        record(
            "req-1",
            1,
            label=None,
            score=None,
            scores=None,
            status="abstain",
            reasons=("too_long", "non_english"),
            text="i love this 🔥",
            shadow_label="neutral",
        ),
        record("req-2", 0, reasons=("lowconf",)),
    ]
    store.write_many(written)
    store.write_many([])  # nothing to do, no error

    assert store.count() == 3
    assert store.request_ids() == {"req-1", "req-2"}
    assert store.by_request("req-1") == written[:2]
    assert store.by_request("req-2") == written[2:]
    assert store.by_request("nope") == []


def test_scores_stored_as_json_text(store: PredictionStore):
    store.write_many([record()])
    with store.engine.connect() as conn:
        scores, reasons = conn.execute(sa.select(store.table.c.scores, store.table.c.reasons)).one()
    assert isinstance(scores, str) and scores.startswith("{")
    assert reasons == ""


def test_a_sqlite_log_gets_a_private_key_file_reused_across_restarts(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'logs' / 'predictions.db'}"
    first = log_hash_key(url)
    key_file = tmp_path / "logs" / "predictions.db.hashkey"
    assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32 and key_file.read_bytes().strip() == first
    assert log_hash_key(url) == first  # a restart finds the same key
    assert text_hash("lol", log_hash_key(url)) == text_hash("lol", first)
    other = log_hash_key(f"sqlite:///{tmp_path / 'other.db'}")
    assert other != first  # every log its own random key


def test_a_configured_key_wins_and_postgres_needs_one(tmp_path: Path):
    key_file = tmp_path / "log.key"
    key_file.write_text("0123456789abcdef0123456789abcdef\n")
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    assert log_hash_key(url, key_file=key_file) == b"0123456789abcdef0123456789abcdef"
    assert log_hash_key(url, key="a-secret-of-16-bytes") == b"a-secret-of-16-bytes"
    assert not (tmp_path / "predictions.db.hashkey").exists()  # nothing created when a key is given
    assert log_hash_key("postgresql://u@db/log", key_file=key_file) == b"0123456789abcdef0123456789abcdef"
    with pytest.raises(ConfigError, match="log_hash_key_file") as caught:
        log_hash_key("postgresql://u@db/log")
    assert caught.value.field == "log_hash_key_file"
    key_file.write_text("short")
    with pytest.raises(ConfigError, match="holds 5 bytes; a key needs at least 16") as caught:
        log_hash_key(url, key_file=key_file)
    assert caught.value.field == "log_hash_key_file"
    with pytest.raises(ConfigError, match="cannot be read.*'log_hash_key_file'"):
        log_hash_key(url, key_file=tmp_path / "missing.key")
    assert log_hash_key("sqlite://") != log_hash_key("sqlite://")  # in memory: a key for the process


def test_reason_with_comma_is_refused():
    with pytest.raises(ValueError, match="without commas"):
        record(reasons=("a,b",))


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path: Path):
    path = tmp_path / "new" / "folder" / "log.db"  # parent folders are created
    with open_store(f"sqlite:///{path}") as opened, opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    import sqlite3

    raw = sqlite3.connect(path)  # WAL is a property of the file, seen by any reader
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_reopening_keeps_rows(log_url: str):
    with open_store(log_url) as first:
        first.write_many([record()])
    with open_store(log_url) as second:
        assert second.count() == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "must be a database URL"),
        ("mysql://u@localhost/db", "must start with sqlite:/// or postgresql://"),
        ("postgresql+asyncpg://u@localhost/db", "uses psycopg 3"),
        ("postgresql://nobody@127.0.0.1:1/db?connect_timeout=2", "cannot be opened"),
        ("sqlite:////proc/textgate/log.db", "cannot be created"),
    ],
)
def test_bad_log_url_is_a_one_line_config_error(url: str, problem: str):
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert caught.value.field == "log_url"
    assert "'log_url'" in message and problem in message
    assert "\n" not in message


def test_password_is_not_echoed():
    with pytest.raises(ConfigError) as caught:
        open_store("postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2")
    assert "s3cret" not in str(caught.value)


# -- LogWriter ---------------------------------------------------------------------------


def test_group_commit(store: PredictionStore):
    batches: list[int] = []
    writer = LogWriter(
        store, flush_interval_s=0.1, on_batch=lambda seconds, size: batches.append(size)
    )
    futures = [writer.submit([record(f"r{i}", 0), record(f"r{i}", 1)]) for i in range(50)]
    for future in futures:
        assert future.result(timeout=5) is None
    writer.close()

    assert writer.written == 100 and store.count() == 100
    assert sum(batches) == 100
    assert len(batches) < 50  # requests shared transactions
    assert writer.dropped == writer.failed == writer.queue_depth == 0


def test_max_batch_splits_between_submits(store: PredictionStore):
    batches: list[int] = []
    writer = LogWriter(
        store, max_batch=4, flush_interval_s=10, on_batch=lambda s, size: batches.append(size)
    )
    sizes = [6, 3, 1, 3, 1]
    futures = [writer.submit([record(f"r{i}", j) for j in range(n)]) for i, n in enumerate(sizes)]
    for future in futures:
        future.result(timeout=5)  # max_batch reached each time: no waiting for the interval
    writer.close()
    # Whole submits only (one future, one transaction); an oversized one goes alone.
    assert batches == [6, 4, 4]


def test_empty_submit_is_done(store: PredictionStore):
    writer = LogWriter(store)
    assert writer.submit([]).result(timeout=0) is None
    writer.close()


class BlockingStore:
    """A store whose writes wait for ``release``: the queue behind it fills up."""

    def __init__(self, inner: PredictionStore):
        self.inner = inner
        self.release = threading.Event()
        self.entered = threading.Event()

    def write_many(self, records):
        self.entered.set()
        assert self.release.wait(timeout=60)
        self.inner.write_many(records)


def test_full_queue_drops_without_blocking(store: PredictionStore):
    slow = BlockingStore(store)
    writer = LogWriter(slow, max_queue=10, flush_interval_s=0)
    first = writer.submit([record("first")])
    assert slow.entered.wait(timeout=5)  # the writer thread is stuck in write_many

    waiting = writer.submit([record("wait", i) for i in range(10)])  # exactly fills the queue
    assert writer.queue_depth == 10
    refused = writer.submit([record("refused", 0), record("refused", 1)])
    # Never blocks the request: answered while the writer is still stuck (no duration asserted).
    assert refused.done() and not slow.release.is_set()
    with pytest.raises(LogQueueFull, match="at most 10 records"):
        refused.result(timeout=0)
    assert writer.dropped == 2 and writer.queue_depth == 10

    slow.release.set()
    first.result(timeout=5)
    waiting.result(timeout=5)
    writer.close()
    assert writer.written == 11 and writer.dropped == 2
    assert store.request_ids() == {"first", "wait"}

    late = writer.submit([record("late")])  # a closed writer refuses, counted
    with pytest.raises(LogQueueFull, match="closed"):
        late.result(timeout=0)
    assert writer.dropped == 3


class FlakyStore:
    """Fails the first write, then works."""

    def __init__(self, inner: PredictionStore):
        self.inner = inner
        self.calls = 0

    def write_many(self, records):
        self.calls += 1
        if self.calls == 1:
            raise sa.exc.OperationalError("INSERT ...", {}, Exception("disk I/O error\nDETAIL"))
        self.inner.write_many(records)


def test_store_error_fails_batch_and_writer_survives(
    store: PredictionStore, caplog: pytest.LogCaptureFixture
):
    writer = LogWriter(FlakyStore(store), flush_interval_s=0)
    with caplog.at_level(logging.ERROR, logger="textgate.serve.store"):
        lost = writer.submit([record("lost", 0), record("lost", 1)])
        with pytest.raises(sa.exc.OperationalError):
            lost.result(timeout=5)
        kept = writer.submit([record("kept")])
        assert kept.result(timeout=5) is None
    writer.close()

    assert writer.failed == 2 and writer.written == 1 and writer.dropped == 0
    assert store.request_ids() == {"kept"}
    [line] = [r.getMessage() for r in caplog.records]
    assert "could not write 2 records" in line and "disk I/O error" in line
    assert "\n" not in line


def test_close_flushes_queue(store: PredictionStore):
    writer = LogWriter(store, flush_interval_s=3600)  # would linger an hour without close()
    futures = [writer.submit([record(f"r{i}")]) for i in range(20)]
    started = time.perf_counter()
    writer.close()
    assert time.perf_counter() - started < 600  # generous: only "did not wait for the interval"
    assert all(f.done() and f.exception() is None for f in futures)
    assert store.count() == 20 and writer.written == 20
    writer.close()  # idempotent


def test_cancelled_future_does_not_break_writer(store: PredictionStore):
    slow = BlockingStore(store)
    writer = LogWriter(slow, flush_interval_s=0)
    writer.submit([record("first")])
    assert slow.entered.wait(timeout=5)
    cancelled = writer.submit([record("gone")])
    assert cancelled.cancel()  # e.g. the HTTP client disconnected
    slow.release.set()
    after = writer.submit([record("after")])
    assert after.result(timeout=5) is None
    writer.close()
    assert store.request_ids() == {"first", "gone", "after"}


def test_bad_writer_settings():
    with pytest.raises(ConfigError, match="max_queue must be >= 1. Got 0"):
        LogWriter(None, max_queue=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="retry_s must be >= 0. Got -1"):
        LogWriter(None, retry_s=-1)  # type: ignore[arg-type]


def _locked(message: str = "database is locked") -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))


class _PgError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def test_transient_errors_are_busy_and_lock_errors_only():
    assert is_transient(_locked()) and is_transient(_locked("database table is locked"))
    assert not is_transient(_locked("disk I/O error")) and not is_transient(ValueError("database is locked?"))
    for sqlstate in ("55P03", "40P01", "40001", "57P01", "08006"):
        assert is_transient(sa.exc.OperationalError("INSERT", {}, _PgError(sqlstate))), sqlstate
    assert not is_transient(sa.exc.IntegrityError("INSERT", {}, _PgError("23505")))


class BusyStore:
    """Raises "database is locked" for the first ``busy`` writes, then works."""

    def __init__(self, inner: PredictionStore, busy: int):
        self.inner, self.busy, self.calls = inner, busy, 0

    def write_many(self, records):
        self.calls += 1
        if self.calls <= self.busy:
            raise _locked()
        self.inner.write_many(records)


def test_a_busy_database_is_retried_until_it_frees(store: PredictionStore):
    writer = LogWriter(BusyStore(store, busy=3), flush_interval_s=0, retry_s=120)
    assert writer.submit([record("busy", 0), record("busy", 1)]).result(timeout=120) is None
    writer.close()
    assert writer.retries == 3 and writer.failed == 0 and writer.written == 2
    assert store.request_ids() == {"busy"}


def test_retries_are_bounded_by_retry_s(store: PredictionStore, caplog: pytest.LogCaptureFixture):
    writer = LogWriter(BusyStore(store, busy=10**9), flush_interval_s=0, retry_s=0.2)
    with caplog.at_level(logging.WARNING, logger="textgate.serve.store"), pytest.raises(
            sa.exc.OperationalError, match="database is locked"):
        writer.submit([record("gone")]).result(timeout=120)
    writer.close()
    assert writer.failed == 1 and writer.written == 0 and writer.retries >= 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying 1 records" in m for m in messages) and any("could not write 1 records" in m for m in messages)


def test_close_drains_the_queue_through_a_busy_database(store: PredictionStore):
    writer = LogWriter(BusyStore(store, busy=4), flush_interval_s=3600, retry_s=120)
    futures = [writer.submit([record(f"r{i}")]) for i in range(3)]
    writer.close()  # a graceful stop: retries instead of dropping after one failure
    assert all(f.done() and f.exception() is None for f in futures)
    assert writer.failed == writer.dropped == 0 and store.count() == 3


def test_a_held_lock_delays_the_commit_until_it_is_released(log_url: str):
    with open_store(log_url) as opened:
        writer = LogWriter(opened, flush_interval_s=0, retry_s=300)
        with HeldLock(log_url) as lock:
            future = writer.submit([record("held", 0), record("held", 1)])
            wait_for(lambda: writer.retries >= 2, "the writer to retry behind the lock")
            assert not future.done()  # not acknowledged while another connection holds the lock
            lock.release()
            assert future.result(timeout=300) is None
        writer.close()
        assert writer.failed == 0 and opened.request_ids() == {"held"}


# -- durability ------------------------------------------------------------------------

CHILD = """
import sys, time
from textgate.serve.store import LogRecord, open_store
from textgate.serve.writer import LogWriter
store = open_store(sys.argv[1])
writer = LogWriter(store, flush_interval_s=0.002)
n = 0
while True:
    futures = []
    for _ in range(4):  # several requests in flight share a commit
        records = [
            LogRecord(time=time.time(), request_id=f"r{n}", item=i, model_fingerprint="fp",
                      model_label="m", label="x", score=1.0, scores={"x": 1.0}, status="ok",
                      reasons=(), text_sha256="0" * 64, text=None)
            for i in range(3)
        ]
        futures.append((n, writer.submit(records)))
        n += 1
    for i, future in futures:
        future.result()
        print(f"ACK {i}", flush=True)
"""


def test_acknowledged_records_survive_sigkill(log_url: str):
    with open_store(log_url):  # create the table first, so the child starts writing at once
        pass
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, log_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[str] = []
    try:
        deadline = time.monotonic() + 120  # generous: a slow machine only takes longer
        assert child.stdout is not None
        while len(acked) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(line.split()[1])
        child.send_signal(signal.SIGKILL)  # mid-stream: more submits are in flight
    finally:
        child.kill()
        _, errors = child.communicate(timeout=5)
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= 40, f"child acknowledged only {len(acked)} requests: {errors[-2000:]}"

    with open_store(log_url) as reopened:
        stored = reopened.request_ids()
        missing = [i for i in acked if f"r{i}" not in stored]
        assert not missing, f"acknowledged but lost after SIGKILL: {missing}"
        assert all(len(reopened.by_request(f"r{i}")) == 3 for i in acked)
