"""Metric deltas with paired bootstrap intervals: each metric on both models, candidate -
baseline, and the percentile interval of that delta over resamples of the examples (pure).

The same resampled rows index both models (a paired bootstrap). Point values are computed by
:mod:`textgate.evaluation.metrics` itself, so they equal ``textgate eval``'s numbers; the
resampled values come from one bincount of confusion cells (and ECE bins) per resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textgate._internal.bootstrap import (
    Scratch,
    bootstrap,
    percentile_interval,
    resampled_bin_sums,
)
from textgate._internal.records import Record
from textgate.evaluation.metrics import (
    DEFAULT_N_BINS,
    calibration_from_codes,
    classification_from_codes,
    divide_or_zero,
    equal_width_index,
)
from textgate.evaluation.registry import metric_info

__all__ = ["EncodedSide", "MetricDelta", "accuracy_delta", "overall_deltas"]


@dataclass(frozen=True)
class MetricDelta(Record):
    """One metric on both models; [ci_low, ci_high] is the paired bootstrap interval of delta."""

    name: str
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    ci_low: float
    ci_high: float
    higher_is_better: bool
    n: int


@dataclass(frozen=True)
class EncodedSide:
    """One model's validated predictions, encoded against label_names."""

    predicted: np.ndarray  # (N,) object labels as given
    codes: np.ndarray  # (N,) index in label_names, K for an invalid prediction
    probabilities: np.ndarray | None  # (N, K) float64 in label_names column order


def _metric_names(names: tuple[str, ...], with_ece: bool) -> list[tuple[str, bool]]:
    """(registry id, higher_is_better) of the overall metrics, in report order."""
    ids = ["accuracy", "macro_f1", *(f"recall:{name}" for name in names), "invalid_label_rate"]
    if with_ece:
        ids.append("ece_equal_width")
    return [(name, metric_info(name).higher_is_better) for name in ids]


def overall_deltas(true_codes: np.ndarray, base: EncodedSide, cand: EncodedSide, names: tuple[str, ...], *,
                   rng: np.random.Generator, n_resamples: int, confidence: float) -> tuple[MetricDelta, ...]:
    """accuracy, macro_f1, recall:<label> per label, invalid_label_rate, and ece_equal_width
    (15 bins) when both sides have probabilities; ``rng`` draws the resamples."""
    with_ece = base.probabilities is not None and cand.probabilities is not None
    k, n = len(names), true_codes.size
    base_parts = _resample_inputs(true_codes, base, k, with_ece)
    cand_parts = _resample_inputs(true_codes, cand, k, with_ece)

    def deltas(idx: np.ndarray, scratch: Scratch) -> np.ndarray:
        return (_resampled_values(*cand_parts, idx, k, scratch)
                - _resampled_values(*base_parts, idx, k, scratch))

    low, high = percentile_interval(bootstrap(rng, n, n_resamples, deltas), confidence)
    base_values = _point_values(true_codes, base, names, with_ece)
    cand_values = _point_values(true_codes, cand, names, with_ece)
    return tuple(
        MetricDelta(name, base_values[i], cand_values[i], cand_values[i] - base_values[i],
                    float(low[i]), float(high[i]), higher, n)
        for i, (name, higher) in enumerate(_metric_names(names, with_ece))
    )


def accuracy_delta(base_ok: np.ndarray, cand_ok: np.ndarray, *, rng: np.random.Generator, n_resamples: int,
                   confidence: float) -> MetricDelta:
    """The accuracy delta from each model's per-example correctness (a slice's examples)."""
    size = int(base_ok.size)

    def deltas(idx: np.ndarray, scratch: Scratch) -> np.ndarray:
        cand_acc = scratch.take(cand_ok, idx).sum(axis=1) / size
        return (cand_acc - scratch.take(base_ok, idx).sum(axis=1) / size)[:, None]

    low, high = percentile_interval(bootstrap(rng, size, n_resamples, deltas), confidence)
    base_acc, cand_acc = float(base_ok.mean()), float(cand_ok.mean())
    return MetricDelta("accuracy", base_acc, cand_acc, cand_acc - base_acc, float(low[0]), float(high[0]), True,
                       size)


def _point_values(true_codes: np.ndarray, side: EncodedSide, names: tuple[str, ...], with_ece: bool) -> list[float]:
    """The metrics on the full data, computed by textgate.evaluation.metrics itself (same numbers as eval)."""
    report = classification_from_codes(true_codes, side.predicted, names)
    values = [report.accuracy, report.macro.f1, *(c.recall for c in report.per_class), report.invalid.rate]
    if with_ece:
        values.append(calibration_from_codes(true_codes, side.probabilities, DEFAULT_N_BINS).ece_equal_width.value)
    return values


def _resample_inputs(true_codes: np.ndarray, side: EncodedSide, k: int,
                     with_ece: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per-example keys: confusion cell true * (K + 1) + predicted, and ECE bin and gap."""
    cells = true_codes * (k + 1) + side.codes
    if not with_ece:
        return cells, None, None
    confidence = side.probabilities.max(axis=1)
    correct = side.probabilities.argmax(axis=1) == true_codes
    return cells, equal_width_index(confidence, DEFAULT_N_BINS), confidence - correct


def _resampled_values(cells: np.ndarray, bins: np.ndarray | None, gaps: np.ndarray | None,
                      idx: np.ndarray, k: int, scratch: Scratch) -> np.ndarray:
    """(rows, M) metric values of one model on each resample (row of example indices) in idx."""
    rows, n = idx.shape
    width = k * (k + 1)
    keys = scratch.take(cells, idx)
    keys += np.arange(rows)[:, None] * width
    counts = np.bincount(keys.ravel(), minlength=rows * width).reshape(rows, k, k + 1)
    tp = np.diagonal(counts, axis1=1, axis2=2)  # cell (i, i) for i < K
    support = counts.sum(axis=2)
    predicted = counts[:, :, :k].sum(axis=1)  # invalid predictions are no class's prediction
    columns = [tp.sum(axis=1) / n, divide_or_zero(2 * tp, support + predicted).mean(axis=1)]
    columns += list(divide_or_zero(tp, support).T)
    columns.append(counts[:, :, k].sum(axis=1) / n)
    if bins is not None:
        # Takes into the buffer of `keys` above (same dtype), which is no longer needed.
        _, sums = resampled_bin_sums(bins, gaps, idx, scratch, DEFAULT_N_BINS)
        columns.append(np.abs(sums).sum(axis=1) / n)
    return np.column_stack(columns)
