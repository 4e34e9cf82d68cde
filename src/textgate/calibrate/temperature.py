"""Temperature scaling: one number T > 0 fitted by NLL, applied to logits before the softmax.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgate._internal.records import Record
from textgate._internal.validation import (
    check_class_id_values,
    check_probabilities,
    check_same_length,
)
from textgate.errors import ConfigError, DataError

__all__ = [
    "GRID_POINTS",
    "LOG_T_BOUNDS",
    "LOG_T_TOLERANCE",
    "PROBABILITY_FLOOR",
    "TemperatureFit",
    "apply_temperature",
    "fit_temperature",
    "fit_temperature_unchecked",
    "floored_log",
    "logits_from_probabilities",
    "softmax",
]

# T in [e^-4, e^4] = [0.018, 54.6]: beyond that, outputs are one-hot or uniform to float precision.
LOG_T_BOUNDS = (-4.0, 4.0)
# Step 0.1 in log T (10% in T): fine enough that the NLL has one minimum between grid neighbours.
GRID_POINTS = 81
# Golden-section stop in log T: T to 1e-7 relative, far below the sampling error of any fit.
LOG_T_TOLERANCE = 1e-7
# Smallest normal float32: a float32 softmax output of 0 carries no more information than this.
PROBABILITY_FLOOR = float(np.finfo(np.float32).tiny)
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class TemperatureFit(Record):
    """One temperature fit: T, the NLL at T = 1 and at T, and whether T hit a search bound."""

    temperature: float
    nll_before: float
    nll_after: float
    n: int
    at_bound: bool
    method: str


def logits_from_probabilities(probabilities: Any) -> np.ndarray:
    """``log p`` (float64): logits up to a per-row constant, which no softmax can see."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"probabilities must be a 2-D (N, K) array; got shape {p.shape}. Pass one row "
                        "per example, one column per label.", field="probabilities")
    return floored_log(check_probabilities(p, p.shape[0], p.shape[1]))


def floored_log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, PROBABILITY_FLOOR))


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` in float64, row by row."""
    _check_temperature(temperature)
    z = _check_logits(logits)
    return softmax(z / float(temperature))


def fit_temperature(logits: Any, labels: Any) -> TemperatureFit:
    """Fit T minimizing the NLL of ``labels`` (class ids 0..K-1) under ``softmax(logits / T)``."""
    z = _check_logits(logits)
    y = _check_class_ids(labels, z.shape[0], z.shape[1])
    return fit_temperature_unchecked(z, y)


def fit_temperature_unchecked(z: np.ndarray, y: np.ndarray) -> TemperatureFit:
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


def softmax(z: np.ndarray) -> np.ndarray:
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
    check_same_length(n, y.size, "labels")
    check_class_id_values(y, k, columns="logits")
    return y.astype(np.int64)
