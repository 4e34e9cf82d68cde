"""The lock file format (TOML, ``lock_version = 1``): its schema, reading and writing, and the
check that loading runs for a ModelSpec with ``lock = ...`` (:func:`enforce_lock`: every pinned
file still has its locked sha256). Building and verifying a lock is :mod:`textgate.lock`; the
file's sections are described there and in docs/lock.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from textgate._internal.toml import dump_toml, read_toml, validate_table
from textgate.errors import ConfigError, ModelLoadError
from textgate.model.files import file_sha256
from textgate.model.spec import ModelSpec, model_spec_from_table
from textgate.outputs import write_text_atomic

__all__ = [
    "LOCK_VERSION",
    "Change",
    "Lock",
    "LockedCanary",
    "LockedLabels",
    "LockedLicense",
    "LockedModel",
    "diff_files",
    "enforce_lock",
    "locked_paths",
    "read_lock",
    "write_lock",
]

LOCK_VERSION = 1
# How a lock that does not hang together ends its error: locks are written, not edited.
_EDITED = "the lock was edited or cut short: re-create it with `textgate lock`"


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _invalid(loc: tuple[str, ...], message: str, got: Any) -> ValidationError:
    """A validation error at field ``loc`` quoting a short ``got`` (validate_table names both):
    a ValueError from a model validator would name the whole table and quote all of it."""
    return ValidationError.from_exception_data(
        "Lock", [InitErrorDetails(type=PydanticCustomError("lock_table", message), loc=loc, input=got)])


class LockedModel(_Table):
    spec: dict[str, Any]
    reading: Literal["package", "folder", "hub"]
    spec_file: str | None = None
    resolved_revision: str | None = None
    pulled_from: str | None = None


class LockedLabels(_Table):
    config_id2label: dict[str, str]
    label_map: dict[str, str] | None = None
    label_names: list[str]


class LockedLicense(_Table):
    model: str
    adapter: str | None = None
    allowed: list[str] | None = None


class LockedCanary(_Table):
    source: str
    text_col: str = "text"
    texts: int
    texts_sha256: str
    decimals: int = Field(ge=1, le=8)
    tolerance: float = Field(gt=0, lt=1)
    digest: str
    rows: list[list[Any]]  # [label, p_0, ..., p_K-1] per canary text

    @model_validator(mode="after")
    def _one_row_per_text(self) -> LockedCanary:
        if len(self.rows) != self.texts:
            raise _invalid(("rows",), f"must hold one row per canary text, {self.texts} (canary.texts); "
                                      f"{_EDITED}", len(self.rows))
        return self


class Lock(_Table):
    """A parsed lock file. ``tokenizer``, ``settings``, ``files`` and ``versions`` are flat
    property tables compared key by key (``tokenizer.probes`` and ``special_tokens`` nest)."""

    lock_version: Literal[1]
    model: LockedModel
    files: dict[str, str]
    tokenizer: dict[str, Any]
    labels: LockedLabels
    settings: dict[str, Any]
    license: LockedLicense
    versions: dict[str, str]
    canary: LockedCanary

    @model_validator(mode="after")
    def _one_probability_per_label(self) -> Lock:
        width = 1 + len(self.labels.label_names)
        for i, row in enumerate(self.canary.rows, 1):
            if len(row) != width:
                raise _invalid(("canary", "rows"), f"row {i} has {len(row)} values, but the lock's "
                               f"{width - 1} labels (labels.label_names) need {width}: [label, p_0, ..., "
                               f"p_{width - 2}]; {_EDITED}", row)
        return self

    def recorded_spec(self, lock_dir: Path, *, origin: str) -> ModelSpec:
        """The ModelSpec the lock was made with, its paths made relative to ``lock_dir``."""
        return model_spec_from_table(self.model.spec, base=lock_dir, origin=f"{origin} [model.spec]")


def read_lock(path: Path | str) -> Lock:
    """Read and validate a lock file (one-line ConfigError naming the field if it is wrong)."""
    path = Path(path)
    raw = read_toml(path, what="Lock file", field="lock")
    if raw.get("lock_version") != LOCK_VERSION:
        raise ConfigError(f"Lock file {path} has lock_version {raw.get('lock_version')!r}; this textgate "
                          f"reads lock_version {LOCK_VERSION}. Re-create it with `textgate lock`.",
                          field="lock_version", path=path)
    return validate_table(Lock, raw, origin=path)


def write_lock(lock: Lock, path: Path | str) -> Path:
    """Write ``lock`` as TOML (sections in a fixed order, one canary row per line)."""
    path = Path(path)
    header = ("# textgate lock: written by `textgate lock`, checked by `textgate verify`. Do not edit;\n"
              "# re-create it when a change is intended. Format: docs/lock.md.\n")
    write_text_atomic(path, header + dump_toml(lock.model_dump(mode="json", exclude_none=True)))
    return path


@dataclass(frozen=True)
class Change:
    """One difference between the lock and now."""

    key: str
    locked: Any
    current: Any
    note: str = ""

    def line(self) -> str:
        if self.locked is None and self.current is None:
            return f"{self.key} ({self.note})" if self.note else self.key
        text = f"{self.key}: {_show(self.locked)} -> {_show(self.current)}"
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "locked": self.locked, "current": self.current, "note": self.note}


def _show(value: Any) -> str:
    if isinstance(value, list) and len(value) > 12:
        return f"[{', '.join(map(str, value[:12]))}, ... {len(value)} items]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def locked_paths(spec: ModelSpec, files: Sequence[tuple[str, Path]]) -> dict[str, Path]:
    """The files a lock pins: ``files`` (``model_files`` of the spec's folders) and the calibration file."""
    paths = dict(files)
    if spec.calibration:
        calibration = Path(spec.calibration)
        paths[f"calibration/{calibration.name}"] = calibration
    return paths


def diff_files(locked: Mapping[str, str], current: Mapping[str, str]) -> list[Change]:
    changes = []
    for key in sorted(set(locked) | set(current)):
        old, new = locked.get(key), current.get(key)
        if old == new:
            continue
        if old is None:
            changes.append(Change(key, "(absent)", new[:12], "has been added; the lock has no such file"))
        elif new is None:
            changes.append(Change(key, old[:12], "(missing)", "is missing"))
        else:
            changes.append(Change(key, old[:12], new[:12], "contents changed"))
    return changes


def enforce_lock(spec: ModelSpec, files: Sequence[tuple[str, Path]]) -> None:
    """Raise ModelLoadError naming the first file whose sha256 differs from ``spec.lock``'s
    (also a file added or missing); ``files``: ``model_files`` of the resolved model and adapter
    folders. Called by ``identify_model`` when the spec has a lock."""
    lock_path = Path(spec.lock)
    lock = read_lock(lock_path)
    paths = locked_paths(spec, files)
    changes = diff_files(lock.files, {key: file_sha256(path) for key, path in paths.items()})
    if not changes:
        return
    first = changes[0]
    where = f" ({paths[first.key]})" if first.key in paths else ""
    more = f" (and {len(changes) - 1} more file{'s' if len(changes) > 2 else ''})" if len(changes) > 1 else ""
    differs = (f"has sha256 {first.current}... but the lock records {first.locked}..."
               if first.note == "contents changed" else first.note)
    raise ModelLoadError(
        f"File {first.key}{where} {differs}{more}, so it is not the file that lock {lock_path} "
        f"pins. Loading refuses files that differ from the lock. Restore the pinned files (textgate "
        f"pull them again, or re-download the locked revision); if the change is intended, review "
        f"`textgate verify {lock_path}` and re-create the lock with `textgate lock`.",
        path=paths.get(first.key, lock_path),
    )
