"""The prediction log: every prediction served, one row per item in one table, ``predictions``.

Each row holds time, request id, item index, model fingerprint, label, scores, guard verdict
and a keyed hash of the text (the raw text only when the server runs with ``log_text =
true``). SQLite in WAL mode is the embedded default; PostgreSQL is used when ``log_url`` says so.

The ``text_sha256`` column holds textgate's one text hash, ``text_hash(text, key)``
(``textgate._internal.hashing``: HMAC-SHA256 of the UTF-8 text in hex), not a plain SHA-256: a
short text cannot be found by hashing guesses without the key. The key comes from the serve
config (``log_hash_key_file`` or ``log_hash_key``); without one, a SQLite log gets a random key
in a file beside it (``predictions.db.hashkey``, mode 0600), created once and reused, and
PostgreSQL needs one configured. ``log_hash_key`` loads the same key for any tool that joins its
own texts with the log; ``textgate audit --hash-key-file`` given that file writes audit rows
whose ``text_sha256`` joins it.

    LogRecord         one served prediction as the log stores it
    PredictionStore   SQLAlchemy Core over the table: write_many / count / by_request / ...
    open_store        the store at a ``log_url`` (the engine comes from ``databases.py``)
    log_hash_key      the key of the log's text hash

Rows are written off the request path by ``writer.LogWriter``, in group commits.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from textgate._internal.hashing import MIN_HASH_KEY_BYTES, read_hash_key
from textgate.errors import ConfigError
from textgate.serve.databases import (
    create_log_engine,
    first_line,
    log_url_error,
    parse_log_url,
)

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The prediction log needs SQLAlchemy: pip install 'textgate[serve]'"
    ) from exc

__all__ = ["LogRecord", "PredictionStore", "log_hash_key", "open_store"]

logger = logging.getLogger(__name__)

TABLE = "predictions"
# The key file created beside a SQLite log that has no configured key.
HASH_KEY_SUFFIX = ".hashkey"
KEY_FIELD = "log_hash_key_file"


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


def open_store(url: str) -> PredictionStore:
    """Open (creating if needed) the prediction log at ``url``.

    ``sqlite:///path.db`` (relative path) or ``sqlite:////abs/path.db``: WAL mode, fsync on
    every commit, parent folder created. ``postgresql://user@host:port/db`` (or ``postgres://``)
    uses psycopg 3. Raises ``ConfigError`` (field ``log_url``) when the URL is malformed, names
    another database, or the database cannot be reached or written.
    """
    engine, shown = create_log_engine(url)
    try:
        return PredictionStore(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad credentials, read-only file
        engine.dispose()
        raise log_url_error(f"cannot be opened ({first_line(exc)})", shown) from None


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
    parsed, _ = parse_log_url(log_url, expected="sqlite:///predictions.db")
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
