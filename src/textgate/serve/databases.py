"""What the prediction log does differently on SQLite and PostgreSQL: building the engine from
``log_url`` (SQLite: WAL, fsync on every commit, a busy timeout; PostgreSQL: psycopg 3, a
connect and a lock timeout) and telling a transient error (busy, locked, deadlock, serialization
failure, dropped connection), which the LogWriter retries, from one that fails the batch.

``log_url_error`` and ``first_line`` shape every ``log_url`` problem as one ConfigError line.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from textgate.errors import ConfigError

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL, Engine, make_url
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The prediction log needs SQLAlchemy: pip install 'textgate[serve]'"
    ) from exc

__all__ = ["create_log_engine", "first_line", "is_transient", "log_url_error", "parse_log_url"]

# The prediction log's one logger, as before its modules were split.
logger = logging.getLogger("textgate.serve.store")

# A connection attempt to an unreachable PostgreSQL host fails within this many seconds
# instead of hanging server start-up (libpq waits forever by default).
PG_CONNECT_TIMEOUT_S = 10
# How long one SQLite write waits for another connection's write lock before it raises
# "database is locked"; the LogWriter then retries with backoff for up to its retry_s.
SQLITE_BUSY_TIMEOUT_S = 1.0
# The same for a PostgreSQL lock held by another session (LOCK TABLE, ALTER TABLE, ...):
# without it an INSERT would wait for the lock forever.
PG_LOCK_TIMEOUT_MS = 1000
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # primary result codes
# SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout, statement cancelled
# (statement_timeout), server shutting down or starting; class 08 (connection) as well.
PG_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})


def parse_log_url(url: str, *, expected: str = "sqlite:///predictions.db or postgresql://user@host:5432/db"
                  ) -> tuple[URL, str]:
    """The parsed ``log_url`` and how to show it (password hidden). ConfigError if malformed."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise log_url_error(f"must be a database URL such as {expected}", url) from None
    return parsed, parsed.render_as_string(hide_password=True)


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


def first_line(exc: BaseException) -> str:
    """The first line of a driver error: the cause, without SQL or a traceback dump."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip() or type(inner).__name__
    return text.splitlines()[0]


def log_url_error(problem: str, shown: str) -> ConfigError:
    """The one-line error of a ``log_url`` setting: what is wrong with it, and what it was."""
    return ConfigError(f"The 'log_url' setting {problem}. Got {shown!r} instead.", field="log_url")


def _sqlite_engine(url: URL, shown: str) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise log_url_error(f"names a folder that cannot be created ({exc.strerror})", shown) from None
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
        raise log_url_error(
            f"asks for the PostgreSQL driver {driver!r}; textgate uses psycopg 3 "
            "(write postgresql://...)",
            shown,
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise log_url_error(
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


def create_log_engine(url: str) -> tuple[Engine, str]:
    """The engine for ``log_url`` and the URL as shown in errors (password hidden).

    Raises ``ConfigError`` (field ``log_url``) when the URL is malformed, names another database
    or cannot be used; nothing is connected yet."""
    parsed, shown = parse_log_url(url)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed, shown), shown
        if backend in ("postgresql", "postgres"):
            return _postgres_engine(parsed, shown), shown
        raise log_url_error(
            f"must start with sqlite:/// or postgresql:// (the log supports SQLite and "
            f"PostgreSQL, not {backend!r})",
            shown,
        )
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unknown dialect, a bad query option
        raise log_url_error(f"cannot be used ({first_line(exc)})", shown) from None
