"""A window of the prediction log read back as data: what `textgate log export` and `textgate
log sample` (and any other reader of served traffic) start from.

    read_window        open a log read-only, take the rows served in [since, until) of one model
                       (the primary's, or with ``shadow=True`` the shadow's), in served order
    LogWindow          those rows (``LogRecord``), the model, the window's bounds, what was left out
    window_predictions the window as a ``Predictions`` record, one row per record, with text hashes
    check_hash_key     whether a key file is the one the log's hashes were made with
    parse_time         an ISO 8601 time (UTC when it has no offset) as epoch seconds

Rows without probabilities (the guard's ``non_finite``; for the shadow, rows where it did not
run, failed, or were logged before schema 2) are left out of a window and counted in
``left_out``: a ``Predictions`` record holds probabilities for all of its rows or none.
Every function raises ``DataError`` or ``ConfigError`` naming what to change (CLI exit 2).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from textgate._internal.hashing import TEXT_HASH_ALGORITHM, text_hash
from textgate.errors import ConfigError, DataError
from textgate.predictions import Predictions, texts_fingerprint
from textgate.serve.store import LoggedModel, LogRecord, open_store

__all__ = ["LogWindow", "Role", "check_hash_key", "format_time", "parse_time", "read_window",
           "window_predictions"]

Role = Literal["primary", "shadow"]
# The shortest fingerprint prefix --model accepts: shorter ones match by accident.
MIN_PREFIX = 8


@dataclass(frozen=True)
class LogWindow:
    """The log rows of one model served in ``[since, until)``, in served order (time, request
    id, item). ``role``: whose predictions the window holds, the primary's or the shadow's
    (then ``fingerprint`` is the shadow's, and the rows are the items it ran on)."""

    records: tuple[LogRecord, ...]
    role: Role
    fingerprint: str
    model: LoggedModel | None  # None: the log predates log_models (schema 1)
    source: str  # the log URL, password hidden
    schema_version: int
    since: float | None = None
    until: float | None = None
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> rows of the model left out

    def __len__(self) -> int:
        return len(self.records)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The model's labels in class-id order (``log_models``); for a schema-1 log, which did
        not record them, the labels of the rows' probabilities in sorted order."""
        if self.model is not None:
            return self.model.label_names
        return tuple(sorted({name for r in self.records for name in (self.probabilities_of(r) or {})}))

    def probabilities_of(self, record: LogRecord) -> dict[str, float] | None:
        return _probabilities(record, self.role)

    def predicted_of(self, record: LogRecord) -> str:
        return str(record.shadow_label if self.role == "shadow" else record.model_label)

    @property
    def texts(self) -> list[str | None]:
        return [r.text for r in self.records]

    def summary(self) -> dict[str, Any]:
        """The window in a report: where it came from, its bounds, what it holds."""
        counts = Counter(self.predicted_of(r) for r in self.records)
        return {"log": self.source, "schema_version": self.schema_version, "role": self.role,
                "model_fingerprint": self.fingerprint, "model_name": None if self.model is None else self.model.name,
                "since": format_time(self.since), "until": format_time(self.until),
                "first": format_time(self.records[0].time) if self.records else None,
                "last": format_time(self.records[-1].time) if self.records else None,
                "rows": len(self.records), "predicted_counts": dict(sorted(counts.items())),
                "with_text": sum(r.text is not None for r in self.records), "left_out": dict(self.left_out)}


def parse_time(value: str, *, option: str = "--since") -> float:
    """An ISO 8601 date or time (``2026-12-01``, ``2026-12-01T08:00``, ``...+02:00``, ``...Z``)
    as epoch seconds; without an offset it is UTC. ConfigError (field ``option``) otherwise."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"Option '{option}' must be an ISO 8601 time such as 2026-12-01 or "
                          f"2026-12-01T08:00:00Z (UTC without an offset). Got {value!r} instead.",
                          field=option) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def format_time(value: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with microseconds (None stays None)."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_window(url: str, *, since: float | None = None, until: float | None = None, model: str | None = None,
                shadow: bool = False) -> LogWindow:
    """The rows of the log at ``url`` served in ``[since, until)`` of one model.

    ``model``: a fingerprint, or a unique prefix of at least 8 characters, of the primary model
    (with ``shadow=True``, of the shadow). Without it the window must hold one model only. The
    log is opened read-only (``open_store(url, create=False)``): nothing is created or migrated.
    Raises ConfigError for a log that cannot be read, DataError for an empty window, an unknown
    or ambiguous fingerprint, a window that mixes models, and ``shadow=True`` without shadow rows.
    """
    with open_store(url, create=False) as store:
        records = store.records(since=since, until=until)
        models = store.models()
        total, first, last = store.time_range()
        shown, version = store.shown, store.schema_version
    bounds = _bounds_phrase(since, until)
    if not records:
        held = (f"it holds {_rows(total)} served from {format_time(first)} to {format_time(last)}" if total
                else "it holds no rows yet")
        raise DataError(f"The prediction log {shown} has no rows {bounds}; {held}. "
                        "Widen --since/--until.", field="window")
    role: Role = "shadow" if shadow else "primary"
    if shadow:
        ran = [r for r in records if r.shadow_label is not None]
        if not ran:
            raise DataError(f"The prediction log {shown} has no shadow predictions among its {_rows(len(records))} "
                            f"{bounds}; a shadow runs only when the server starts with "
                            "--shadow CANDIDATE.toml.", field="shadow")
        left_out = Counter("logged before schema 2 (no shadow fingerprint)" for r in ran
                           if r.shadow_fingerprint is None)
        candidates = [r for r in ran if r.shadow_fingerprint is not None]
        if not candidates:
            raise DataError(f"The shadow rows of {shown} {bounds} were logged before schema 2 and hold only "
                            "labels, no probabilities or fingerprint; export a window served since the upgrade.",
                            field="shadow")
    else:
        left_out, candidates = Counter(), records
    fingerprint = _choose_model(candidates, models, model, role=role, bounds=bounds, shown=shown)
    chosen = [r for r in candidates if _fingerprint_of(r, role) == fingerprint]
    kept = [r for r in chosen if _probabilities(r, role) is not None]
    missing = len(chosen) - len(kept)
    if missing:
        left_out["no probabilities (guard rule non_finite, or the shadow failed)" if role == "primary"
                 else "no probabilities (not finite)"] += missing
    if not kept:
        raise DataError(f"None of the {_rows(len(chosen))} of model {fingerprint} {bounds} in {shown} has "
                        "probabilities (all were rejected as non_finite); there is nothing to export.",
                        field="window")
    return LogWindow(records=tuple(kept), role=role, fingerprint=fingerprint, model=models.get(fingerprint),
                     source=shown,
                     schema_version=version, since=since, until=until, left_out=dict(left_out))


def _probabilities(record: LogRecord, role: Role) -> dict[str, float] | None:
    return record.shadow_scores if role == "shadow" else record.scores


def _fingerprint_of(record: LogRecord, role: Role) -> str | None:
    return record.shadow_fingerprint if role == "shadow" else record.model_fingerprint


def _bounds_phrase(since: float | None, until: float | None) -> str:
    """Where the window lies, to follow "rows": "in the whole log", "served from T1 before T2"."""
    if since is None and until is None:
        return "in the whole log"
    parts = ([f"from {format_time(since)}"] if since is not None else []) + \
        ([f"before {format_time(until)}"] if until is not None else [])
    return "served " + " ".join(parts)


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def _choose_model(records: Sequence[LogRecord], models: Mapping[str, LoggedModel], wanted: str | None, *,
                  role: Role, bounds: str, shown: str) -> str:
    counts = Counter(_fingerprint_of(r, role) for r in records)
    held = ", ".join(f"{fp} ({_rows(n)}{_name(models, fp)})" for fp, n in counts.most_common())
    what = "shadow model" if role == "shadow" else "model"
    if wanted is None:
        if len(counts) > 1:
            raise DataError(f"The rows {bounds} of {shown} mix {len(counts)} {what} fingerprints: {held}. "
                            "Choose one with --model FINGERPRINT, or narrow --since/--until.", field="model")
        return str(next(iter(counts)))
    matches = [fp for fp in counts if fp == wanted] or \
        [fp for fp in counts if len(wanted) >= MIN_PREFIX and str(fp).startswith(wanted)]
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        raise DataError(f"--model {wanted!r} is the start of {len(matches)} {what} fingerprints in the window: "
                        f"{', '.join(map(str, matches))}; give more of it.", field="model")
    short = f" (a prefix needs at least {MIN_PREFIX} characters)" if len(wanted) < MIN_PREFIX else ""
    raise DataError(f"--model {wanted!r} names no {what} of the rows {bounds} of {shown}{short}; "
                    f"they hold {held}.", field="model")


def _name(models: Mapping[str, LoggedModel], fingerprint: str | None) -> str:
    model = models.get(str(fingerprint))
    return f", {model.name}" if model is not None else ""


def window_predictions(window: LogWindow) -> Predictions:
    """The window as a ``Predictions`` record, row ``i`` = ``window.records[i]``: the model's own
    label (``model_label``, before the guard; the shadow's label), its probabilities, tokens and
    truncation where logged, and each row's ``text_sha256`` (the log's keyed hash).

    ``data_fingerprint`` is the texts' when the log holds every text, else empty (no check)."""
    names = window.label_names
    probabilities = np.empty((len(window), len(names)), dtype=np.float32)
    for i, record in enumerate(window.records):
        scores = window.probabilities_of(record) or {}
        if set(scores) != set(names):
            raise DataError(f"Log row {record.request_id}/{record.item} of {window.source} has probabilities for "
                            f"{sorted(scores)}, but model {window.fingerprint} has the labels {list(names)}; "
                            "the log is inconsistent.", field="scores")
        probabilities[i] = [scores[name] for name in names]
    shadow = window.role == "shadow"
    tokens = [r.shadow_tokens if shadow else r.tokens for r in window.records]
    truncated = [r.shadow_truncated if shadow else _truncated(r) for r in window.records]
    texts = window.texts
    model = window.model
    settings = {
        "source": "prediction log",
        "log": window.summary(),
        "model": {"fingerprint": window.fingerprint, "name": None if model is None else model.name,
                  "revision": None if model is None else model.revision,
                  "label_names_from": "log_models" if model is not None else "the rows' probabilities, sorted "
                                      "(the log predates log_models)"},
    }
    return Predictions(
        label_names=names,
        predicted=np.array([window.predicted_of(r) for r in window.records], dtype=object),
        probabilities=probabilities,
        token_counts=None if any(t is None for t in tokens) else np.asarray(tokens, dtype=np.int64),
        truncated=None if any(t is None for t in truncated) else np.asarray(truncated, dtype=bool),
        settings=settings,
        model_fingerprint=window.fingerprint,
        data_fingerprint=texts_fingerprint([t for t in texts if t is not None]) if None not in texts else "",
        text_sha256=np.array([r.text_sha256 for r in window.records], dtype=object),
        text_hash={"algorithm": TEXT_HASH_ALGORITHM, "keyed": True},
    )


def _truncated(record: LogRecord) -> bool | None:
    if record.truncated is not None:
        return record.truncated
    # Schema-1 rows: the guard names truncation among the reasons of every truncated text it scored.
    return "truncated" in record.reasons if record.scores is not None else None


def check_hash_key(window: LogWindow, key: bytes, *, option: str = "--hash-key-file") -> int:
    """Check ``key`` against every row of the window that holds its text: the number checked
    (0 when the log keeps no texts, so the key cannot be checked). ConfigError when a hash
    differs: the key is not the one the server hashed with."""
    checked = wrong = 0
    for record in window.records:
        if record.text is None:
            continue
        checked += 1
        wrong += text_hash(record.text, key) != record.text_sha256
    if wrong:
        raise ConfigError(f"The key in '{option}' is not the one the log's text hashes were made with: "
                          f"{wrong:,} of {checked:,} rows with text hash differently. Give the server's key file "
                          "(log_hash_key_file, or <database>.hashkey beside a SQLite log).", field=option)
    return checked

