"""Calibration measured on held-out data: fit temperature scaling, then compare the metrics
before and after on rows the fit never saw, with paired bootstrap intervals.

Held-out evaluation, one of (``holdout``):

- ``eval-data``: fit on all of the calibration data, evaluate on a separate labeled set;
- ``split``: a seeded stratified split (default 50/50): fit on one part, evaluate on the other;
  the saved T is the one evaluated;
- ``k-fold``: stratified folds; each fold's rows are scored with the T fitted on the other
  folds and the folds are pooled; the saved T is refitted on all rows (the pooled figures
  measure the fitting procedure, as usual for cross-validation).

Metrics before and after (top-label ECE with 15 equal-width and 15 equal-mass bins, MCE,
Brier, NLL, accuracy) are those of :func:`textgate.evaluation.metrics.calibration_metrics` on the held-out
rows. Their 95% intervals come from one paired percentile bootstrap: resample ``b`` is row
``b`` of ``np.random.default_rng(seed).integers(0, N, size=(n_resamples, N))`` (drawn in chunks
by :mod:`textgate._internal.bootstrap`), the same rows index the before and the after
probabilities, and the interval of the difference is taken over the per-resample differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from textgate._internal.bootstrap import (
    Scratch,
    bootstrap,
    check_bootstrap_settings,
    percentile_interval,
    resampled_bin_sums,
)
from textgate._internal.labels import encode_true
from textgate._internal.records import Record
from textgate._internal.validation import (
    check_label_names,
    check_probabilities,
)
from textgate.calibrate.temperature import (
    LOG_T_BOUNDS,
    TemperatureFit,
    fit_temperature_unchecked,
    floored_log,
    softmax,
)
from textgate.errors import ConfigError, DataError
from textgate.evaluation.metrics import (
    DEFAULT_N_BINS,
    NLL_CLIP,
    CalibrationMetrics,
    calibration_from_codes,
    equal_width_index,
)
from textgate.evaluation.registry import METRICS

__all__ = [
    "DEFAULT_FIT_FRACTION",
    "DEFAULT_RESAMPLES",
    "REPORTED_METRICS",
    "CalibrationResult",
    "MetricChange",
    "calibrate_temperature",
    "paired_calibration_changes",
]

DEFAULT_FIT_FRACTION = 0.5
DEFAULT_RESAMPLES = 2000
# Metrics reported before/after, in report order (ids of textgate.evaluation.registry.METRICS).
REPORTED_METRICS = ("ece_equal_width", "ece_equal_mass", "mce", "brier", "nll", "accuracy")
# Seeds of the split/fold generators: [seed, stream], never the bootstrap's plain `seed` stream.
_SPLIT_STREAM = 0x73706C74  # "splt"


@dataclass(frozen=True)
class MetricChange(Record):
    """One metric before and after calibration on the same rows, with paired bootstrap intervals."""

    name: str
    before: float
    after: float
    delta: float  # after - before
    before_ci: tuple[float, float]
    after_ci: tuple[float, float]
    delta_ci: tuple[float, float]
    higher_is_better: bool


@dataclass(frozen=True, eq=False)
class CalibrationResult(Record):
    """What `calibrate_temperature` measured; ``temperature`` is the one to save."""

    temperature: float
    fit: TemperatureFit  # the fit of the saved temperature
    holdout: Literal["split", "k-fold", "eval-data"]
    holdout_description: str
    fold_temperatures: tuple[float, ...]  # one per fold (k-fold), else (temperature,)
    n_fit: int
    n_eval: int
    eval_rows: tuple[int, ...] | None  # held-out rows of the calibration data; None for eval-data
    before: CalibrationMetrics
    after: CalibrationMetrics
    metrics: tuple[MetricChange, ...]
    bootstrap: str
    notes: tuple[str, ...] = ()

    def metric(self, name: str) -> MetricChange:
        return next(m for m in self.metrics if m.name == name)


def calibrate_temperature(
    y_true: Any,
    probabilities: Any,
    *,
    label_names: Sequence[str],
    eval_y_true: Any = None,
    eval_probabilities: Any = None,
    fit_fraction: float | None = None,
    k_folds: int | None = None,
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
) -> CalibrationResult:
    """Fit temperature scaling on ``probabilities`` (N, K) and measure it on held-out rows.

    Held out: ``eval_y_true``/``eval_probabilities`` when given, else ``k_folds`` stratified
    folds when given, else a stratified ``fit_fraction`` split (see the module docstring;
    default 0.5). ``fit_fraction`` with ``k_folds`` or an evaluation set is a ConfigError.
    """
    names = check_label_names(label_names)
    y = encode_true(y_true, names)
    z = _check_side(probabilities, y.size, len(names), "probabilities")
    n_resamples, seed, confidence = check_bootstrap_settings(n_resamples, seed, confidence)
    separate = eval_y_true is not None or eval_probabilities is not None
    if separate and (eval_y_true is None or eval_probabilities is None):
        raise ConfigError("Pass both eval_y_true and eval_probabilities for a separate evaluation set, "
                          "or neither.", field="eval_probabilities")
    if separate and k_folds is not None:
        raise ConfigError("Choose one held-out method: a separate evaluation set or k_folds, not both.",
                          field="k_folds")
    if fit_fraction is not None and (separate or k_folds is not None):
        other = "a separate evaluation set" if separate else f"k_folds={k_folds!r}"
        raise ConfigError(f"fit_fraction applies only to a split of the calibration data; got "
                          f"fit_fraction={fit_fraction!r} together with {other}. Choose one held-out "
                          "method: leave fit_fraction out (None) or drop the other.", field="fit_fraction")
    if separate:
        eval_y = encode_true(eval_y_true, names)
        eval_z = _check_side(eval_probabilities, eval_y.size, len(names), "eval_probabilities")
        fit = fit_temperature_unchecked(z, y)
        return _result(fit, "eval-data", "fitted on all calibration rows, evaluated on a separate set",
                       (fit.temperature,), y.size, None, eval_y, eval_z,
                       softmax(eval_z / fit.temperature), seed, n_resamples, confidence)
    if k_folds is not None:
        folds = _stratified_folds(y, _check_k(k_folds, y), seed)
        after = np.empty_like(z)
        temperatures = []
        for fold in range(int(k_folds)):
            held = folds == fold
            fold_fit = fit_temperature_unchecked(z[~held], y[~held])
            temperatures.append(fold_fit.temperature)
            after[held] = softmax(z[held] / fold_fit.temperature)
        fit = fit_temperature_unchecked(z, y)
        description = (f"stratified {k_folds}-fold cross-validation, seed {seed}: each fold scored with "
                       "the T fitted on the other folds, folds pooled; saved T refitted on all rows")
        return _result(fit, "k-fold", description, tuple(temperatures), y.size, np.arange(y.size),
                       y, z, after, seed, n_resamples, confidence)
    fraction = _check_fraction(DEFAULT_FIT_FRACTION if fit_fraction is None else fit_fraction, y)
    fit_rows = _stratified_split(y, fraction, seed)
    eval_rows = np.setdiff1d(np.arange(y.size), fit_rows)
    fit = fit_temperature_unchecked(z[fit_rows], y[fit_rows])
    description = (f"seeded stratified split, seed {seed}: fitted on {fit_rows.size:,} rows "
                   f"({100 * fraction:g}%), evaluated on the other {eval_rows.size:,}")
    return _result(fit, "split", description, (fit.temperature,), fit_rows.size, eval_rows, y[eval_rows],
                   z[eval_rows], softmax(z[eval_rows] / fit.temperature), seed, n_resamples, confidence)


def paired_calibration_changes(y_true: Any, before: Any, after: Any, *, label_names: Sequence[str], seed: int = 0,
                               n_resamples: int = DEFAULT_RESAMPLES,
                               confidence: float = 0.95) -> tuple[MetricChange, ...]:
    """REPORTED_METRICS of two sets of probabilities on the same rows (e.g. a model before and
    after a calibration method), with the paired bootstrap intervals of the module docstring."""
    names = check_label_names(label_names)
    y = encode_true(y_true, names)
    n_resamples, seed, confidence = check_bootstrap_settings(n_resamples, seed, confidence)
    p_before = check_probabilities(before, y.size, len(names))
    p_after = check_probabilities(after, y.size, len(names))
    return _metric_changes(y, p_before, p_after, calibration_from_codes(y, p_before, DEFAULT_N_BINS),
                           calibration_from_codes(y, p_after, DEFAULT_N_BINS), seed, n_resamples, confidence)


def _check_side(probabilities: Any, n: int, k: int, name: str) -> np.ndarray:
    try:
        p = check_probabilities(probabilities, n, k)
    except DataError as exc:
        raise DataError(f"{name}: {exc}", field=name) from exc
    return floored_log(p)


def _check_fraction(fraction: Any, y: np.ndarray) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"fit_fraction must be a number in (0, 1), the share of rows T is fitted "
                          f"on; got {fraction!r}. Use 0.5 for a 50/50 split.", field="fit_fraction")
    if y.size < 2:
        raise DataError(f"A split needs at least 2 labeled rows; got {y.size}. Pass more data, or a "
                        "separate evaluation set.", field="y_true")
    return float(fraction)


def _check_k(k: Any, y: np.ndarray) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= y.size:
        raise ConfigError(f"k_folds must be an integer from 2 to the number of rows ({y.size}); got "
                          f"{k!r}. Use 5 or 10.", field="k_folds")
    return int(k)


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted rows of the fit part: ``round(fraction * n_c)`` random rows of each class c, kept
    between 1 and n - 1 overall so neither part is empty."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    chosen = []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        chosen.append(rows[: round(fraction * rows.size)])
    fit = np.sort(np.concatenate(chosen))
    if fit.size == 0:
        fit = np.sort(rng.permutation(y.size)[:1])
    elif fit.size == y.size:
        fit = np.sort(rng.permutation(fit)[:-1])
    return fit


def _stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold of each row: each class's rows shuffled and dealt round-robin, continuing where the
    previous class stopped, so fold sizes differ by at most one."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    folds = np.empty(y.size, dtype=np.int64)
    dealt = 0
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        folds[rows] = (dealt + np.arange(rows.size)) % k
        dealt += rows.size
    return folds


def _result(fit: TemperatureFit, holdout: Any, description: str, temperatures: tuple[float, ...],
            n_fit: int, eval_rows: np.ndarray | None, y: np.ndarray, before_z: np.ndarray,
            after: np.ndarray, seed: int, n_resamples: int, confidence: float) -> CalibrationResult:
    before = softmax(before_z)
    before_metrics = calibration_from_codes(y, before, DEFAULT_N_BINS)
    after_metrics = calibration_from_codes(y, after, DEFAULT_N_BINS)
    changes = _metric_changes(y, before, after, before_metrics, after_metrics, seed, n_resamples, confidence)
    notes = []
    if fit.at_bound:
        notes.append(f"The NLL minimum lies at a search bound (log T = {LOG_T_BOUNDS}): the data are "
                     "(nearly) separable or constant; T is a bound, not an estimate. Use more or harder data.")
    return CalibrationResult(
        temperature=fit.temperature, fit=fit, holdout=holdout, holdout_description=description,
        fold_temperatures=temperatures, n_fit=int(n_fit), n_eval=int(y.size),
        eval_rows=None if eval_rows is None else tuple(int(r) for r in eval_rows),
        before=before_metrics, after=after_metrics, metrics=changes,
        bootstrap=(f"paired percentile bootstrap, {n_resamples} resamples, seed {seed}, "
                   f"{100 * confidence:g}% intervals; the same resampled rows score before and after"),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _PerExample:
    """Per-example pieces from which every reported metric of a resample is a sum."""

    gap: np.ndarray  # confidence - correct
    correct: np.ndarray
    bins: np.ndarray  # equal-width bin, metrics.equal_width_index
    brier: np.ndarray
    nll: np.ndarray
    rank: np.ndarray  # position in metrics._ece_equal_mass's order (confidence, then correct)
    gap_by_rank: np.ndarray


def _per_example(y: np.ndarray, p: np.ndarray) -> _PerExample:
    n = y.size
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = equal_width_index(confidence, DEFAULT_N_BINS)
    onehot = np.eye(p.shape[1])[y]
    order = np.lexsort((correct, confidence))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    gap = confidence - correct
    return _PerExample(gap, correct, bins, np.sum((p - onehot) ** 2, axis=1),
                       -np.log(np.clip(p[np.arange(n), y], NLL_CLIP, 1.0)), rank, gap[order])


def _resampled_metrics(side: _PerExample, idx: np.ndarray, scratch: Scratch) -> np.ndarray:
    """(rows, 6) values of REPORTED_METRICS on each resample (row of example indices) in idx."""
    rows, n = idx.shape
    keys, sums = resampled_bin_sums(side.bins, side.gap, idx, scratch, DEFAULT_N_BINS)
    counts = np.bincount(keys, minlength=rows * DEFAULT_N_BINS).reshape(rows, DEFAULT_N_BINS)
    ece_width = np.abs(sums).sum(axis=1) / n
    mce = np.max(np.abs(sums) / np.maximum(counts, 1), axis=1)
    # Equal-mass bins: array_split's groups of the resample sorted in the point estimate's order.
    sizes = np.array([g.size for g in np.array_split(np.arange(n), DEFAULT_N_BINS) if g.size])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    ranked = np.sort(scratch.take(side.rank, idx), axis=1)
    ece_mass = np.abs(np.add.reduceat(side.gap_by_rank[ranked], starts, axis=1)).sum(axis=1) / n
    columns = [ece_width, ece_mass, mce, scratch.take(side.brier, idx).mean(axis=1),
               scratch.take(side.nll, idx).mean(axis=1), scratch.take(side.correct, idx).mean(axis=1)]
    return np.column_stack(columns)


def _metric_changes(y: np.ndarray, before: np.ndarray, after: np.ndarray, before_metrics: CalibrationMetrics,
                    after_metrics: CalibrationMetrics, seed: int, n_resamples: int,
                    confidence: float) -> tuple[MetricChange, ...]:
    sides = (_per_example(y, before), _per_example(y, after))
    m = len(REPORTED_METRICS)

    def statistic(idx: np.ndarray, scratch: Scratch) -> np.ndarray:
        b, a = (_resampled_metrics(side, idx, scratch) for side in sides)
        return np.hstack([b, a, a - b])

    draws = bootstrap(np.random.default_rng(seed), y.size, n_resamples, statistic)
    low, high = percentile_interval(draws, confidence)
    points = []
    for metrics, p in ((before_metrics, before), (after_metrics, after)):
        accuracy = float(np.mean(p.argmax(axis=1) == y))
        points.append([getattr(metrics, name).value for name in REPORTED_METRICS[:-1]] + [accuracy])
    return tuple(
        MetricChange(name, points[0][i], points[1][i], points[1][i] - points[0][i],
                     (float(low[i]), float(high[i])), (float(low[m + i]), float(high[m + i])),
                     (float(low[2 * m + i]), float(high[2 * m + i])), METRICS[name].higher_is_better)
        for i, name in enumerate(REPORTED_METRICS)
    )
