"""Metrics over saved predictions: pure functions of numpy arrays returning frozen records.

Glossary: ``N`` examples, ``K`` classes, ``label_names`` the K class names in display order,
``y_true`` / ``y_pred`` label-name sequences of length N, ``probabilities`` an (N, K) array whose
columns follow ``label_names``.

Classification values equal scikit-learn's ``classification_report(..., labels=label_names,
zero_division=0)``. A metric that is undefined (a division by zero) is reported as 0.0 like
scikit-learn, but instead of warning on every call the reason is recorded in ``undefined``.
A predicted label outside ``label_names`` (e.g. a raw ``LABEL_2``) is an *invalid prediction*:
wrong for accuracy and recall, a prediction of no class for precision, absent from the
confusion matrix, and counted in ``invalid``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgate._internal.labels import encode_labels, encode_true
from textgate._internal.records import Record
from textgate._internal.validation import (
    as_labels,
    check_label_names,
    check_mask,
    check_probabilities,
    check_same_length,
    quote,
)
from textgate.errors import ConfigError, DataError

__all__ = [
    "Averages",
    "CalibrationMetrics",
    "ClassMetrics",
    "ClassificationMetrics",
    "Estimate",
    "InvalidLabels",
    "LatencyMetrics",
    "Percentiles",
    "ReliabilityBin",
    "SliceMetrics",
    "calibration_from_codes",
    "calibration_metrics",
    "check_probabilities",
    "classification_from_codes",
    "classification_metrics",
    "divide_or_zero",
    "equal_width_index",
    "invalid_labels",
    "latency_metrics",
    "slice_metrics",
    "wilson_interval",
]

# Keeps log(0) finite when a model puts (numerically) zero mass on the true class.
NLL_CLIP = 1e-12
# Enough bins to see shape on a reliability diagram, few enough to keep most non-empty at N≈1000.
DEFAULT_N_BINS = 15


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassMetrics(Record):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Averages(Record):
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class InvalidLabels(Record):
    """Predictions outside ``label_names``; ``values`` are (value, count), most frequent first."""

    count: int
    rate: float
    values: tuple[tuple[str, int], ...]


@dataclass(frozen=True, eq=False)  # eq=False: the confusion ndarray has no boolean ==
class ClassificationMetrics(Record):
    n: int
    accuracy: float
    per_class: tuple[ClassMetrics, ...]
    macro: Averages
    weighted: Averages
    confusion: np.ndarray  # (K, K) int64; rows true label, columns predicted, label_names order
    invalid: InvalidLabels
    undefined: tuple[str, ...]
    label_names: tuple[str, ...]


@dataclass(frozen=True)
class Estimate(Record):
    """A value together with the exact estimator that produced it (binning changes ECE)."""

    value: float
    estimator: str


@dataclass(frozen=True)
class ReliabilityBin(Record):
    """One equal-width confidence bin (lower, upper]; means are NaN when ``count`` is 0."""

    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True)
class CalibrationMetrics(Record):
    n: int
    ece_equal_width: Estimate
    ece_equal_mass: Estimate
    mce: Estimate
    brier: Estimate
    nll: Estimate
    reliability: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class Percentiles(Record):
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class LatencyMetrics(Record):
    batches: int
    examples: int
    total_seconds: float
    throughput_per_s: float
    batch_ms: Percentiles  # wall time of one batch
    per_example_ms: Percentiles  # batch time / batch size, one value per example


@dataclass(frozen=True)
class SliceMetrics(Record):
    name: str
    size: int
    fraction: float
    metrics: ClassificationMetrics | None  # None when the slice matched no examples
    note: str = ""


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def classification_metrics(y_true: Any, y_pred: Any, *, label_names: Sequence[str]) -> ClassificationMetrics:
    """Accuracy, per-class/macro/weighted precision-recall-F1, confusion and invalid predictions."""
    names = check_label_names(label_names)
    true_codes = encode_true(y_true, names)
    predicted = as_labels(y_pred, "y_pred")
    check_same_length(true_codes.size, predicted.size, "y_pred")
    return classification_from_codes(true_codes, predicted, names)


def invalid_labels(y_pred: Any, *, label_names: Sequence[str]) -> InvalidLabels:
    """Count the predictions that are not one of ``label_names`` (e.g. raw ``LABEL_2``)."""
    names = check_label_names(label_names)
    predicted = as_labels(y_pred, "y_pred")
    return _invalid(predicted, encode_labels(predicted, names))


def wilson_interval(successes: int, n: int, *, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (default 95%); stays inside [0, 1] and is honest
    for small slices and proportions near 0 or 1, unlike the normal approximation."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _invalid(predicted: np.ndarray, codes: np.ndarray) -> InvalidLabels:
    bad = predicted[codes < 0].astype(str)
    values, counts = np.unique(bad, return_counts=True)
    # Most frequent first; a stable sort keeps np.unique's value order among equal counts, so
    # the order never depends on the order of the examples.
    order = np.argsort(-counts, kind="stable")
    pairs = tuple((str(values[i]), int(counts[i])) for i in order)
    return InvalidLabels(count=int(bad.size), rate=bad.size / predicted.size, values=pairs)


def divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0.0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)


def classification_from_codes(true_codes: np.ndarray, predicted: np.ndarray,
                              names: tuple[str, ...]) -> ClassificationMetrics:
    k, n = len(names), true_codes.size
    pred_codes = encode_labels(predicted, names)
    valid = pred_codes >= 0
    confusion = np.bincount(true_codes[valid] * k + pred_codes[valid], minlength=k * k).reshape(k, k)
    confusion = confusion.astype(np.int64)
    confusion.setflags(write=False)
    tp = np.diag(confusion).astype(np.float64)
    predicted_count = confusion.sum(axis=0).astype(np.float64)
    # Support from y_true itself: examples with an invalid prediction are absent from `confusion`.
    support = np.bincount(true_codes, minlength=k).astype(np.float64)
    precision = divide_or_zero(tp, predicted_count)
    recall = divide_or_zero(tp, support)
    f1 = divide_or_zero(2 * tp, support + predicted_count)
    per_class = tuple(
        ClassMetrics(names[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i in range(k)
    )
    return ClassificationMetrics(
        n=n,
        accuracy=float(np.mean(true_codes == pred_codes)),
        per_class=per_class,
        macro=Averages(*(float(np.mean(v)) for v in (precision, recall, f1))),
        weighted=Averages(*(float(np.average(v, weights=support)) for v in (precision, recall, f1))),
        confusion=confusion,
        invalid=_invalid(predicted, pred_codes),
        undefined=_undefined_reasons(names, support, predicted_count),
        label_names=names,
    )


def _undefined_reasons(names: tuple[str, ...], support: np.ndarray, predicted_count: np.ndarray) -> tuple[str, ...]:
    reasons = []
    for name, true_n, pred_n in zip(names, support, predicted_count):
        if pred_n == 0:
            reasons.append(f"precision of {name!r} is undefined: the model never predicted it; "
                           "reported as 0.0")
        if true_n == 0:
            reasons.append(f"recall of {name!r} is undefined: no example has it as true label; "
                           "reported as 0.0")
        if pred_n == 0 and true_n == 0:
            reasons.append(f"f1 of {name!r} is undefined: it is neither a true nor a predicted "
                           "label; reported as 0.0")
    return tuple(reasons)


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def calibration_metrics(
    y_true: Any, probabilities: Any, *, label_names: Sequence[str], n_bins: int = DEFAULT_N_BINS
) -> CalibrationMetrics:
    """Top-label ECE (two binnings), MCE, Brier score, NLL and an equal-width reliability table."""
    names = check_label_names(label_names)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be an integer >= 1; got {n_bins!r}. The usual value is "
                          f"{DEFAULT_N_BINS}.", field="n_bins")
    true_codes = encode_true(y_true, names)
    p = check_probabilities(probabilities, true_codes.size, len(names))
    return calibration_from_codes(true_codes, p, int(n_bins))


def calibration_from_codes(true_codes: np.ndarray, p: np.ndarray, n_bins: int) -> CalibrationMetrics:
    n = true_codes.size
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == true_codes).astype(np.float64)
    reliability = _equal_width_bins(confidence, correct, n_bins)
    filled = [b for b in reliability if b.count]
    gaps = [abs(b.accuracy - b.mean_confidence) for b in filled]
    onehot = np.eye(p.shape[1])[true_codes]
    p_true = np.clip(p[np.arange(n), true_codes], NLL_CLIP, 1.0)
    return CalibrationMetrics(
        n=n,
        ece_equal_width=Estimate(
            float(sum(g * b.count for g, b in zip(gaps, filled)) / n),
            f"top-label ECE, {n_bins} equal-width bins, L1, weighted by bin size",
        ),
        ece_equal_mass=Estimate(
            _ece_equal_mass(confidence, correct, n_bins),
            f"top-label ECE, {n_bins} equal-mass bins, L1, weighted by bin size",
        ),
        mce=Estimate(
            float(max(gaps)),
            f"top-label maximum calibration error, {n_bins} equal-width bins, non-empty bins only",
        ),
        brier=Estimate(
            float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
            "multiclass Brier score: mean over examples of sum over classes of (p - onehot)^2",
        ),
        nll=Estimate(
            float(-np.mean(np.log(p_true))),
            f"mean negative log-likelihood of the true class, natural log, p clipped at {NLL_CLIP:g}",
        ),
        reliability=reliability,
    )


def equal_width_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """The equal-width bin (0..n_bins-1) of each confidence; every binned estimate, here and in
    the bootstraps of textgate.gate.deltas and textgate.calibrate, bins with this."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") puts conf in (edge_i, edge_i+1]; conf == 0 joins the first bin
    # and conf a hair above 1 (float32 softmax) joins the last.
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def _equal_width_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[ReliabilityBin, ...]:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = equal_width_index(confidence, n_bins)
    counts = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(index, weights=correct, minlength=n_bins)
    return tuple(
        ReliabilityBin(
            lower=float(edges[i]),
            upper=float(edges[i + 1]),
            count=int(counts[i]),
            mean_confidence=float(conf_sum[i] / counts[i]) if counts[i] else math.nan,
            accuracy=float(correct_sum[i] / counts[i]) if counts[i] else math.nan,
        )
        for i in range(n_bins)
    )


def _ece_equal_mass(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    # Break confidence ties by correctness so bin contents, and thus the ECE, do not depend on
    # the order of the examples.
    order = np.lexsort((correct, confidence))
    total = 0.0
    for group in np.array_split(order, n_bins):
        if group.size:
            total += abs(correct[group].mean() - confidence[group].mean()) * group.size
    return float(total / confidence.size)


# ---------------------------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------------------------


def latency_metrics(batch_seconds: Any, batch_sizes: Any) -> LatencyMetrics:
    """Throughput and batch / amortized per-example latency percentiles from batch timings."""
    seconds = np.asarray(batch_seconds, dtype=np.float64)
    sizes = np.asarray(batch_sizes)
    if seconds.size == 0:
        raise DataError("batch_seconds is empty: these predictions carry no timings (they were "
                        "probably made by another system, not 'textgate predict'), so latency "
                        "cannot be measured; skip latency for them.", field="batch_seconds")
    if seconds.ndim != 1 or sizes.shape != seconds.shape:
        raise DataError(f"batch_seconds and batch_sizes must be 1-D with one entry per batch; got "
                        f"shapes {seconds.shape} and {sizes.shape}. Pass the Predictions' own "
                        "batch_seconds and batch_sizes.", field="batch_sizes")
    if not np.issubdtype(sizes.dtype, np.integer) or (sizes < 1).any():
        raise DataError(f"batch_sizes must be integers >= 1; got {quote(sizes.tolist())}. Record "
                        "how many examples each batch held.", field="batch_sizes")
    if not np.isfinite(seconds).all() or (seconds < 0).any() or seconds.sum() <= 0:
        raise DataError(f"batch_seconds must be finite, >= 0 and not all 0; got "
                        f"{quote(seconds.tolist())}. Time each batch with time.perf_counter().",
                        field="batch_seconds")
    return _latency(seconds, sizes.astype(np.int64))


def _percentiles(values: np.ndarray) -> Percentiles:
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return Percentiles(float(p50), float(p95), float(p99))


def _latency(seconds: np.ndarray, sizes: np.ndarray) -> LatencyMetrics:
    total = float(seconds.sum())
    examples = int(sizes.sum())
    batch_ms = seconds * 1000.0
    return LatencyMetrics(
        batches=int(seconds.size),
        examples=examples,
        total_seconds=total,
        throughput_per_s=examples / total,
        batch_ms=_percentiles(batch_ms),
        per_example_ms=_percentiles(np.repeat(batch_ms / sizes, sizes)),
    )


# ---------------------------------------------------------------------------------------------
# Slices
# ---------------------------------------------------------------------------------------------


def slice_metrics(
    y_true: Any, y_pred: Any, masks: Mapping[str, Any], *, label_names: Sequence[str]
) -> tuple[SliceMetrics, ...]:
    """Classification metrics on each named subset of examples (``masks``: name -> bool (N,))."""
    names = check_label_names(label_names)
    true_codes = encode_true(y_true, names)
    predicted = as_labels(y_pred, "y_pred")
    check_same_length(true_codes.size, predicted.size, "y_pred")
    checked = {name: check_mask(name, mask, true_codes.size) for name, mask in masks.items()}
    return tuple(_slice(name, mask, true_codes, predicted, names) for name, mask in checked.items())


def _slice(name: str, mask: np.ndarray, true_codes: np.ndarray, predicted: np.ndarray,
           names: tuple[str, ...]) -> SliceMetrics:
    size = int(mask.sum())
    fraction = size / mask.size
    if size == 0:
        return SliceMetrics(name, 0, fraction, None,
                            note=f"slice {name!r} matched no examples; it has no metrics")
    return SliceMetrics(name, size, fraction, classification_from_codes(true_codes[mask], predicted[mask], names))
