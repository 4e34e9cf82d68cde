"""Reading labeled datasets: CSV, TSV, JSONL, Parquet (optionally gzipped) and TweetEval pairs.

Every reader ends in the same `Dataset`: texts, labels as *names*, the label set, the other
columns (for column-value slices) and a fingerprint over texts and labels that does not depend
on the file format. Row numbers in messages are 1-based data rows (the header is not counted);
JSON syntax errors give the 1-based line instead, since blank lines are skipped.

Labels may be names or integer ids. With known ``label_names`` a value equal to a name is kept
and an id ``0..K-1`` becomes ``label_names[id]``; without them, names found in the file form
the label set (sorted) and ids are an error, because nothing says what they mean.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgate._internal.labels import label_lookup
from textgate.errors import ConfigError, DataError
from textgate.text import is_empty_text

__all__ = [
    "SUPPORTED_FORMATS",
    "TABLE_SUFFIXES",
    "TWEETEVAL_SUFFIX",
    "Dataset",
    "open_text",
    "read_dataset",
    "read_label_list",
    "read_prediction_column",
    "table_format",
]

# Checked with str.endswith on the lower-cased file name; "_text.txt" is the TweetEval layout.
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".csv.gz": "csv",
    ".tsv.gz": "tsv",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
}
TWEETEVAL_SUFFIX = "_text.txt"
SUPPORTED_FORMATS = (*TABLE_SUFFIXES, f"{TWEETEVAL_SUFFIX} (TweetEval pair)")

_ID = re.compile(r"\d+")
# Long enough to see what went wrong, short enough for one terminal line per error.
_MAX_LISTED = 20


@dataclass(frozen=True, eq=False)
class Dataset:
    """One labeled (or unlabeled) dataset, rows in file order.

    ``labels`` is an object array of label names, or None when the file has no label column
    and labels were not required (or ``label_col`` is None). ``columns`` holds every column
    other than the text and label columns. ``empty_text_rows`` are 0-based indices of empty
    or whitespace-only texts (a missing text counts as ""); they are kept, never dropped.
    """

    texts: tuple[str, ...]
    labels: np.ndarray | None
    label_names: tuple[str, ...]
    columns: Mapping[str, tuple]
    path: Path
    text_col: str
    label_col: str | None
    fingerprint: str
    empty_text_rows: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def summary(self) -> str:
        """One human line, e.g. "2,000 examples from val.jsonl; 3 labels; 1 empty text (row 18)"."""
        parts = [f"{_count(len(self), 'example')} from {self.path.name}"]
        parts.append("no labels" if self.labels is None else _count(len(self.label_names), "label"))
        if self.empty_text_rows:
            parts.append(f"{_count(len(self.empty_text_rows), 'empty text')} "
                         f"({_row_list([i + 1 for i in self.empty_text_rows])})")
        return "; ".join(parts)


def read_dataset(
    path: Path | str,
    *,
    text_col: str = "text",
    label_col: str | None = "label",
    label_names: Sequence[str] | None = None,
    require_labels: bool = True,
) -> Dataset:
    """Read a dataset file; the format follows the suffix (see ``SUPPORTED_FORMATS``).

    ``label_col=None`` reads the texts only: no labels, whatever the file holds or
    ``require_labels`` says (a TweetEval labels or mapping file is not read).
    """
    path = Path(path)
    known_names = _check_label_names(label_names)
    _require_file(path, what="Dataset file")
    if path.name.lower().endswith(TWEETEVAL_SUFFIX):
        table, mapping = _read_tweeteval(path, text_col=text_col, label_col=label_col,
                                         require_labels=require_labels)
    else:
        table, mapping = _read_table(path), None
    _require_column(table, text_col, flag="--text-col", path=path)
    has_labels = label_col is not None and label_col in table
    if require_labels and label_col is not None and not has_labels:
        _require_column(table, label_col, flag="--label-col", path=path)
    texts = tuple(_as_text(v, row=i, column=text_col, path=path) for i, v in enumerate(table[text_col], 1))
    labels, names = None, known_names or mapping or ()
    if has_labels:
        raw = table[label_col]
        if mapping is not None:
            raw = _apply_mapping(raw, mapping)
        labels, names = _resolve_labels(raw, label_names=known_names or mapping,
                                        path=path, label_col=label_col)
    return Dataset(
        texts=texts,
        labels=labels,
        label_names=names,
        columns={k: tuple(v) for k, v in table.items() if k not in (text_col, label_col)},
        path=path,
        text_col=text_col,
        label_col=label_col,
        fingerprint=_fingerprint(texts, labels),
        empty_text_rows=tuple(i for i, t in enumerate(texts) if is_empty_text(t)),
    )


def read_label_list(path: Path | str, *, label_names: Sequence[str]) -> np.ndarray:
    """Read a plain file of one predicted label (name or id) per line, as label names.

    Values that are neither a name nor a valid id are kept verbatim: they are invalid
    predictions that metrics count, not unreadable input.
    """
    path = Path(path)
    names = _check_label_names(label_names) or ()
    _require_file(path, what="Predictions file")
    lines = _read_lines(path)
    if not lines:
        raise DataError(f"Predictions file {path} is empty; it needs one predicted label per line.",
                        field="predictions", path=path)
    return _map_predictions(lines, names)


def read_prediction_column(
    path: Path | str, *, column: str = "prediction", label_names: Sequence[str]
) -> np.ndarray:
    """Read the ``column`` of a CSV/TSV/JSONL/Parquet file as predicted label names.

    As in :func:`read_label_list`, unknown values are kept verbatim and valid ids become names;
    a missing value becomes "" (an invalid prediction).
    """
    path = Path(path)
    names = _check_label_names(label_names) or ()
    _require_file(path, what="Predictions file")
    if path.name.lower().endswith(TWEETEVAL_SUFFIX):
        raise DataError(f"Predictions file {path} is a plain text file; read one-label-per-line "
                        "files with read_label_list, or pass a CSV/JSONL/Parquet file with a "
                        f"'{column}' column.", field="predictions", path=path)
    table = _read_table(path)
    if column not in table:
        raise DataError(f"Column '{column}' not found in {path.name}; available columns: "
                        f"{', '.join(table)}. Name the predictions column '{column}' or pass "
                        "the column that holds them.", field=column, path=path)
    return _map_predictions(table[column], names)


# --- reading files -------------------------------------------------------------------------

def _require_file(path: Path, *, what: str) -> None:
    if not path.exists():
        raise DataError(f"{what} {path} does not exist; check the path.", field="path", path=path)
    if not path.is_file():
        raise DataError(f"{what} {path} is a directory, not a file; pass one data file "
                        f"({', '.join(SUPPORTED_FORMATS)}).", field="path", path=path)


def table_format(path: Path) -> str:
    """The table format (a value of TABLE_SUFFIXES) that ``path``'s suffix names."""
    name = path.name.lower()
    for suffix, fmt in TABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise DataError(f"File {path.name} has an unsupported format; supported: "
                    f"{', '.join(SUPPORTED_FORMATS)}. Convert it or rename it with the right "
                    "suffix.", field="path", path=path)


def _read_table(path: Path) -> dict[str, list[Any]]:
    """Columns of a tabular file, each a list of raw values; DataError when it has no rows."""
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            table = _read_parquet(path)
        elif fmt == "jsonl":
            table = _read_jsonl(path)
        else:
            table = _read_csv(path, delimiter="\t" if fmt == "tsv" else ",")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name} is not valid UTF-8 text ({exc.reason} at byte "
                        f"{exc.start}); save it as UTF-8.", field="path", path=path) from exc
    except (OSError, EOFError) as exc:  # truncated or non-gzip .gz files land here
        raise DataError(f"{path.name} cannot be read ({exc}); check that the file is complete "
                        "and matches its suffix.", field="path", path=path) from exc
    if not table or not any(len(v) for v in table.values()):
        raise DataError(f"{path.name} has no rows; a dataset needs at least one example.",
                        field="path", path=path)
    return table


def open_text(path: Path):
    """``path`` opened for reading as text (gzip when it ends in .gz)."""
    # utf-8-sig drops a BOM (Excel writes one); newline="" lets csv handle quoted newlines.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_csv(path: Path, *, delimiter: str) -> dict[str, list[Any]]:
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            rows = [row for row in reader if row]  # csv yields [] for blank lines
        except csv.Error as exc:
            raise DataError(f"{path.name} is not valid CSV near line {reader.line_num} ({exc}).",
                            field="path", path=path, row=reader.line_num) from exc
    if header is None:
        return {}
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise DataError(f"{path.name} has duplicate column names in its header: "
                        f"{', '.join(duplicated)}; rename them so each column is unique.",
                        field="header", path=path)
    for i, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise DataError(f"Row {i} of {path.name} has {len(row)} fields but the header has "
                            f"{len(header)}; quote fields that contain the delimiter.",
                            field="path", path=path, row=i)
    return {name: [row[j] for row in rows] for j, name in enumerate(header)}


def _read_jsonl(path: Path) -> dict[str, list[Any]]:
    records: list[dict[str, Any]] = []
    with open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"Line {line_no} of {path.name} is not valid JSON ({exc.msg} at "
                                f"column {exc.colno}); each non-blank line must be one JSON "
                                "object.", field="path", path=path, row=line_no) from exc
            if not isinstance(record, dict):
                raise DataError(f"Line {line_no} of {path.name} is a JSON "
                                f"{type(record).__name__}, not an object; write one "
                                '{"text": ..., "label": ...} object per line.',
                                field="path", path=path, row=line_no)
            records.append(record)
    names = list(dict.fromkeys(key for record in records for key in record))
    return {name: [record.get(name) for record in records] for name in names}


def _read_parquet(path: Path) -> dict[str, list[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path.name} is not a readable Parquet file ({exc}).",
                        field="path", path=path) from exc
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _read_lines(path: Path) -> list[str]:
    """Lines of a plain text file; the final newline ends the last line, it adds no row."""
    try:
        with open_text(path) as f:
            content = f.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name} is not valid UTF-8 text ({exc.reason} at byte "
                        f"{exc.start}); save it as UTF-8.", field="path", path=path) from exc
    # split("\n") rather than splitlines(): tweets may contain \u2028 or \x85, which are text.
    lines = [line.removesuffix("\r") for line in content.split("\n")]
    if lines[-1] == "":
        lines.pop()
    return lines


def _read_tweeteval(
    path: Path, *, text_col: str, label_col: str | None, require_labels: bool
) -> tuple[dict[str, list[Any]], tuple[str, ...] | None]:
    """The TweetEval layout: DIR/x_text.txt, DIR/x_labels.txt, optional DIR/mapping.txt."""
    texts = _read_lines(path)
    if not texts:
        raise DataError(f"{path.name} has no rows; a dataset needs at least one example.",
                        field="path", path=path)
    if label_col is None:
        return {text_col: texts}, None
    mapping_path = path.with_name("mapping.txt")
    mapping = _read_mapping(mapping_path) if mapping_path.is_file() else None
    labels_path = path.with_name(path.name[: -len(TWEETEVAL_SUFFIX)] + "_labels.txt")
    if not labels_path.is_file():
        if require_labels:
            raise DataError(f"Labels file {labels_path} not found; a TweetEval text file "
                            f"{path.name} needs its labels beside it, one per line.",
                            field="labels", path=labels_path)
        return {text_col: texts}, mapping
    labels = [line.strip() for line in _read_lines(labels_path)]
    if len(labels) != len(texts):
        raise DataError(f"{path.name} has {len(texts):,} lines but {labels_path.name} has "
                        f"{len(labels):,}; each text line needs exactly one label line.",
                        field="labels", path=labels_path)
    return {text_col: texts, label_col: labels}, mapping


def _read_mapping(path: Path) -> tuple[str, ...]:
    """Label names from ``id<TAB>name`` lines; ids must be exactly 0..K-1."""
    by_id: dict[int, str] = {}
    for line_no, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or not _ID.fullmatch(parts[0]):
            raise DataError(f"Line {line_no} of {path} should be 'id<TAB>name' (e.g. "
                            f"'0\tnegative'); got {line!r}.", field="mapping", path=path,
                            row=line_no)
        by_id[int(parts[0])] = parts[1].strip()
    if sorted(by_id) != list(range(len(by_id))) or not by_id:
        raise DataError(f"{path} must number its labels 0..K-1 with no gaps; got ids "
                        f"{sorted(by_id)}.", field="mapping", path=path)
    return tuple(by_id[i] for i in range(len(by_id)))


def _require_column(table: Mapping[str, Any], column: str, *, flag: str, path: Path) -> None:
    if column not in table:
        names = list(table)
        if len(names) == 1 and "\t" in names[0] and table_format(path) == "csv":
            raise DataError(f"Column '{column}' ({flag}) not found in {path.name}: its header is one "
                            f"column holding tabs ({names[0][:60]!r}), so the file looks "
                            "tab-separated. Rename it with a .tsv suffix (or convert it to "
                            "comma-separated CSV).", field=column, path=path)
        raise DataError(f"Column '{column}' ({flag}) not found in {path.name}; available "
                        f"columns: {', '.join(names) or '(none)'}. Pass {flag} with one of them.",
                        field=column, path=path)


# --- values --------------------------------------------------------------------------------

def _is_null(value: Any) -> bool:
    # NaN is how pandas writes a missing value into Parquet and JSON.
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_text(value: Any, *, row: int, column: str, path: Path) -> str:
    """A text cell; a missing value is the empty text, anything but a string is an error."""
    if _is_null(value):
        return ""
    if not isinstance(value, str):
        raise DataError(f"Row {row} of {path.name}: column '{column}' holds {_kind(value)} "
                        f"({_preview(value)}), not a string; texts must be strings. Quote the value "
                        "or fix the file, or pick the right column with --text-col.",
                        field=column, path=path, row=row)
    return value


def _kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), ((int, float), "a number"), (list, "a list"), (dict, "an object"))
    return next((name for types, name in kinds if isinstance(value, types)), f"a {type(value).__name__}")


def _preview(value: Any, limit: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _as_label(value: Any) -> str:
    """A label value as a string; integral floats (1.0 from pandas) read as ids."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.strip() if isinstance(value, str) else str(value)


def _check_label_names(label_names: Sequence[str] | None) -> tuple[str, ...] | None:
    if label_names is None:
        return None
    names = tuple(label_names)
    if isinstance(label_names, str) or not names or len(set(names)) != len(names):
        raise ConfigError(f"label_names must be a non-empty sequence of distinct names; got "
                          f"{label_names!r}.", field="label_names")
    return names


def _apply_mapping(raw: list[Any], mapping: tuple[str, ...]) -> list[Any]:
    """Turn ids into mapping.txt names; other values stay for label resolution to judge."""
    def mapped(value: Any) -> Any:
        text = "" if _is_null(value) else _as_label(value)
        return mapping[int(text)] if _ID.fullmatch(text) and int(text) < len(mapping) else value
    return [mapped(v) for v in raw]


def _resolve_labels(
    raw: list[Any], *, label_names: tuple[str, ...] | None, path: Path, label_col: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    values = []
    for row, value in enumerate(raw, 1):
        text = "" if _is_null(value) else _as_label(value)
        if not text:
            raise DataError(f"Row {row} of {path.name} has no label (column '{label_col}' is "
                            "empty); give every example a label or remove the row.",
                            field=label_col, path=path, row=row)
        values.append(text)
    if label_names is None:
        ids = sorted({v for v in values if _ID.fullmatch(v)}, key=int)
        if ids:
            raise DataError(f"Column '{label_col}' of {path.name} holds integer ids "
                            f"({_listing(ids)}) but no label names are known to say what they "
                            "mean. Pass the label names in id order (e.g. the model's "
                            "id2label), put a mapping.txt ('id<TAB>name' per line) beside a "
                            "TweetEval file, or write label names in the file.",
                            field=label_col, path=path)
        return np.array(values, dtype=object), tuple(sorted(set(values)))
    return _names_or_error(values, label_names, path=path, label_col=label_col), label_names


def _names_or_error(values: list[str], names: tuple[str, ...], *, path: Path,
                    label_col: str) -> np.ndarray:
    lookup = label_lookup(names)
    unknown: Counter[str] = Counter()
    first_row: dict[str, int] = {}
    for row, value in enumerate(values, 1):
        if value not in lookup:
            unknown[value] += 1
            first_row.setdefault(value, row)
    if unknown:
        shown = [f"{v!r} ({_count(n, 'row')}, first row {first_row[v]})"
                 for v, n in unknown.most_common(_MAX_LISTED)]
        more = len(unknown) - len(shown)
        raise DataError(f"Column '{label_col}' of {path.name} has "
                        f"{_count(len(unknown), 'value')} that are not labels of this task: "
                        f"{', '.join(shown)}{f', and {more} more' if more else ''}. Expected "
                        f"one of: {', '.join(names)} (or an integer id 0-{len(names) - 1}). "
                        "Fix those rows, pass label names that include them, or check that "
                        "--label-col names the label column.",
                        field=label_col, path=path, row=min(first_row.values()))
    return np.array([lookup[v] for v in values], dtype=object)


def _map_predictions(values: Sequence[Any], names: tuple[str, ...]) -> np.ndarray:
    lookup = label_lookup(names)
    out = []
    for value in values:
        text = "" if _is_null(value) else _as_label(value)
        out.append(lookup.get(text, text))
    return np.array(out, dtype=object)


def _fingerprint(texts: Sequence[str], labels: np.ndarray | None) -> str:
    """sha256 over (text, label name) rows: the same rows hash the same in any file format."""
    digest = hashlib.sha256(b"textgate-dataset-v1\n")
    for i, text in enumerate(texts):
        label = None if labels is None else str(labels[i])
        digest.update(json.dumps([text, label]).encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


# --- wording -------------------------------------------------------------------------------

def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _row_list(rows: Sequence[int]) -> str:
    head = ", ".join(str(r) for r in rows[:5])
    tail = f", … {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {head}{tail}"


def _listing(values: Sequence[str]) -> str:
    more = len(values) - 10
    return ", ".join(values[:10]) + (f", … {more} more" if more > 0 else "")
