"""Calibration: temperature scaling fitted by NLL, measured on held-out data with paired
bootstrap intervals; Monte Carlo dropout; and the calibration file a ModelSpec references.

Temperature scaling (Guo et al. 2017) divides a classifier's logits by one number T > 0
before the softmax: T > 1 softens over-confident outputs, T < 1 sharpens them, and the
argmax (so accuracy) never changes. T is fitted by minimizing the mean negative
log-likelihood of the true class over ``log T`` in [-4, 4] (T in [0.018, 54.6]): an 81-point
grid (step 0.1) finds the basin, then a golden-section search inside the two neighbouring
grid cells polishes it to 1e-7 in log T. The grid makes the fit independent of a starting
point; NLL is smooth in log T, so the bracketed minimum is the global one on the grid's scale.

Predictions hold probabilities, not logits. ``log p`` equals the logits up to a per-row
constant, and softmax is blind to such constants, so ``softmax(log p / T) == softmax(logits / T)``:
the same fit works from a saved Predictions file. Probabilities are floored at the smallest
normal float32 (1.2e-38) before the log, the only place a float32 softmax can lose information.

Held-out evaluation, one of (``holdout``):

- ``eval-data``: fit on all of the calibration data, evaluate on a separate labeled set;
- ``split``: a seeded stratified split (default 50/50): fit on one part, evaluate on the other;
  the saved T is the one evaluated;
- ``k-fold``: stratified folds; each fold's rows are scored with the T fitted on the other
  folds and the folds are pooled; the saved T is refitted on all rows (the pooled figures
  measure the fitting procedure, as usual for cross-validation).

Metrics before and after (top-label ECE with 15 equal-width and 15 equal-mass bins, MCE,
Brier, NLL, accuracy) are those of :func:`textgate.metrics.calibration_metrics` on the held-out
rows. Their 95% intervals come from one paired percentile bootstrap: resample ``b`` is row
``b`` of ``np.random.default_rng(seed).integers(0, N, size=(n_resamples, N))`` (drawn in chunks
by :mod:`textgate.compare`'s helper), the same rows index the before and the after
probabilities, and the interval of the difference is taken over the per-resample differences.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from textgate.compare import (
    _bootstrap,
    _check_bootstrap_settings,
    _check_seed,
    _interval,
    _resampled_bin_sums,
    _Scratch,
)
from textgate.config import dump_toml, read_toml, validate_table
from textgate.errors import ConfigError, DataError
from textgate.metrics import (
    DEFAULT_N_BINS,
    METRICS,
    NLL_CLIP,
    CalibrationMetrics,
    _calibration,
    _check_class_id_values,
    _check_label_names,
    _check_same_length,
    _encode_true,
    _equal_width_index,
    _Record,
    check_probabilities,
)
from textgate.outputs import write_text_atomic

if TYPE_CHECKING:
    from textgate.model import Classifier

__all__ = [
    "CALIBRATION_FILE_VERSION",
    "CalibrationFile",
    "CalibrationResult",
    "McDropoutPoint",
    "McDropoutRun",
    "MetricChange",
    "TemperatureFit",
    "apply_temperature",
    "calibrate_temperature",
    "check_calibration_labels",
    "fit_temperature",
    "logits_from_probabilities",
    "mc_dropout_curve",
    "mc_dropout_metrics",
    "paired_calibration_changes",
    "read_calibration_file",
    "write_calibration_file",
]

CALIBRATION_FILE_VERSION = 1
# The fix every error about a calibration file ends with.
_REFIT = "Re-run `textgate calibrate MODEL DATA --out FILE` and point the ModelSpec's calibration at FILE."
# T in [e^-4, e^4] = [0.018, 54.6]: beyond that, outputs are one-hot or uniform to float precision.
LOG_T_BOUNDS = (-4.0, 4.0)
# Step 0.1 in log T (10% in T): fine enough that the NLL has one minimum between grid neighbours.
GRID_POINTS = 81
# Golden-section stop in log T: T to 1e-7 relative, far below the sampling error of any fit.
LOG_T_TOLERANCE = 1e-7
# Smallest normal float32: a float32 softmax output of 0 carries no more information than this.
PROBABILITY_FLOOR = float(np.finfo(np.float32).tiny)
DEFAULT_FIT_FRACTION = 0.5
DEFAULT_RESAMPLES = 2000
DEFAULT_MC_PASSES = (1, 5, 10, 20, 40)
# Metrics reported before/after, in report order (names as in textgate.metrics.METRICS).
REPORTED_METRICS = ("ece_equal_width", "ece_equal_mass", "mce", "brier", "nll", "accuracy")
# Seeds of the split/fold generators: [seed, stream], never the bootstrap's plain `seed` stream.
_SPLIT_STREAM = 0x73706C74  # "splt"
_GOLDEN = (math.sqrt(5) - 1) / 2


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemperatureFit(_Record):
    """One temperature fit: T, the NLL at T = 1 and at T, and whether T hit a search bound."""

    temperature: float
    nll_before: float
    nll_after: float
    n: int
    at_bound: bool
    method: str


@dataclass(frozen=True)
class MetricChange(_Record):
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
class CalibrationResult(_Record):
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


@dataclass(frozen=True)
class McDropoutPoint(_Record):
    """Metrics of the mean of the first ``passes`` stochastic passes, and what they cost."""

    passes: int
    ece_equal_width: float
    ece_equal_mass: float
    nll: float
    brier: float
    accuracy: float
    seconds: float  # wall time of those passes together


@dataclass(frozen=True, eq=False)
class McDropoutRun(_Record):
    """An MC-dropout run: the curve, every pass's wall time, and deterministic passes timed just
    before and just after the stochastic ones (the cost of the uncalibrated and the
    temperature-scaled model, since T is free at run time)."""

    points: tuple[McDropoutPoint, ...]
    pass_seconds: tuple[float, ...]
    deterministic_seconds: tuple[float, float]  # (before, after) the stochastic passes
    mean_probabilities: np.ndarray  # (N, K) mean over all passes, label_names column order
    seed: int  # of the dropout masks
    rows: int  # texts each pass ran on (N)

    @property
    def seconds_per_pass(self) -> float:
        """Median wall time of one stochastic pass."""
        return float(np.median(self.pass_seconds))

    @property
    def deterministic_seconds_per_pass(self) -> float:
        return float(np.mean(self.deterministic_seconds))

    def summary(self) -> dict[str, Any]:
        """JSON-ready, without the probabilities."""
        return {"seed": self.seed, "rows": self.rows, "points": [p.to_dict() for p in self.points],
                "pass_seconds": list(self.pass_seconds),
                "deterministic_seconds": list(self.deterministic_seconds),
                "seconds_per_pass": self.seconds_per_pass,
                "deterministic_seconds_per_pass": self.deterministic_seconds_per_pass}


class HeldOutMetrics(BaseModel):
    """Held-out figures stored in a calibration file (for people reading it; not used to load)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    rows: int = Field(ge=1)


class FittedOn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    data_fingerprint: str
    rows: int = Field(ge=1, description="rows the saved temperature was fitted on")
    holdout: str


class CalibrationFile(BaseModel):
    """The TOML file `textgate calibrate` writes and a ModelSpec's ``calibration`` names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(ge=1, le=CALIBRATION_FILE_VERSION)
    method: Literal["temperature_scaling"]
    temperature: float = Field(gt=0, allow_inf_nan=False)
    model_fingerprint: str = Field(min_length=1)
    label_names: tuple[str, ...] = Field(min_length=1)
    textgate_version: str
    created: str
    fitted_on: FittedOn
    heldout: HeldOutMetrics


# ---------------------------------------------------------------------------------------------
# Temperature scaling
# ---------------------------------------------------------------------------------------------


def logits_from_probabilities(probabilities: Any) -> np.ndarray:
    """``log p`` (float64): logits up to a per-row constant, which no softmax can see."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"probabilities must be a 2-D (N, K) array; got shape {p.shape}. Pass one row "
                        "per example, one column per label.", field="probabilities")
    return _log_floored(check_probabilities(p, p.shape[0], p.shape[1]))


def _log_floored(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, PROBABILITY_FLOOR))


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` in float64, row by row."""
    _check_temperature(temperature)
    z = _check_logits(logits)
    return _softmax(z / float(temperature))


def fit_temperature(logits: Any, labels: Any) -> TemperatureFit:
    """Fit T minimizing the NLL of ``labels`` (class ids 0..K-1) under ``softmax(logits / T)``."""
    z = _check_logits(logits)
    y = _check_class_ids(labels, z.shape[0], z.shape[1])
    return _fit(z, y)


def _fit(z: np.ndarray, y: np.ndarray) -> TemperatureFit:
    true_logit = z[np.arange(z.shape[0]), y]

    def nll(log_t: float) -> float:
        scaled = z / math.exp(log_t)
        top = scaled.max(axis=1)
        log_norm = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
        return float(np.mean(log_norm - true_logit / math.exp(log_t)))

    lo, hi = LOG_T_BOUNDS
    grid = np.linspace(lo, hi, GRID_POINTS)
    values = [nll(float(g)) for g in grid]
    best = int(np.argmin(values))
    a, b = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, GRID_POINTS - 1)])
    log_t = _golden_section(nll, a, b)
    # The polish never leaves the grid's best value behind.
    if nll(log_t) > values[best]:
        log_t = float(grid[best])
    at_bound = abs(log_t - lo) < 1e-3 or abs(log_t - hi) < 1e-3
    return TemperatureFit(
        temperature=math.exp(log_t), nll_before=nll(0.0), nll_after=nll(log_t), n=int(z.shape[0]),
        at_bound=at_bound,
        method=(f"NLL minimized over log T in [{lo:g}, {hi:g}]: {GRID_POINTS}-point grid, then "
                f"golden-section search to {LOG_T_TOLERANCE:g}"),
    )


def _golden_section(f: Callable[[float], float], a: float, b: float) -> float:
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while b - a > LOG_T_TOLERANCE:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    return (a + b) / 2


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _check_temperature(temperature: Any) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"temperature must be a finite number > 0; got {temperature!r}. "
                          "Fit one with `textgate calibrate` (1.0 leaves outputs unchanged).",
                          field="temperature")


def _check_logits(logits: Any) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise DataError(f"logits must be a 2-D (N, K) array with N >= 1 examples and K >= 2 classes; "
                        f"got shape {z.shape}.", field="logits")
    if not np.isfinite(z).all():
        rows = np.flatnonzero(~np.isfinite(z).all(axis=1))
        raise DataError(f"logits must be finite; rows {rows[:5].tolist()} hold NaN or infinity. Check "
                        "the model's outputs for those examples.", field="logits")
    return z


def _check_class_ids(labels: Any, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array of class ids; got shape {y.shape}.", field="labels")
    _check_same_length(n, y.size, "labels")
    _check_class_id_values(y, k, columns="logits")
    return y.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Held-out evaluation
# ---------------------------------------------------------------------------------------------


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
    names = _check_label_names(label_names)
    y = _encode_true(y_true, names)
    z = _check_side(probabilities, y.size, len(names), "probabilities")
    n_resamples, seed, confidence = _check_bootstrap_settings(n_resamples, seed, confidence)
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
        eval_y = _encode_true(eval_y_true, names)
        eval_z = _check_side(eval_probabilities, eval_y.size, len(names), "eval_probabilities")
        fit = _fit(z, y)
        return _result(fit, "eval-data", "fitted on all calibration rows, evaluated on a separate set",
                       (fit.temperature,), y.size, None, eval_y, eval_z,
                       _softmax(eval_z / fit.temperature), seed, n_resamples, confidence)
    if k_folds is not None:
        folds = _stratified_folds(y, _check_k(k_folds, y), seed)
        after = np.empty_like(z)
        temperatures = []
        for fold in range(int(k_folds)):
            held = folds == fold
            fold_fit = _fit(z[~held], y[~held])
            temperatures.append(fold_fit.temperature)
            after[held] = _softmax(z[held] / fold_fit.temperature)
        fit = _fit(z, y)
        description = (f"stratified {k_folds}-fold cross-validation, seed {seed}: each fold scored with "
                       "the T fitted on the other folds, folds pooled; saved T refitted on all rows")
        return _result(fit, "k-fold", description, tuple(temperatures), y.size, np.arange(y.size),
                       y, z, after, seed, n_resamples, confidence)
    fraction = _check_fraction(DEFAULT_FIT_FRACTION if fit_fraction is None else fit_fraction, y)
    fit_rows = _stratified_split(y, fraction, seed)
    eval_rows = np.setdiff1d(np.arange(y.size), fit_rows)
    fit = _fit(z[fit_rows], y[fit_rows])
    description = (f"seeded stratified split, seed {seed}: fitted on {fit_rows.size:,} rows "
                   f"({100 * fraction:g}%), evaluated on the other {eval_rows.size:,}")
    return _result(fit, "split", description, (fit.temperature,), fit_rows.size, eval_rows, y[eval_rows],
                   z[eval_rows], _softmax(z[eval_rows] / fit.temperature), seed, n_resamples, confidence)


def paired_calibration_changes(y_true: Any, before: Any, after: Any, *, label_names: Sequence[str], seed: int = 0,
                               n_resamples: int = DEFAULT_RESAMPLES,
                               confidence: float = 0.95) -> tuple[MetricChange, ...]:
    """REPORTED_METRICS of two sets of probabilities on the same rows (e.g. a model before and
    after a calibration method), with the paired bootstrap intervals of the module docstring."""
    names = _check_label_names(label_names)
    y = _encode_true(y_true, names)
    n_resamples, seed, confidence = _check_bootstrap_settings(n_resamples, seed, confidence)
    p_before = check_probabilities(before, y.size, len(names))
    p_after = check_probabilities(after, y.size, len(names))
    return _metric_changes(y, p_before, p_after, _calibration(y, p_before, DEFAULT_N_BINS),
                           _calibration(y, p_after, DEFAULT_N_BINS), seed, n_resamples, confidence)


def _check_side(probabilities: Any, n: int, k: int, name: str) -> np.ndarray:
    try:
        p = check_probabilities(probabilities, n, k)
    except DataError as exc:
        raise DataError(f"{name}: {exc}", field=name) from exc
    return _log_floored(p)


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
    before = _softmax(before_z)
    before_metrics, after_metrics = _calibration(y, before, DEFAULT_N_BINS), _calibration(y, after, DEFAULT_N_BINS)
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


# ---------------------------------------------------------------------------------------------
# Paired bootstrap of the calibration metrics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PerExample:
    """Per-example pieces from which every reported metric of a resample is a sum."""

    gap: np.ndarray  # confidence - correct
    correct: np.ndarray
    bins: np.ndarray  # equal-width bin, metrics._equal_width_index
    brier: np.ndarray
    nll: np.ndarray
    rank: np.ndarray  # position in metrics._ece_equal_mass's order (confidence, then correct)
    gap_by_rank: np.ndarray


def _per_example(y: np.ndarray, p: np.ndarray) -> _PerExample:
    n = y.size
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = _equal_width_index(confidence, DEFAULT_N_BINS)
    onehot = np.eye(p.shape[1])[y]
    order = np.lexsort((correct, confidence))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    gap = confidence - correct
    return _PerExample(gap, correct, bins, np.sum((p - onehot) ** 2, axis=1),
                       -np.log(np.clip(p[np.arange(n), y], NLL_CLIP, 1.0)), rank, gap[order])


def _resampled_metrics(side: _PerExample, idx: np.ndarray, scratch: _Scratch) -> np.ndarray:
    """(rows, 6) values of REPORTED_METRICS on each resample (row of example indices) in idx."""
    rows, n = idx.shape
    keys, sums = _resampled_bin_sums(side.bins, side.gap, idx, scratch)
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

    def statistic(idx: np.ndarray, scratch: _Scratch) -> np.ndarray:
        b, a = (_resampled_metrics(side, idx, scratch) for side in sides)
        return np.hstack([b, a, a - b])

    draws = _bootstrap(np.random.default_rng(seed), y.size, n_resamples, statistic)
    low, high = _interval(draws, confidence)
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


# ---------------------------------------------------------------------------------------------
# MC dropout
# ---------------------------------------------------------------------------------------------


def mc_dropout_metrics(y_true: Any, pass_probabilities: Any, pass_seconds: Sequence[float], *,
                       label_names: Sequence[str],
                       passes: Sequence[int] = DEFAULT_MC_PASSES) -> tuple[McDropoutPoint, ...]:
    """Metrics of the mean probabilities of the first N passes, for each N in ``passes``.

    ``pass_probabilities`` is (P, N, K): P stochastic passes over the same N examples;
    ``pass_seconds`` the wall time of each pass, so N passes cost the sum of the first N."""
    names = _check_label_names(label_names)
    y = _encode_true(y_true, names)
    stack = np.asarray(pass_probabilities, dtype=np.float64)
    if stack.ndim != 3:
        raise DataError(f"pass_probabilities must be (passes, N, K); got shape {stack.shape}.",
                        field="pass_probabilities")
    wanted = _check_passes(passes, limit=stack.shape[0])
    seconds = np.asarray(pass_seconds, dtype=np.float64)
    _check_same_length(stack.shape[0], seconds.size, "pass_seconds")
    points = []
    running = np.zeros(stack.shape[1:])
    done = 0
    for n_passes in wanted:
        for i in range(done, n_passes):
            running += check_probabilities(stack[i], y.size, len(names))
        done = n_passes
        mean = running / n_passes
        metrics = _calibration(y, mean, DEFAULT_N_BINS)
        points.append(McDropoutPoint(n_passes, metrics.ece_equal_width.value, metrics.ece_equal_mass.value,
                                     metrics.nll.value, metrics.brier.value,
                                     float(np.mean(mean.argmax(axis=1) == y)), float(seconds[:n_passes].sum())))
    return tuple(points)


def mc_dropout_curve(classifier: Classifier, texts: Sequence[str], y_true: Any, *,
                     passes: Sequence[int] = DEFAULT_MC_PASSES, seed: int = 0,
                     token_budget: int | None = None) -> McDropoutRun:
    """Run max(passes) stochastic passes of ``classifier`` on ``texts`` with dropout active
    (attention dropout included; see :func:`textgate.model.mc_dropout_mode`) through the
    inference engine, and measure the averaged probabilities for each N in ``passes``.

    A deterministic pass on the same texts is timed before and after the stochastic ones: the
    cost of the uncalibrated and of the temperature-scaled model. The classifier's own
    temperature is not applied: MC dropout is compared with the uncalibrated model."""
    from textgate.infer import DEFAULT_TOKEN_BUDGET, predict
    from textgate.model import mc_dropout_mode

    wanted = _check_passes(passes)
    seed = _check_seed(seed)
    # Labels first: a wrong label or length fails now, not after max(passes) passes.
    y = _encode_true(y_true, _check_label_names(classifier.label_names))
    _check_same_length(y.size, len(texts), "texts")
    budget = DEFAULT_TOKEN_BUDGET if token_budget is None else token_budget
    raw = _uncalibrated(classifier)

    def deterministic_pass() -> float:
        started = time.perf_counter()
        predict(raw, texts, token_budget=budget, progress=False)
        return time.perf_counter() - started

    before = deterministic_pass()
    stack, seconds = [], []
    with mc_dropout_mode(raw, seed=seed):
        for _ in range(max(wanted)):
            started = time.perf_counter()
            stack.append(predict(raw, texts, token_budget=budget, progress=False).probabilities)
            seconds.append(time.perf_counter() - started)
    after = deterministic_pass()
    probabilities = np.stack(stack)
    points = mc_dropout_metrics(y_true, probabilities, seconds, label_names=classifier.label_names, passes=wanted)
    return McDropoutRun(points, tuple(seconds), (before, after), probabilities.mean(axis=0, dtype=np.float64),
                        seed=seed, rows=len(texts))


def _uncalibrated(classifier: Classifier) -> Classifier:
    import dataclasses

    return classifier if classifier.temperature == 1.0 else dataclasses.replace(classifier, temperature=1.0)


def _check_passes(passes: Any, *, limit: int | None = None) -> tuple[int, ...]:
    values = tuple(passes) if isinstance(passes, (list, tuple)) else ()
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ConfigError(f"MC dropout passes must be a non-empty list of integers >= 1; got {passes!r}. "
                          "Use e.g. 1,5,10,20,40.", field="mc_dropout")
    wanted = tuple(sorted({int(v) for v in values}))
    if limit is not None and wanted[-1] > limit:
        raise DataError(f"Asked for the mean of {wanted[-1]} passes but only {limit} were run.",
                        field="passes")
    return wanted


# ---------------------------------------------------------------------------------------------
# The calibration file
# ---------------------------------------------------------------------------------------------


def write_calibration_file(path: Path | str, result: CalibrationResult, *, model_fingerprint: str,
                           label_names: Sequence[str], data_path: str, data_fingerprint: str) -> Path:
    """Write the TOML file a ModelSpec's ``calibration`` field names (see docs/calibration.md)."""
    from textgate.model import library_versions

    path = Path(path)
    heldout: dict[str, Any] = {"rows": result.n_eval}
    for change in result.metrics:
        heldout[f"{change.name}_before"] = change.before
        heldout[f"{change.name}_after"] = change.after
    record = CalibrationFile(
        schema_version=CALIBRATION_FILE_VERSION, method="temperature_scaling", temperature=result.temperature,
        model_fingerprint=model_fingerprint, label_names=tuple(label_names),
        textgate_version=library_versions()["textgate"],  # "not installed" outside a package install
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        fitted_on=FittedOn(path=data_path, data_fingerprint=data_fingerprint, rows=result.n_fit,
                           holdout=result.holdout_description),
        heldout=HeldOutMetrics(**heldout),
    )
    header = ("# Written by `textgate calibrate`. Reference it from a ModelSpec:\n"
              f'#   calibration = "{path.name}"   (relative to the ModelSpec file)\n'
              "# predict, eval, gate and serve then divide the logits by `temperature` before the softmax.\n")
    body = dump_toml(record.model_dump(), section_comments={
        "heldout": f"held-out metrics ({result.holdout}), before -> after; for reading only"})
    return write_text_atomic(path, header + body)


def read_calibration_file(path: Path | str, *, model_fingerprint: str | None = None,
                          label_names: Sequence[str] | None = None) -> CalibrationFile:
    """Read and check a calibration file; with ``model_fingerprint`` / ``label_names``, also that
    it was fitted for that model (the fingerprint of its ModelSpec without calibration)."""
    path = Path(path)
    raw = read_toml(path, what="Calibration file (ModelSpec field 'calibration')", field="calibration")
    try:
        record = validate_table(CalibrationFile, raw, origin=f"calibration file {path}")
    except ConfigError as exc:
        raise ConfigError(f"ModelSpec field 'calibration': {exc} {_REFIT}", field="calibration", path=path) from exc
    if model_fingerprint is not None and record.model_fingerprint != model_fingerprint:
        raise ConfigError(
            f"ModelSpec field 'calibration': {path} was fitted for model fingerprint "
            f"{record.model_fingerprint}, but this ModelSpec's model (without calibration) has fingerprint "
            f"{model_fingerprint}: its weights, adapter or an output-changing setting (dtype, max_length, "
            f"padding, label_map, ...) differ. {_REFIT}", field="calibration", path=path)
    if label_names is not None:
        check_calibration_labels(record, path, label_names)
    return record


def check_calibration_labels(record: CalibrationFile, path: Path | str, label_names: Sequence[str]) -> None:
    """ConfigError unless ``record`` (read from ``path``) was fitted for exactly ``label_names``."""
    if tuple(record.label_names) != tuple(label_names):
        raise ConfigError(
            f"ModelSpec field 'calibration': {path} was fitted for labels {list(record.label_names)}, but "
            f"the model outputs {list(label_names)}. {_REFIT}", field="calibration", path=path)
