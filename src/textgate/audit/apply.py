"""``textgate audit apply``: write reviewed label corrections into a copy of the dataset.

The corrections file is the audit's issues.csv after review (any CSV with these columns works):

    row              0-based position in DATA (required)
    text_sha256      hash of the text at that row when audited (required): a mismatch means the
                     data changed since the audit, and the correction is refused as stale
    corrected_label  the new label (name, or id 0..K-1); empty = no change from this line
    accept           yes/true/1/x: take suggested_label (when corrected_label is empty)
    suggested_label  needed only by accept
    given_label      if present, must still be the row's label (else stale: already applied?)

Every problem is refused before anything is written: unknown labels, rows out of range,
stale rows, the same row twice, unreadable accept values. Rows without a correction are
copied unchanged, with every other column; the output keeps the input's format (CSV, TSV,
JSONL, Parquet; a TweetEval text/labels pair becomes JSONL) and each label keeps its style
(an id stays an id, a name a name). A changelog CSV lists row, text hash, old and new label
and the corrections line each change came from.

``text_sha256`` is checked as the audit made it: the 64-hex ``text_hash`` under the audit's key
(``hash_key``, the ``--hash-key-file`` the audit was given; ``UNKEYED`` without one), or the
16-hex SHA-256 prefix of audits before schema 2, still accepted so no reviewed file is lost. A
digest made with the other key (none instead of a key, or the reverse, as summary.json's
``text_hash.keyed`` tells) is refused with the fix: the audit's ``--hash-key-file``. The
changelog's ``text_sha256`` is the 64-hex hash under ``hash_key``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textgate._internal.hashing import UNKEYED, text_hash
from textgate._internal.labels import label_lookup
from textgate.data import (
    TABLE_SUFFIXES,
    TWEETEVAL_SUFFIX,
    open_text,
    read_dataset,
    table_format,
)
from textgate.errors import DataError
from textgate.outputs import atomic_path, target_name, write_text_atomic

__all__ = ["APPLY_SCHEMA_VERSION", "ApplyResult", "Correction", "apply_corrections", "read_corrections"]

# The JSON of ApplyResult.to_dict (`textgate audit apply --format json`).
APPLY_SCHEMA_VERSION = 1

_TRUE = frozenset({"1", "true", "yes", "y", "x", "accept", "accepted"})
_FALSE = frozenset({"", "0", "false", "no", "n", "reject", "rejected"})
_MAX_LISTED = 5
# Audits of schema 1 wrote text_sha256 as the first 16 hex digits of a plain SHA-256.
_LEGACY_HASH_DIGITS = 16
_KEY_FIX = "--hash-key-file"


@dataclass(frozen=True)
class Correction:
    """One row's new label, and where it came from."""

    row: int
    text_sha256: str
    old_label: str
    new_label: str
    source: str  # e.g. "corrections.csv line 4 (corrected_label)"


@dataclass(frozen=True)
class ApplyResult:
    n_rows: int
    changes: tuple[Correction, ...]
    unchanged: int  # lines that confirmed the current label
    out_path: Path
    changelog_path: Path

    def to_dict(self) -> dict[str, Any]:
        """What ``audit apply --format json`` prints: the files written and every label changed."""
        return {"schema_version": APPLY_SCHEMA_VERSION, "kind": "textgate.audit_apply", "out": str(self.out_path),
                "changelog": str(self.changelog_path), "rows": self.n_rows, "changed": len(self.changes),
                "unchanged": self.unchanged, "changes": [asdict(change) for change in self.changes]}


def read_corrections(path: Path | str, *, texts: Sequence[str], labels: Sequence[str],
                     label_names: Sequence[str], hash_key: bytes = UNKEYED) -> tuple[list[Correction], int]:
    """Check every line of the corrections CSV against the data; return the changes and how
    many lines kept the current label. ``hash_key``: the key the audit hashed the texts with
    (see the module docstring). Raises one DataError listing the problems found."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Corrections file {path} does not exist; pass the issues.csv written by "
                        "'textgate audit' after filling in corrected_label or accept.", field="corrections", path=path)
    with path.open(encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: spreadsheets add a BOM
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        lines = list(reader)
    missing = [c for c in ("row", "text_sha256") if c not in columns]
    if missing or not {"corrected_label", "accept"} & set(columns):
        raise DataError(f"Corrections file {path.name} needs columns row, text_sha256 and corrected_label "
                        f"and/or accept; it has {', '.join(columns) or 'none'}. Edit the issues.csv that "
                        "'textgate audit' wrote.", field="corrections", path=path)
    lookup = label_lookup(tuple(label_names))
    audit_keyed = hash_key == UNKEYED and _audit_was_keyed(path)
    problems: list[str] = []
    changes: list[Correction] = []
    seen: dict[int, int] = {}
    unchanged = 0
    for line_no, line in enumerate(lines, 2):  # line 1 is the header
        where = f"line {line_no}"
        raw_row = (line.get("row") or "").strip()
        if not raw_row.isdigit():
            problems.append(f"{where}: row {raw_row!r} is not a 0-based row number")
            continue
        row = int(raw_row)
        if row >= len(texts):
            problems.append(f"{where}: row {row} is out of range (the data has {len(texts):,} rows, 0-{len(texts) - 1})")
            continue
        if row in seen:
            problems.append(f"{where}: row {row} already appears on line {seen[row]}; keep one line per row")
            continue
        seen[row] = line_no
        digest = text_hash(texts[row], hash_key)
        stale = _stale_hash((line.get("text_sha256") or "").strip(), texts[row], digest, hash_key,
                            audit_keyed=audit_keyed)
        if stale:
            problems.append(f"{where}: row {row}'s {stale}")
            continue
        given = (line.get("given_label") or "").strip()
        if given and lookup.get(given, given) != labels[row]:
            problems.append(f"{where}: row {row} is now labeled {labels[row]!r}, not {given!r} as audited "
                            "(already corrected?)")
            continue
        new, how = _requested_label(line, where, problems)
        if new is None:
            continue
        if new not in lookup:
            problems.append(f"{where}: label {new!r} is not one of {', '.join(label_names)}")
            continue
        if lookup[new] == labels[row]:
            unchanged += 1
            continue
        changes.append(Correction(row=row, text_sha256=digest, old_label=labels[row],
                                  new_label=lookup[new], source=f"{path.name} {where} ({how})"))
    if problems:
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise DataError(f"Corrections file {path.name} has {len(problems)} problem(s), so nothing was written: "
                        f"{shown}{more}.", field="corrections", path=path)
    return changes, unchanged


def _stale_hash(recorded: str, text: str, digest: str, hash_key: bytes, *, audit_keyed: bool) -> str | None:
    """None when ``recorded`` is ``text``'s hash as the audit made it; else why not, with the fix.
    ``audit_keyed``: summary.json says the audit hashed with a key."""
    if recorded == digest:
        return None
    if len(recorded) == _LEGACY_HASH_DIGITS:
        legacy = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_LEGACY_HASH_DIGITS]
        return None if recorded == legacy else ("text changed since the audit (text_sha256 differs); re-run the "
                                                "audit on this data")
    if hash_key != UNKEYED:
        if recorded == text_hash(text, UNKEYED):
            return (f"text_sha256 was made without a hash key, but {_KEY_FIX} was given; leave {_KEY_FIX} out "
                    "(the audit ran without one)")
        return (f"text changed since the audit (text_sha256 differs under the {_KEY_FIX} key); re-run the "
                f"audit on this data, or pass the {_KEY_FIX} the audit was given")
    if audit_keyed:
        return (f"text_sha256 was made with a hash key (summary.json: text_hash keyed), not without one; "
                f"pass the audit's {_KEY_FIX}")
    return ("text changed since the audit (text_sha256 differs); re-run the audit on this data, or, if the "
            f"audit ran with {_KEY_FIX}, pass the same one")


def _audit_was_keyed(corrections: Path) -> bool:
    """Whether summary.json beside the corrections says the audit hashed with a key (False when
    it cannot tell: no summary, or an audit before schema 2)."""
    try:
        summary = _summary_beside(corrections)
    except DataError:
        return False
    settings = summary.get("text_hash") if isinstance(summary, dict) else None
    return isinstance(settings, dict) and settings.get("keyed") is True


def _requested_label(line: dict[str, Any], where: str, problems: list[str]) -> tuple[str | None, str]:
    corrected = (line.get("corrected_label") or "").strip()
    if corrected:
        return corrected, "corrected_label"
    accept = (line.get("accept") or "").strip().lower()
    if accept not in _TRUE | _FALSE:
        problems.append(f"{where}: accept is {accept!r}; write yes/true/1/x to take the suggestion or leave it empty")
        return None, ""
    if accept in _TRUE:
        suggested = (line.get("suggested_label") or "").strip()
        if not suggested:
            problems.append(f"{where}: accept is set but suggested_label is empty")
            return None, ""
        return suggested, "accept"
    return None, ""


def apply_corrections(
    corrections: Path | str,
    data: Path | str,
    out_path: Path | str,
    *,
    label_names: Sequence[str] | None = None,
    text_col: str = "text",
    label_col: str = "label",
    changelog_path: Path | str | None = None,
    hash_key: bytes = UNKEYED,
) -> ApplyResult:
    """Check the corrections (see the module docstring), then write the corrected dataset to
    ``out_path`` and the changelog (default: ``<out_path stem>.changelog.csv``). ``hash_key``:
    the key the audit hashed the texts with (its ``--hash-key-file``; ``UNKEYED`` without one)."""
    data, out_path = Path(data), Path(out_path)
    # Cheap checks first: reading DATA may take a while.
    in_kind = _kind(data) or table_format(data)  # table_format raises data.py's error for an unknown suffix
    out_kind = _kind(out_path)
    wanted = "jsonl" if in_kind == "tweeteval" else in_kind
    if out_kind != wanted:
        gz = "" if wanted == "parquet" else " (optionally .gz)"
        raise DataError(f"--out {out_path.name} would change the format from {in_kind} to {out_kind or 'unknown'}; "
                        f"write a .{wanted} file{gz} so every column is kept.", field="out", path=out_path)
    if out_path.resolve() == data.resolve():
        raise DataError(f"--out {out_path} is the input file; write the corrected copy elsewhere so the "
                        "original stays for comparison.", field="out", path=out_path)
    names = tuple(label_names) if label_names is not None else _names_from_summary(Path(corrections))
    dataset = read_dataset(data, text_col=text_col, label_col=label_col, label_names=names)
    changes, unchanged = read_corrections(corrections, texts=dataset.texts, labels=list(dataset.labels),
                                          label_names=dataset.label_names, hash_key=hash_key)
    new_labels = {c.row: c.new_label for c in changes}
    ids = {name: i for i, name in enumerate(dataset.label_names)}
    if in_kind == "tweeteval":
        labels = [new_labels.get(i, lab) for i, lab in enumerate(dataset.labels)]
        with atomic_path(out_path) as partial:
            _write_jsonl_from(dataset.texts, labels, partial, text_col, label_col)
    else:
        with atomic_path(out_path) as partial:
            _rewrite_to(data, partial, in_kind, label_col, new_labels, ids)
    changelog = Path(changelog_path) if changelog_path else out_path.with_name(_stem(out_path) + ".changelog.csv")
    _write_changelog(changelog, changes)
    return ApplyResult(n_rows=len(dataset), changes=tuple(changes), unchanged=unchanged, out_path=out_path,
                       changelog_path=changelog)


def _names_from_summary(corrections: Path) -> tuple[str, ...] | None:
    """The audit's label names (summary.json beside issues.csv), so ids in DATA keep their meaning.
    None without summary.json (or without label_names in it); an unreadable one is a DataError,
    since falling back to DATA's sorted names could map ids to other labels."""
    summary = corrections.with_name("summary.json")
    content = _summary_beside(corrections)
    names = content.get("label_names") if isinstance(content, dict) else None
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise DataError(f"{summary} (beside {corrections.name}) has label_names {names!r}, not a list of "
                        "names. Restore it from the audit's --out folder, or pass the label names in id "
                        "order with --label-names.", field="summary", path=summary)
    return tuple(names) if names else None


def _summary_beside(corrections: Path) -> Any:
    """The parsed summary.json beside the corrections file; None when there is none."""
    summary = corrections.with_name("summary.json")
    if not summary.is_file():
        return None
    try:
        return json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{summary} (beside {corrections.name}) is not readable JSON ({exc}), so the audit's "
                        "label names are unknown. Restore it from the audit's --out folder, or pass the label "
                        "names in id order with --label-names.", field="summary", path=summary) from exc


def _stem(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0]


def _kind(path: Path) -> str | None:
    """"tweeteval", the table format data.py reads for ``path``'s suffix, or None if unsupported."""
    name = path.name.lower()
    if name.endswith(TWEETEVAL_SUFFIX):
        return "tweeteval"
    return next((fmt for suffix, fmt in TABLE_SUFFIXES.items() if name.endswith(suffix)), None)


def _open_for_writing(path: Path):
    # Compression follows the final name, not the temporary file's.
    if target_name(path).lower().endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")


def _new_value(old: Any, name: str, ids: dict[str, int]) -> Any:
    """The new label in the old value's style: an id for an id, a name for a name."""
    if isinstance(old, bool):
        return name
    if isinstance(old, int) or (isinstance(old, float) and old.is_integer()):
        return ids[name]
    if isinstance(old, str) and old.strip().isdigit():
        return str(ids[name])
    return name


def _rewrite_to(data: Path, out: Path, kind: str, label_col: str, new_labels: dict[int, str], ids: dict[str, int]) -> None:
    if kind == "parquet":
        _rewrite_parquet(data, out, label_col, new_labels, ids)
    elif kind == "jsonl":
        with open_text(data) as src, _open_for_writing(out) as dst:
            row = 0
            for line in src:
                if not line.strip():
                    continue
                record = json.loads(line)
                if row in new_labels:
                    record[label_col] = _new_value(record.get(label_col), new_labels[row], ids)
                dst.write(json.dumps(record, ensure_ascii=False) + "\n")
                row += 1
    else:
        delimiter = "\t" if kind == "tsv" else ","
        with open_text(data) as src, _open_for_writing(out) as dst:
            reader = csv.reader(src, delimiter=delimiter)
            writer = csv.writer(dst, delimiter=delimiter, lineterminator="\n")
            header = next(reader)
            writer.writerow(header)
            column = header.index(label_col)
            for row, cells in enumerate(r for r in reader if r):
                if row in new_labels:
                    cells[column] = str(_new_value(cells[column], new_labels[row], ids))
                writer.writerow(cells)


def _rewrite_parquet(data: Path, out: Path, label_col: str, new_labels: dict[int, str], ids: dict[str, int]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(data)
    values = table.column(label_col).to_pylist()
    for row, name in new_labels.items():
        values[row] = _new_value(values[row], name, ids)
    index = table.column_names.index(label_col)
    column = pa.array(values, type=table.schema.field(label_col).type)
    pq.write_table(table.set_column(index, table.schema.field(label_col), column), out)


def _write_jsonl_from(texts: Sequence[str], labels: Sequence[str], out: Path, text_col: str, label_col: str) -> None:
    with _open_for_writing(out) as dst:
        for text, label in zip(texts, labels):
            dst.write(json.dumps({text_col: text, label_col: label}, ensure_ascii=False) + "\n")


def _write_changelog(path: Path, changes: Sequence[Correction]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "text_sha256", "old_label", "new_label", "source"])
    for c in changes:
        writer.writerow([c.row, c.text_sha256, c.old_label, c.new_label, c.source])
    write_text_atomic(path, buffer.getvalue())
