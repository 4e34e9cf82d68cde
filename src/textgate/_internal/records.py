"""The JSON-ready ``to_dict`` every result record shares."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["Record", "to_plain"]


def to_plain(value: Any) -> Any:
    """Recursively convert records, tuples and numpy values to JSON-ready Python (NaN -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        return to_plain(value.item())
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Record:
    """Mixin giving every result record the same JSON-ready ``to_dict``."""

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)
