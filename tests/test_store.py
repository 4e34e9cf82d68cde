"""The prediction log (``textgate.serve.store``) on SQLite always, and on PostgreSQL when
``TEXTGATE_TEST_POSTGRES_URL`` is set (``scripts/start_postgres.sh`` starts one; CI does).

Each PostgreSQL test works in a fresh schema of its own (dropped afterwards), so runs and
parallel sessions never see each other's rows."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")

from textgate.errors import ConfigError
from textgate.serve.store import (
    LogQueueFull,
    LogRecord,
    LogWriter,
    PredictionStore,
    open_store,
    text_sha256,
)

POSTGRES_URL = os.environ.get("TEXTGATE_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL,
            reason="TEXTGATE_TEST_POSTGRES_URL is not set "
            "(export it from `scripts/start_postgres.sh` to run the PostgreSQL store tests)",
        ),
    ),
]


def _with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty prediction log on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log' / 'predictions.db'}"
        return
    assert POSTGRES_URL
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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
        "text_sha256": text_sha256(f"text {request_id} {item}"),
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


def test_text_sha256():
    assert text_sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


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


# -- durability ------------------------------------------------------------------------

CHILD = """
import sys, time
from textgate.serve.store import LogRecord, LogWriter, open_store
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
