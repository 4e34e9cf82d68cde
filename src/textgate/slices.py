"""Slices: named subsets of a dataset that metrics are also reported on.

Three kinds, each a `SliceSpec`:

    regex    texts matching ``pattern`` (re.search; case-insensitive unless case_sensitive)
    column   rows whose other column ``column`` equals ``equals`` (compared as str(value))
    length   rows with min_tokens <= n < max_tokens (either bound optional), where n is the
             model's token count when known, else the whitespace word count

They come from ``--slice NAME=REGEX`` flags (`parse_slice_flag`) or a TOML file
(`load_slices_toml`) of ``[[slice]]`` tables plus an optional ``length_buckets = [0, 16, ...]``
shorthand; `slice_masks` turns them into one boolean mask per slice.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from textgate.errors import ConfigError, DataError

__all__ = [
    "SliceMasks",
    "SliceSpec",
    "combine_slices",
    "load_slices_toml",
    "parse_slice_flag",
    "slice_masks",
    "slices_from_toml",
]

SliceKind = Literal["regex", "column", "length"]
_KINDS = ("regex", "column", "length")
_SLICE_KEYS = ("name", "regex", "case_sensitive", "column", "equals", "min_tokens", "max_tokens")
_TOP_KEYS = ("slice", "length_buckets")


@dataclass(frozen=True)
class SliceSpec:
    """One named subset; only the fields of its ``kind`` may be set (checked on creation)."""

    name: str
    kind: SliceKind
    pattern: str | None = None
    case_sensitive: bool = False
    column: str | None = None
    equals: str | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True, eq=False)
class SliceMasks:
    """One boolean mask (length N) per slice, in spec order.

    ``length_unit`` says what length slices counted: "tokens" (model tokens) or "words"
    (whitespace-split words, the fallback when no token counts were given).
    """

    masks: dict[str, np.ndarray]
    length_unit: Literal["tokens", "words"]


def parse_slice_flag(flag: str) -> SliceSpec:
    """``"NAME=REGEX"`` from a ``--slice`` flag; the name ends at the first '='."""
    name, sep, pattern = flag.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--slice {flag!r} must be NAME=REGEX with a non-empty name, e.g. "
                          r"--slice 'slang=\b(omg|lol)\b'.", field="slice")
    return SliceSpec(name=name.strip(), kind="regex", pattern=pattern)


def load_slices_toml(path: Path | str) -> tuple[SliceSpec, ...]:
    """Slices from a TOML file of ``[[slice]]`` tables and/or ``length_buckets``."""
    path = Path(path)
    doc = _read_toml(path)
    unknown = [key for key in doc if key not in _TOP_KEYS]
    if unknown:
        raise ConfigError(f"Unknown top-level key '{unknown[0]}' in {path.name}; allowed: "
                          f"{', '.join(_TOP_KEYS)}. Define each slice in a [[slice]] table.",
                          field=unknown[0], path=path)
    specs = slices_from_toml(doc, path=path)
    if not specs:
        raise ConfigError(f"{path.name} defines no slices; add a [[slice]] table or "
                          "length_buckets.", field="slice", path=path)
    return specs


def slices_from_toml(doc: Mapping[str, Any], *, path: Path) -> tuple[SliceSpec, ...]:
    """Slices from the ``slice`` tables and ``length_buckets`` of an already parsed TOML
    document (a slices file, or a gate file that holds slices among other tables)."""
    tables = doc.get("slice", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"'slice' in {path.name} must be an array of tables; write each slice "
                          "under its own [[slice]] header (double brackets).",
                          field="slice", path=path)
    specs = [_spec_from_table(table, index, path) for index, table in enumerate(tables, 1)]
    if "length_buckets" in doc:
        specs.extend(_length_buckets(doc["length_buckets"], path))
    _require_unique(specs, where=path.name, path=path)
    return tuple(specs)


def slice_masks(
    specs: Sequence[SliceSpec],
    *,
    texts: Sequence[str],
    columns: Mapping[str, Sequence[Any]],
    token_counts: Sequence[int] | np.ndarray | None = None,
) -> SliceMasks:
    """Evaluate each slice on the dataset: a boolean mask of length ``len(texts)`` per slice."""
    _require_unique(specs, where="the slice definitions")
    n = len(texts)
    lengths = None if token_counts is None else _checked_lengths(token_counts, n)
    masks: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.kind == "regex":
            masks[spec.name] = _regex_mask(spec, texts)
        elif spec.kind == "column":
            masks[spec.name] = _column_mask(spec, columns, n)
        else:
            if lengths is None:
                lengths = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=n)
            masks[spec.name] = _length_mask(spec, lengths)
    return SliceMasks(masks=masks, length_unit="words" if token_counts is None else "tokens")


# --- validation ----------------------------------------------------------------------------

def _validate(spec: SliceSpec) -> None:
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise ConfigError(f"A slice name must be a non-empty string; got {spec.name!r}.",
                          field="name")
    if spec.kind not in _KINDS:
        raise ConfigError(f"Slice '{spec.name}' has kind {spec.kind!r}; use one of "
                          f"{', '.join(_KINDS)}.", field="kind")
    foreign = [f for f in _fields_set(spec) if f not in _KIND_FIELDS[spec.kind]]
    if foreign:
        raise ConfigError(f"Slice '{spec.name}' is a {spec.kind} slice but also sets "
                          f"{', '.join(foreign)}; a slice is exactly one of regex, column "
                          "(with equals) or min_tokens/max_tokens.", field=foreign[0])
    _KIND_CHECKS[spec.kind](spec)


def _fields_set(spec: SliceSpec) -> list[str]:
    named = ("pattern", "column", "equals", "min_tokens", "max_tokens")
    return [f for f in named if getattr(spec, f) is not None] + (
        ["case_sensitive"] if spec.case_sensitive else [])


def _check_regex(spec: SliceSpec) -> None:
    if not isinstance(spec.pattern, str) or not spec.pattern:
        raise ConfigError(f"Slice '{spec.name}' needs a non-empty regex; got {spec.pattern!r}.",
                          field="regex")
    try:
        re.compile(spec.pattern)
    except re.error as exc:
        raise ConfigError(f"Slice '{spec.name}' has an invalid regex {spec.pattern!r}: {exc}. "
                          "Fix the pattern (Python re syntax).", field="regex") from exc


def _check_column(spec: SliceSpec) -> None:
    for field in ("column", "equals"):
        value = getattr(spec, field)
        if not isinstance(value, str) or (field == "column" and not value):
            raise ConfigError(f"Slice '{spec.name}' is a column slice and needs '{field}' as a "
                              f"string; got {value!r}.", field=field)


def _check_length(spec: SliceSpec) -> None:
    low, high = spec.min_tokens, spec.max_tokens
    if low is None and high is None:
        raise ConfigError(f"Slice '{spec.name}' is a length slice and needs min_tokens, "
                          "max_tokens or both.", field="min_tokens")
    for field, value in (("min_tokens", low), ("max_tokens", high)):
        if value is not None and (type(value) is not int or value < 0):
            raise ConfigError(f"Slice '{spec.name}': {field} must be a non-negative integer; "
                              f"got {value!r}.", field=field)
    if low is not None and high is not None and high <= low:
        raise ConfigError(f"Slice '{spec.name}': max_tokens ({high}) must be greater than "
                          f"min_tokens ({low}); the bucket is min_tokens <= n < max_tokens.",
                          field="max_tokens")


_KIND_FIELDS = {
    "regex": ("pattern", "case_sensitive"),
    "column": ("column", "equals"),
    "length": ("min_tokens", "max_tokens"),
}
_KIND_CHECKS = {"regex": _check_regex, "column": _check_column, "length": _check_length}


def combine_slices(*groups: Sequence[SliceSpec], where: str = "the slice definitions") -> tuple[SliceSpec, ...]:
    """Slices from several sources (``--slice`` flags, a slices file) as one tuple, names unique."""
    specs = tuple(spec for group in groups for spec in group)
    _require_unique(specs, where=where)
    return specs


def _require_unique(specs: Sequence[SliceSpec], *, where: str, path: Path | None = None) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"Slice name '{spec.name}' is used twice in {where}; give each "
                              "slice a unique name.", field="name", path=path)
        seen.add(spec.name)


# --- TOML ----------------------------------------------------------------------------------

def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Slice file {path} does not exist; check the path.",
                          field="slices", path=path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Slice file {path.name} is not valid TOML: {exc}. Fix the syntax "
                          "there.", field="slices", path=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Slice file {path.name} is not UTF-8 text ({exc.reason}); save it "
                          "as UTF-8.", field="slices", path=path) from exc


def _spec_from_table(table: dict[str, Any], index: int, path: Path) -> SliceSpec:
    name = table.get("name")
    label = f"slice '{name}'" if isinstance(name, str) and name else f"slice #{index}"
    where = f"{label} of {path.name}"
    if "length_buckets" in table:
        raise ConfigError(f"length_buckets sits inside {where} because it follows that [[slice]] "
                          "header; in TOML top-level keys must come before the first table, so "
                          "move length_buckets above the first [[slice]].",
                          field="length_buckets", path=path)
    for key in table:
        if key not in _SLICE_KEYS:
            raise ConfigError(f"Unknown key '{key}' in {where}; allowed keys: "
                              f"{', '.join(_SLICE_KEYS)}.", field=key, path=path)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where.capitalize()} needs a non-empty string 'name'; got "
                          f"{name!r}.", field="name", path=path)
    kinds = [k for k, keys in _TOML_KIND_KEYS.items() if any(key in table for key in keys)]
    if len(kinds) != 1:
        got = " and ".join(kinds) if kinds else "none of them"
        raise ConfigError(f"{where.capitalize()} must set exactly one of regex, column (with "
                          "equals) or min_tokens/max_tokens; it sets "
                          f"{got}.", field="slice", path=path)
    for key, value in table.items():
        _check_toml_type(key, value, where=where, path=path)
    try:
        return SliceSpec(
            name=name.strip(),
            kind=kinds[0],
            pattern=table.get("regex"),
            case_sensitive=table.get("case_sensitive", False),
            column=table.get("column"),
            equals=None if "equals" not in table else _as_key(table["equals"]),
            min_tokens=table.get("min_tokens"),
            max_tokens=table.get("max_tokens"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {path.name})", field=exc.field, path=path) from exc


# equals and case_sensitive qualify a kind rather than choose one.
_TOML_KIND_KEYS = {"regex": ("regex",), "column": ("column",),
                   "length": ("min_tokens", "max_tokens")}
_TOML_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"),
    "regex": ((str,), "a string"),
    "case_sensitive": ((bool,), "true or false"),
    "column": ((str,), "a string"),
    "equals": ((str, int, float, bool), "a string, number or boolean"),
    "min_tokens": ((int,), "an integer"),
    "max_tokens": ((int,), "an integer"),
}


def _check_toml_type(key: str, value: Any, *, where: str, path: Path) -> None:
    types, wanted = _TOML_TYPES[key]
    wrong_bool = isinstance(value, bool) and bool not in types  # bool is an int subclass
    if wrong_bool or not isinstance(value, types):
        raise ConfigError(f"Key '{key}' in {where} must be {wanted}; got {value!r}.",
                          field=key, path=path)


def _length_buckets(edges: Any, path: Path) -> list[SliceSpec]:
    """``[0, 16, 32]`` -> "tokens 0-15", "tokens 16-31", "tokens 32+"."""
    valid = (isinstance(edges, list) and edges
             and all(type(e) is int and e >= 0 for e in edges)
             and all(a < b for a, b in zip(edges, edges[1:])))
    if not valid:
        raise ConfigError(f"length_buckets in {path.name} must be a non-empty list of increasing "
                          f"non-negative integers such as [0, 16, 32, 64]; got {edges!r}.",
                          field="length_buckets", path=path)
    bounds = list(zip(edges, [*edges[1:], None]))
    return [SliceSpec(name=_bucket_name(low, high), kind="length", min_tokens=low,
                      max_tokens=high) for low, high in bounds]


def _bucket_name(low: int, high: int | None) -> str:
    if high is None:
        return f"tokens {low}+"
    return f"tokens {low}" if high == low + 1 else f"tokens {low}-{high - 1}"


# --- masks ---------------------------------------------------------------------------------

def _as_key(value: Any) -> str:
    # A missing value reads as "" in CSV; make JSON null and Parquet null agree with it.
    return "" if value is None else str(value)


def _regex_mask(spec: SliceSpec, texts: Sequence[str]) -> np.ndarray:
    regex = re.compile(spec.pattern or "", 0 if spec.case_sensitive else re.IGNORECASE)
    return np.fromiter((regex.search(t) is not None for t in texts), dtype=bool, count=len(texts))


def _column_mask(spec: SliceSpec, columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
    if spec.column not in columns:
        available = ", ".join(columns) or "(none besides the text and label columns)"
        raise ConfigError(f"Slice '{spec.name}' uses column '{spec.column}', which the dataset "
                          f"does not have; available columns: {available}. Fix 'column' in "
                          "the slice definition.", field="column")
    values = columns[spec.column]
    if len(values) != n:
        raise DataError(f"Column '{spec.column}' has {len(values):,} values but there are "
                        f"{n:,} texts; pass columns from the same dataset.", field=spec.column)
    return np.fromiter((_as_key(v) == spec.equals for v in values), dtype=bool, count=n)


def _length_mask(spec: SliceSpec, lengths: np.ndarray) -> np.ndarray:
    mask = np.ones(len(lengths), dtype=bool)
    if spec.min_tokens is not None:
        mask &= lengths >= spec.min_tokens
    if spec.max_tokens is not None:
        mask &= lengths < spec.max_tokens
    return mask


def _checked_lengths(token_counts: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    lengths = np.asarray(token_counts)
    if lengths.shape != (n,):
        raise DataError(f"token_counts has shape {lengths.shape} but there are {n:,} texts; "
                        "pass one token count per text.", field="token_counts")
    return lengths
