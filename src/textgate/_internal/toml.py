"""Validating configuration read from TOML with pydantic, with errors that name the field."""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from textgate.errors import ConfigError

__all__ = ["dump_toml", "read_toml", "validate_table"]

Model = TypeVar("Model", bound=BaseModel)


def read_toml(path: Path, *, what: str, field: str | None = None) -> dict[str, Any]:
    """Parse a TOML file; a missing, undecodable or malformed file is a one-line ConfigError
    that starts with ``what`` ("Gate file", "ModelSpec file", ...)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{what} {path} does not exist.", field=field, path=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc.reason}); save it as UTF-8.",
                          field=field, path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}.", field=field, path=path) from exc


def validate_table(model: type[Model], raw: Any, *, origin: str | Path, prefix: str = "") -> Model:
    """``model.model_validate(raw)``, turning the first problem into a one-line ConfigError:
    "Field 'thresholds.alpha' in gate.toml: Input should be less than 0.5 (got 0.7)."
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        parts = [str(part) for part in first["loc"] if part != "[key]"]
        field = ".".join(filter(None, [prefix, *parts])) or prefix or "(top level)"
        got = "" if first["type"] == "missing" else f" (got {first.get('input')!r})"
        hint = ""
        if first["type"] == "extra_forbidden":
            owner = _owner_model(model, parts[:-1])
            hint = f" Allowed keys: {', '.join(owner.model_fields)}." if owner else ""
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"Field '{field}' in {origin}: {message}{got}.{hint}", field=field,
                          path=origin) from exc


def _owner_model(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The nested pydantic model that a dotted field path points into (for 'Allowed keys')."""
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


# --- writing TOML (tomllib only reads) ------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dump_toml(document: Mapping[str, Any], *, section_comments: Mapping[str, str] | None = None) -> str:
    """Scalars and arrays first, then one ``[section]`` per nested table (recursively);
    arrays of arrays one element per line. None values are left out (TOML has no null).
    ``section_comments``: a comment for a top-level section's header line."""
    lines: list[str] = []
    _dump_table(document, [], lines, section_comments or {})
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: Mapping[str, Any], path: list[str], lines: list[str], comments: Mapping[str, str]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not (isinstance(v, Mapping) and v)}
    if path:
        comment = comments.get(path[0]) if len(path) == 1 else None
        lines += ["", f"[{'.'.join(_key(p) for p in path)}]" + (f"  # {comment}" if comment else "")]
    for key, value in scalars.items():
        if isinstance(value, list) and value and all(isinstance(v, list | Mapping) for v in value):
            lines.append(f"{_key(key)} = [")
            lines += [f"  {_value(v)}," for v in value]
            lines.append("]")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping) and value:
            _dump_table(value, [*path, key], lines, comments)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes; TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007F")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write a {type(value).__name__} to a TOML file")
