"""The one label resolver: label names and ids, both ways, with one message for unknown labels.

A label set is a tuple of names in class-id order (a model's id2label, a dataset's sorted
names). Data files may hold names or ids (:func:`label_lookup`); metrics, audits and
calibration need ids (:func:`label_ids`, or :func:`encode_labels` where an unknown label is a
value to count, such as a prediction outside the label set)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textgate._internal.validation import MAX_QUOTED, as_labels
from textgate.errors import DataError

__all__ = ["encode_labels", "encode_true", "label_ids", "label_lookup"]


def label_lookup(names: Sequence[str]) -> dict[str, str]:
    """Value -> label name: each name maps to itself, each id ``0..K-1`` to its name; names win."""
    lookup = {str(i): name for i, name in enumerate(names)}
    lookup.update({name: name for name in names})
    return lookup


def encode_labels(labels: np.ndarray | Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Class id of each label in ``names``, -1 for labels outside it."""
    index = {n: i for i, n in enumerate(names)}
    return np.fromiter((index.get(v, -1) for v in labels), dtype=np.int64, count=len(labels))


def label_ids(labels: np.ndarray | Sequence[str], names: Sequence[str], *, field: str = "labels",
              among: str = "label_names",
              fix: str = "Fix the dataset's label column or pass the full label set as label_names.") -> np.ndarray:
    """Class id of each label in ``names``; any label outside them is a DataError that counts
    each unknown label, says what ``names`` are (``among``) and how to ``fix`` it."""
    codes = encode_labels(labels, names)
    if (codes < 0).any():
        unknown, counts = np.unique(np.asarray(labels, dtype=object)[codes < 0].astype(str), return_counts=True)
        listed = ", ".join(f"{str(u)!r} ({c})" for u, c in list(zip(unknown, counts))[:MAX_QUOTED])
        more = f" and {len(unknown) - MAX_QUOTED} more" if len(unknown) > MAX_QUOTED else ""
        raise DataError(f"{field} must contain only labels in {among} {list(names)}; got unknown labels "
                        f"{listed}{more}. {fix}", field=field)
    return codes


def encode_true(y_true: Any, names: Sequence[str]) -> np.ndarray:
    """Class ids of the true labels of a metric: every one must be in ``names``."""
    return label_ids(as_labels(y_true, "y_true"), names, field="y_true")
