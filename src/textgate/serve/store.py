"""The prediction log: every prediction served, one row per item in one table, ``predictions``.

Each row holds time, request id, item index, model fingerprint, the model's label and its
probabilities for every label (``scores``), tokens seen and truncation, the guard's verdict and
final label, a keyed hash of the text (the raw text only when the server runs with ``log_text =
true``), the shadow's label, probabilities and fingerprint when a shadow ran, and a
``descriptors`` column for per-item text descriptors (nullable; see ``LogRecord``). Beside it,
``log_models`` names the label order of every model that wrote rows, and ``log_meta`` holds the
log's ``schema_version``. SQLite in WAL mode is the embedded default; PostgreSQL is used when
``log_url`` says so.

Schema versions (``LOG_SCHEMA_VERSION``): 1, the table as first shipped (no ``log_meta``); 2 adds
the columns ``tokens``, ``truncated``, ``shadow_fingerprint``, ``shadow_scores``,
``shadow_tokens``, ``shadow_truncated`` and ``descriptors`` (all nullable) and the tables
``log_models`` and ``log_meta``. Opening a log for writing migrates it in place: the missing
columns are added with ``ALTER TABLE ... ADD COLUMN`` (old rows read them as NULL, and a server
of the old version can keep inserting beside a new one), then the version is recorded. A log of
a newer version than this textgate knows is refused. Opening it for reading
(``open_store(url, create=False)``) changes nothing and reads either version.

The ``text_sha256`` column holds textgate's one text hash, ``text_hash(text, key)``
(``textgate._internal.hashing``: HMAC-SHA256 of the UTF-8 text in hex), not a plain SHA-256: a
short text cannot be found by hashing guesses without the key. The key comes from the serve
config (``log_hash_key_file`` or ``log_hash_key``); without one, a SQLite log gets a random key
in a file beside it (``predictions.db.hashkey``, mode 0600), created once and reused, and
PostgreSQL needs one configured. ``log_hash_key`` loads the same key for any tool that joins its
own texts with the log; ``textgate audit --hash-key-file`` given that file writes audit rows
whose ``text_sha256`` joins it.

    LogRecord         one served prediction as the log stores it
    LoggedModel       a model that wrote rows: fingerprint, label order, name, revision
    PredictionStore   SQLAlchemy Core over the tables: write_many / records / models / migration
    open_store        the store at a ``log_url`` (the engine comes from ``databases.py``)
    log_hash_key      the key of the log's text hash
    existing_log_hash_key  the same for a reader: never creates a key file

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

__all__ = ["LOG_SCHEMA_VERSION", "LogRecord", "LoggedModel", "PredictionStore", "existing_log_hash_key", "log_hash_key",
           "open_store"]

logger = logging.getLogger(__name__)

TABLE = "predictions"
MODELS_TABLE = "log_models"
META_TABLE = "log_meta"
# 2: tokens, truncated, shadow_* and descriptors columns; log_models and log_meta (1: none of them).
LOG_SCHEMA_VERSION = 2
SCHEMA_KEY = "schema_version"
# The columns version 2 added (all nullable), in the order they are added to an older table.
ADDED_IN_2 = {"tokens": sa.Integer, "truncated": sa.Boolean, "shadow_fingerprint": sa.Text, "shadow_scores": sa.Text,
              "shadow_tokens": sa.Integer, "shadow_truncated": sa.Boolean, "descriptors": sa.Text}
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
    # Schema 2; None in rows written before it.
    tokens: int | None = None  # tokens the model saw, after truncation
    truncated: bool | None = None
    shadow_fingerprint: str | None = None  # set whenever the shadow's outputs are
    shadow_scores: dict[str, float] | None = None  # the shadow's probabilities (JSON text)
    shadow_tokens: int | None = None
    shadow_truncated: bool | None = None
    # Per-item text descriptors (name -> number, JSON text) for drift, computed at serve time;
    # nothing fills it yet (None).
    descriptors: dict[str, float] | None = None

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
        # Schema 2: nullable, so that ALTER TABLE ADD COLUMN can add them to a table with rows.
        *(sa.Column(name, kind(), nullable=True) for name, kind in ADDED_IN_2.items()),
    )


def _models_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        MODELS_TABLE,
        metadata,
        sa.Column("fingerprint", sa.Text(), primary_key=True),
        sa.Column("label_names", sa.Text(), nullable=False),  # JSON list, in class-id order
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("revision", sa.Text(), nullable=True),
        sa.Column("first_seen", sa.Double(), nullable=False),
    )


def _meta_table(metadata: sa.MetaData) -> sa.Table:
    """key -> value; today one row, the log's schema_version."""
    return sa.Table(META_TABLE, metadata, sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text(), nullable=False))


@dataclass(frozen=True)
class LoggedModel:
    """A model that wrote rows to the log (primary or shadow), as ``log_models`` records it."""

    fingerprint: str
    label_names: tuple[str, ...]
    name: str
    revision: str | None = None


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _to_row(record: LogRecord) -> dict[str, Any]:
    return {
        "time": record.time,
        "request_id": record.request_id,
        "item": record.item,
        "model_fingerprint": record.model_fingerprint,
        "model_label": record.model_label,
        "label": record.label,
        "score": record.score,
        "scores": _json_or_none(record.scores),
        "status": record.status,
        "reasons": ",".join(record.reasons),
        "text_sha256": record.text_sha256,
        "text": record.text,
        "shadow_label": record.shadow_label,
        "tokens": record.tokens,
        "truncated": record.truncated,
        "shadow_fingerprint": record.shadow_fingerprint,
        "shadow_scores": _json_or_none(record.shadow_scores),
        "shadow_tokens": record.shadow_tokens,
        "shadow_truncated": record.shadow_truncated,
        "descriptors": _json_or_none(record.descriptors),
    }


def _from_row(row: Any) -> LogRecord:
    """A record from a row of either schema version (a version-1 row has no schema-2 columns)."""
    values = row._mapping
    shadow_scores, descriptors = values.get("shadow_scores"), values.get("descriptors")
    truncated, shadow_truncated = values.get("truncated"), values.get("shadow_truncated")
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
        tokens=values.get("tokens"),
        truncated=None if truncated is None else bool(truncated),
        shadow_fingerprint=values.get("shadow_fingerprint"),
        shadow_scores=None if shadow_scores is None else json.loads(shadow_scores),
        shadow_tokens=values.get("shadow_tokens"),
        shadow_truncated=None if shadow_truncated is None else bool(shadow_truncated),
        descriptors=None if descriptors is None else json.loads(descriptors),
    )


class PredictionStore:
    """The ``predictions`` table (and ``log_models``, ``log_meta``) behind one SQLAlchemy engine.
    Build it with ``open_store``.

    ``migrate=True`` creates the tables, or brings an older log to ``LOG_SCHEMA_VERSION``;
    ``migrate=False`` only reads: the log must exist, it is left as it is, and ``table`` holds
    the columns it has. A log newer than ``LOG_SCHEMA_VERSION`` raises ``ConfigError`` either way.
    """

    def __init__(self, engine: Engine, *, migrate: bool = True):
        self.engine = engine
        self._metadata = sa.MetaData()
        self.table = _table(self._metadata)
        self.models_table = _models_table(self._metadata)
        self.meta_table = _meta_table(self._metadata)
        self.shown = shown = engine.url.render_as_string(hide_password=True)  # for messages
        if migrate:
            self.schema_version = _migrate(engine, self._metadata, self.table, self.meta_table, shown)
            self._columns = list(self.table.columns)
        else:
            self.schema_version = _read_version(engine, shown)
            # Only the columns this log has, so that a version-1 log reads without a change.
            present = {c["name"] for c in sa.inspect(engine).get_columns(TABLE)}
            self._columns = [c for c in self.table.columns if c.name in present]

    def _select(self) -> sa.Select:
        return sa.select(*self._columns)

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
            self._select()
            .where(self.table.c.request_id == request_id)
            .order_by(self.table.c.item, self.table.c.id)
        )
        with self.engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query)]

    def request_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(self.table.c.request_id).distinct()).scalars())

    def records(self, *, since: float | None = None, until: float | None = None) -> list[LogRecord]:
        """The records served at ``since <= time < until`` (epoch seconds; None: no bound), in
        served order: time, then request id, then item (then insertion, for a retried request)."""
        t = self.table
        query = self._select().order_by(t.c.time, t.c.request_id, t.c.item, t.c.id)
        if since is not None:
            query = query.where(t.c.time >= since)
        if until is not None:
            query = query.where(t.c.time < until)
        with self.engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query)]

    def time_range(self) -> tuple[int, float | None, float | None]:
        """How many rows the log holds, and the first and last served time (None when empty)."""
        t = self.table
        with self.engine.connect() as conn:
            count, first, last = conn.execute(sa.select(sa.func.count(), sa.func.min(t.c.time),
                                                        sa.func.max(t.c.time))).one()
        return int(count), first, last

    def register_model(self, model: LoggedModel, *, now: float) -> None:
        """Record a model's label order once (kept as first recorded; a fingerprint covers the
        labels, so a second server with the same fingerprint has the same ones)."""
        row = {"fingerprint": model.fingerprint, "label_names": json.dumps(list(model.label_names)),
               "name": model.name, "revision": model.revision, "first_seen": now}
        with self.engine.begin() as conn:
            known = conn.execute(sa.select(self.models_table.c.fingerprint)
                                 .where(self.models_table.c.fingerprint == model.fingerprint)).first()
            if known is not None:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(self.models_table.insert(), [row])
        except sa.exc.IntegrityError:  # another server recorded it at the same moment
            pass

    def models(self) -> dict[str, LoggedModel]:
        """The models recorded in ``log_models`` by fingerprint (none in a version-1 log)."""
        if not sa.inspect(self.engine).has_table(MODELS_TABLE):
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.models_table)).all()
        return {row.fingerprint: LoggedModel(row.fingerprint, tuple(json.loads(row.label_names)), row.name,
                                             row.revision) for row in rows}

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionStore({self.shown!r})"


def open_store(url: str, *, create: bool = True) -> PredictionStore:
    """Open (creating if needed, migrating an older schema) the prediction log at ``url``.

    ``sqlite:///path.db`` (relative path) or ``sqlite:////abs/path.db``: WAL mode, fsync on
    every commit, parent folder created. ``postgresql://user@host:port/db`` (or ``postgres://``)
    uses psycopg 3. ``create=False`` opens an existing log to read it: nothing is created or
    migrated. Raises ``ConfigError`` (field ``log_url``) when the URL is malformed, names
    another database, the database cannot be reached or written, holds no log (``create=False``)
    or holds a log of a newer schema than this textgate knows.
    """
    if not create:
        _require_existing_sqlite(url)
    engine, shown = create_log_engine(url)
    try:
        return PredictionStore(engine, migrate=create)
    except ConfigError:
        engine.dispose()
        raise
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad credentials, read-only file
        engine.dispose()
        raise log_url_error(f"cannot be opened ({first_line(exc)})", shown) from None


def _require_existing_sqlite(url: str) -> None:
    """A SQLite log to read must be a file already: opening a missing one would create it."""
    parsed, shown = parse_log_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not database.startswith("file:") and not Path(database).expanduser().is_file():
        raise log_url_error(f"names a SQLite file that does not exist ({database}); give the log_url of "
                            "the server's prediction log", shown)


def _read_version(engine: Engine, shown: str) -> int:
    """The schema version of the log behind ``engine``: 1 without ``log_meta``. ConfigError
    when there is no log, or it is newer than this textgate."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(TABLE):
        raise log_url_error(f"holds no prediction log (no '{TABLE}' table); give the log_url of the "
                            "server's prediction log", shown)
    version = 1
    if inspector.has_table(META_TABLE):
        meta = _meta_table(sa.MetaData())
        with engine.connect() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == SCHEMA_KEY)).scalar()
        version = int(value) if value is not None else 1
    if version > LOG_SCHEMA_VERSION:
        raise log_url_error(f"holds a prediction log of schema version {version}, newer than this textgate "
                            f"knows ({LOG_SCHEMA_VERSION}); upgrade textgate", shown)
    return version


def _migrate(engine: Engine, metadata: sa.MetaData, table: sa.Table, meta: sa.Table, shown: str) -> int:
    """Create the log, or bring an older one to LOG_SCHEMA_VERSION; returns the version found.

    Safe beside a server of the old version (it inserts by column name; the new columns are
    nullable) and beside another server migrating at the same moment (a column that appeared
    meanwhile is skipped, and recording the version tolerates a concurrent insert)."""
    inspector = sa.inspect(engine)
    found = _read_version(engine, shown) if inspector.has_table(TABLE) else LOG_SCHEMA_VERSION
    if inspector.has_table(TABLE):
        present = {c["name"] for c in inspector.get_columns(TABLE)}
        missing = [name for name in ADDED_IN_2 if name not in present]
        for name in missing:
            _add_column(engine, table.c[name])
        if missing:
            logger.info("prediction log: migrated schema %d -> %d (added columns %s)", found, LOG_SCHEMA_VERSION,
                        ", ".join(missing))
    metadata.create_all(engine)  # idempotent: creates only the missing tables
    with engine.begin() as conn:
        updated = conn.execute(meta.update().where(meta.c.key == SCHEMA_KEY)
                               .values(value=str(LOG_SCHEMA_VERSION))).rowcount
    if not updated:
        try:
            with engine.begin() as conn:
                conn.execute(meta.insert(), [{"key": SCHEMA_KEY, "value": str(LOG_SCHEMA_VERSION)}])
        except sa.exc.IntegrityError:  # another server recorded it first
            pass
    return found


def _add_column(engine: Engine, column: sa.Column) -> None:
    kind = column.type.compile(dialect=engine.dialect)
    name = engine.dialect.identifier_preparer.quote(column.name)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}"))
        return
    try:  # SQLite has no IF NOT EXISTS here
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {TABLE} ADD COLUMN {name} {kind}"))
    except sa.exc.OperationalError as exc:
        if "duplicate column" not in str(exc).lower():
            raise


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


def existing_log_hash_key(log_url: str, *, key_file: Path | str | None = None,
                          field: str = "--hash-key-file") -> bytes | None:
    """The key a reader of the log at ``log_url`` has: the contents of ``key_file``, else the key
    file beside a SQLite log when it exists, else None. Unlike ``log_hash_key`` it never creates
    a key file (a reader with a new key could not check anything)."""
    if key_file is not None:
        return read_hash_key(key_file, field=field)
    parsed, _ = parse_log_url(log_url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    beside = Path(database).expanduser()
    beside = beside.with_name(beside.name + HASH_KEY_SUFFIX)
    return read_hash_key(beside, field=KEY_FIELD) if beside.is_file() else None


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
