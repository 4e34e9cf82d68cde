"""The prediction log: every prediction served, stored off the request path.

One row per served item in one table, ``predictions``: time, request id, item index, model
fingerprint, label, scores, guard verdict and a keyed hash of the text (the raw text only when
the server runs with ``log_text = true``). SQLite in WAL mode is the embedded default;
PostgreSQL is used when ``log_url`` says so.

The ``text_sha256`` column holds textgate's one text hash, ``text_hash(text, key)``
(``textgate._internal.hashing``: HMAC-SHA256 of the UTF-8 text in hex), not a plain SHA-256: a
short text cannot be found by hashing guesses without the key. The key comes from the serve
config (``log_hash_key_file`` or ``log_hash_key``); without one, a SQLite log gets a random key
in a file beside it (``predictions.db.hashkey``, mode 0600), created once and reused, and
PostgreSQL needs one configured. ``log_hash_key`` loads the same key for any tool that joins its
own texts with the log; ``textgate audit --hash-key-file`` given that file writes audit rows
whose ``text_sha256`` joins it.

    PredictionStore   SQLAlchemy Core over the table: write_many / count / by_request / ...
    LogWriter         a background thread that drains a bounded queue in group commits

The request path only ever calls ``LogWriter.submit``, which never blocks: a full queue drops
the records (counted in ``dropped``) and hands back a future already failed with
``LogQueueFull``. The future of an accepted submit completes once its records are committed,
so a server that waits for it (``log_ack = "committed"``) has acknowledged only rows that
survive SIGKILL of the server (SQLite ``synchronous=FULL``; PostgreSQL commits are durable).
A busy or locked database (another connection's write lock, a PostgreSQL lock timeout,
deadlock, serialization failure or dropped connection) is retried with exponential backoff for
up to ``retry_s`` seconds before the batch fails.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from textgate._internal.hashing import MIN_HASH_KEY_BYTES, read_hash_key
from textgate.errors import ConfigError, LogQueueFull

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL, Engine, make_url
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The prediction log needs SQLAlchemy: pip install 'textgate[serve]'"
    ) from exc

__all__ = [
    "LogQueueFull",
    "LogRecord",
    "LogWriter",
    "PredictionStore",
    "is_transient",
    "log_hash_key",
    "open_store",
]

logger = logging.getLogger(__name__)

TABLE = "predictions"
# A connection attempt to an unreachable PostgreSQL host fails within this many seconds
# instead of hanging server start-up (libpq waits forever by default).
PG_CONNECT_TIMEOUT_S = 10
# How long one SQLite write waits for another connection's write lock before it raises
# "database is locked"; the LogWriter then retries with backoff for up to its retry_s.
SQLITE_BUSY_TIMEOUT_S = 1.0
# The same for a PostgreSQL lock held by another session (LOCK TABLE, ALTER TABLE, ...):
# without it an INSERT would wait for the lock forever.
PG_LOCK_TIMEOUT_MS = 1000
# Retries of a busy database: the first wait, doubled after each attempt up to the cap.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0
# close() waits retry_s plus this long for the queue to drain.
CLOSE_GRACE_S = 5.0
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # primary result codes
# SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout, statement cancelled
# (statement_timeout), server shutting down or starting; class 08 (connection) as well.
PG_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})
# The key file created beside a SQLite log that has no configured key.
HASH_KEY_SUFFIX = ".hashkey"
KEY_FIELD = "log_hash_key_file"


def log_hash_key(log_url: str, *, key: str | None = None, key_file: Path | str | None = None) -> bytes:
    """The key of the log at ``log_url``: ``key``, else the contents of ``key_file``, else the
    key file beside a SQLite log (``<database>.hashkey``, created with mode 0600 if missing).

    An in-memory SQLite log gets a random key for the process. PostgreSQL, or a SQLite URI
    (``file:...``), needs ``key`` or ``key_file``: raises ``ConfigError`` (field
    ``log_hash_key_file``)."""
    if key is not None:
        if len(key.encode("utf-8")) < MIN_HASH_KEY_BYTES:
            raise ConfigError(f"The 'log_hash_key' setting must be at least {MIN_HASH_KEY_BYTES} bytes long.",
                              field="log_hash_key")
        return key.encode("utf-8")
    if key_file is not None:
        return read_hash_key(key_file, field=KEY_FIELD)
    try:
        parsed = make_url(log_url)
    except (sa.exc.ArgumentError, ValueError):
        raise _bad_url("must be a database URL such as sqlite:///predictions.db", log_url) from None
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database in ("", ":memory:"):
        return secrets.token_hex(32).encode("ascii")
    if parsed.get_backend_name() != "sqlite" or database.startswith("file:"):
        raise ConfigError("The prediction log needs a secret for its keyed text hash: set 'log_hash_key_file' "
                          "(a file with at least 16 random bytes, e.g. `openssl rand -hex 32 > textgate-log.key`) "
                          "in the serve config; every server writing to this log must use the same key.",
                          field=KEY_FIELD)
    return _key_beside(Path(database).expanduser())


def _key_beside(database: Path) -> bytes:
    path = database.with_name(database.name + HASH_KEY_SUFFIX)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server process created it first
            return read_hash_key(path, field=KEY_FIELD)
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
        logger.info("prediction log: created the text hash key %s (keep it with the log)", path)
    return read_hash_key(path, field=KEY_FIELD)


def is_transient(exc: BaseException) -> bool:
    """Whether a store error is worth retrying: a busy or locked database, a lock timeout,
    a deadlock or serialization failure, a dropped connection."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    inner = getattr(exc, "orig", None) or exc
    code = getattr(inner, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    sqlstate = getattr(inner, "sqlstate", None)
    if sqlstate:
        return sqlstate in PG_TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    message = str(inner).lower()  # a SQLite error without its result code
    return isinstance(inner, sqlite3.OperationalError) and ("database is locked" in message
                                                            or "database table is locked" in message)


@dataclass(frozen=True)
class LogRecord:
    """One served prediction (one item of one request) as the log stores it."""

    time: float  # epoch seconds
    request_id: str
    item: int  # index within the request
    model_fingerprint: str
    model_label: str
    label: str | None
    score: float | None
    scores: dict[str, float] | None  # stored as JSON text
    status: str  # guard status
    reasons: tuple[str, ...]  # stored as comma-joined text
    text_sha256: str
    text: str | None  # only when log_text = true
    shadow_label: str | None = None

    def __post_init__(self) -> None:
        # Reasons are stored comma-joined; a comma inside one would not round-trip.
        for reason in self.reasons:
            if not reason or "," in reason:
                raise ValueError(
                    f"A LogRecord reason must be a non-empty code without commas. Got {reason!r}."
                )


def _table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        TABLE,
        metadata,
        # BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False, index=True),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("model_fingerprint", sa.Text(), nullable=False),
        sa.Column("model_label", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("scores", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("shadow_label", sa.Text(), nullable=True),
    )


def _to_row(record: LogRecord) -> dict[str, Any]:
    return {
        "time": record.time,
        "request_id": record.request_id,
        "item": record.item,
        "model_fingerprint": record.model_fingerprint,
        "model_label": record.model_label,
        "label": record.label,
        "score": record.score,
        "scores": None if record.scores is None else json.dumps(record.scores, sort_keys=True),
        "status": record.status,
        "reasons": ",".join(record.reasons),
        "text_sha256": record.text_sha256,
        "text": record.text,
        "shadow_label": record.shadow_label,
    }


def _from_row(row: Any) -> LogRecord:
    return LogRecord(
        time=row.time,
        request_id=row.request_id,
        item=row.item,
        model_fingerprint=row.model_fingerprint,
        model_label=row.model_label,
        label=row.label,
        score=row.score,
        scores=None if row.scores is None else json.loads(row.scores),
        status=row.status,
        reasons=tuple(row.reasons.split(",")) if row.reasons else (),
        text_sha256=row.text_sha256,
        text=row.text,
        shadow_label=row.shadow_label,
    )


class PredictionStore:
    """The ``predictions`` table behind one SQLAlchemy engine. Build it with ``open_store``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._metadata = sa.MetaData()
        self.table = _table(self._metadata)
        self._metadata.create_all(engine)  # idempotent: checks before creating

    def write_many(self, records: Sequence[LogRecord]) -> None:
        """Insert the records in one transaction (executemany); all or none are stored."""
        if not records:
            return
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), [_to_row(r) for r in records])

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())

    def by_request(self, request_id: str) -> list[LogRecord]:
        """The records of one request, in item order."""
        query = (
            sa.select(self.table)
            .where(self.table.c.request_id == request_id)
            .order_by(self.table.c.item, self.table.c.id)
        )
        with self.engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query)]

    def request_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(self.table.c.request_id).distinct()).scalars())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionStore({self.engine.url.render_as_string(hide_password=True)!r})"


def _one_line(exc: BaseException) -> str:
    """The first line of a driver error: the cause, without SQL or a traceback dump."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip() or type(inner).__name__
    return text.splitlines()[0]


def _bad_url(problem: str, shown: str) -> ConfigError:
    return ConfigError(f"The 'log_url' setting {problem}. Got {shown!r} instead.", field="log_url")


def _sqlite_engine(url: URL, shown: str) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _bad_url(f"names a folder that cannot be created ({exc.strerror})", shown) from None
    if database in ("", ":memory:"):
        # One shared connection, or every pooled connection would see its own empty database.
        engine = sa.create_engine(
            url, poolclass=sa.StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
        )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer thread. FULL: a commit is fsynced before it
            # returns, so an acknowledged row survives SIGKILL and power loss.
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()
        if str(mode).lower() not in ("wal", "memory"):
            logger.warning("prediction log: SQLite refused WAL mode (journal_mode=%s)", mode)

    return engine


def _postgres_engine(url: URL, shown: str) -> Engine:
    driver = url.drivername.partition("+")[2]
    if driver not in ("", "psycopg"):
        raise _bad_url(
            f"asks for the PostgreSQL driver {driver!r}; textgate uses psycopg 3 "
            "(write postgresql://...)",
            shown,
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise _bad_url(
            "needs psycopg for PostgreSQL: pip install 'textgate[postgres]'", shown
        ) from None
    url = url.set(drivername="postgresql+psycopg")
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    @sa.event.listens_for(engine, "connect")
    def _lock_timeout(dbapi_connection: Any, _record: Any) -> None:
        # Outside a transaction, so a rollback does not undo it (SQLAlchemy's recipe).
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET lock_timeout = {PG_LOCK_TIMEOUT_MS}")
        finally:
            dbapi_connection.autocommit = autocommit

    return engine


def open_store(url: str) -> PredictionStore:
    """Open (creating if needed) the prediction log at ``url``.

    ``sqlite:///path.db`` (relative path) or ``sqlite:////abs/path.db``: WAL mode, fsync on
    every commit, parent folder created. ``postgresql://user@host:port/db`` (or ``postgres://``)
    uses psycopg 3. Raises ``ConfigError`` (field ``log_url``) when the URL is malformed, names
    another database, or the database cannot be reached or written.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise _bad_url(
            "must be a database URL such as sqlite:///predictions.db or "
            "postgresql://user@host:5432/db",
            url,
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, shown)
        elif backend in ("postgresql", "postgres"):
            engine = _postgres_engine(parsed, shown)
        else:
            raise _bad_url(
                f"must start with sqlite:/// or postgresql:// (the log supports SQLite and "
                f"PostgreSQL, not {backend!r})",
                shown,
            )
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unknown dialect, a bad query option
        raise _bad_url(f"cannot be used ({_one_line(exc)})", shown) from None
    try:
        return PredictionStore(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad credentials, read-only file
        engine.dispose()
        raise _bad_url(f"cannot be opened ({_one_line(exc)})", shown) from None


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
                                   _one_line(exc), len(records), max(0.0, limit - time.monotonic()))
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
                    _one_line(exc),
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
