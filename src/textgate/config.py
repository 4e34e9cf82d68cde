"""Validating configuration read from TOML with pydantic, with errors that name the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from textgate.errors import ConfigError

__all__ = ["read_toml", "validate_table"]

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
