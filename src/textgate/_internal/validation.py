"""Checks of the arrays every capability receives (labels, probabilities, class ids, masks),
with messages that name the argument, the rule and what was received. Public functions check
their inputs here once, then call unchecked cores (cleanlab's ``internal/validation``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textgate.errors import DataError

__all__ = [
    "MAX_QUOTED",
    "ROW_SUM_TOLERANCE",
    "as_labels",
    "check_class_id_values",
    "check_label_names",
    "check_mask",
    "check_probabilities",
    "check_same_length",
    "is_int",
    "quote",
]

# Softmax outputs stored as float32 drift from 1 by ~1e-7 per row; 1e-3 still catches logits,
# unnormalized scores and columns that were dropped.
ROW_SUM_TOLERANCE = 1e-3
# How many offending values an error message quotes before summarizing the rest.
MAX_QUOTED = 5


def quote(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:MAX_QUOTED])
    return shown + (f" and {len(values) - MAX_QUOTED} more" if len(values) > MAX_QUOTED else "")


def check_label_names(label_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(n) for n in label_names)
    if not names:
        raise DataError("label_names is empty; it must list the K >= 1 class names in display "
                        "order. Pass the model's label names.", field="label_names")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"label_names must be unique; got duplicates {quote(duplicates)}. "
                        "Remove the repeated names.", field="label_names")
    return names


def as_labels(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D sequence of label names; got an array of shape "
                        f"{arr.shape}. Pass one label per example.", field=name)
    if arr.size == 0:
        raise DataError(f"{name} is empty; metrics need at least one example. Check the dataset "
                        "split and any filters.", field=name)
    return arr


def check_same_length(n_true: int, n_other: int, name: str) -> None:
    if n_true != n_other:
        raise DataError(f"{name} must have one entry per example of y_true ({n_true}); got "
                        f"{n_other}. Pass predictions made on the same dataset, in the same order.",
                        field=name)


def check_class_id_values(ids: np.ndarray, k: int, *, columns: str) -> None:
    """``ids`` (labels as class ids) are integers in 0..k-1; ``columns`` names what they index."""
    if not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"labels must be integer class ids 0..{k - 1}; got dtype {ids.dtype}. Convert label "
                        "names to their column index first (textgate.audit.label_ids).", field="labels")
    bad = np.flatnonzero((ids < 0) | (ids >= k))
    if bad.size:
        raise DataError(f"labels must be class ids in 0..{k - 1} (one per {columns} column); rows "
                        f"{bad[:5].tolist()} hold {ids[bad[:5]].tolist()} ({bad.size} out of range). Check that "
                        f"the {columns} have a column for every class.", field="labels", row=int(bad[0]))


def check_probabilities(probabilities: Any, n: int, k: int) -> np.ndarray:
    """``probabilities`` as an (n, k) float64 array; DataError unless finite, >= 0, rows summing to 1."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (n, k):
        raise DataError(f"probabilities must have shape (N, K) = ({n}, {k}): one row per example, "
                        f"one column per label in label_names order; got shape {p.shape}.",
                        field="probabilities")
    bad_rows = np.flatnonzero(~np.isfinite(p).all(axis=1))
    if bad_rows.size:
        raise DataError(f"probabilities must be finite; rows {quote(bad_rows.tolist())} contain NaN "
                        "or infinity. Check the model's outputs for those examples.",
                        field="probabilities", row=int(bad_rows[0]))
    negative_rows = np.flatnonzero((p < 0).any(axis=1))
    if negative_rows.size:
        raise DataError(f"probabilities must be >= 0; rows {quote(negative_rows.tolist())} have "
                        "negative entries (probabilities must lie in [0, 1]). Pass softmax outputs, not logits.",
                        field="probabilities", row=int(negative_rows[0]))
    sums = p.sum(axis=1)
    off_rows = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if off_rows.size:
        first = off_rows[0]
        raise DataError(f"probabilities rows must sum to 1 (within {ROW_SUM_TOLERANCE}); "
                        f"{off_rows.size} rows do not, e.g. row {first} sums to {sums[first]:.6g}. "
                        "Apply softmax to logits, and keep a column for every label.",
                        field="probabilities", row=int(first))
    return p


def check_mask(name: str, mask: Any, n: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise DataError(f"Mask of slice {name!r} must be a boolean array; got dtype {arr.dtype}. "
                        "Convert it with mask.astype(bool) if it holds 0/1.", field=name)
    if arr.shape != (n,):
        raise DataError(f"Mask of slice {name!r} must have one entry per example ({n}); got shape "
                        f"{arr.shape}. Build it on the same dataset as the predictions.", field=name)
    return arr


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
