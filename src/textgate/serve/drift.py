"""Drift of the served labels: pure statistics (``population_stability_index``,
``chi2_goodness_of_fit``, ``chi2_sf``, testable against scipy without a server; scipy is not
needed at run time) and the thread-safe windows the app feeds (``LabelDrift`` against a
reference distribution, ``ShadowTracker`` primary vs shadow). :mod:`textgate.serve.prometheus`
exports them as gauges."""

from __future__ import annotations

import math
import threading
from collections import Counter as _Tally
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DRIFT_EPSILON",
    "LabelDrift",
    "ShadowTracker",
    "chi2_goodness_of_fit",
    "chi2_sf",
    "population_stability_index",
]

# Share given to a category absent on one side, so that PSI and chi2 stay finite (a common choice).
DRIFT_EPSILON = 1e-4


def _smoothed(shares: Sequence[float]) -> list[float]:
    floored = [max(float(s), DRIFT_EPSILON) for s in shares]
    total = sum(floored)
    return [s / total for s in floored]


def population_stability_index(observed_counts: Sequence[float], expected_shares: Sequence[float]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over categories, shares floored at DRIFT_EPSILON.

    Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift. NaN without data."""
    n = float(sum(observed_counts))
    if n <= 0 or len(observed_counts) != len(expected_shares):
        return math.nan
    actual = _smoothed([c / n for c in observed_counts])
    expected = _smoothed(expected_shares)
    return float(sum((a - e) * math.log(a / e) for a, e in zip(actual, expected)))


def chi2_goodness_of_fit(observed_counts: Sequence[float], expected_shares: Sequence[float]) -> tuple[float, float]:
    """Pearson's chi-squared statistic of the counts against the shares, and its p-value
    (K - 1 degrees of freedom). Expected shares are floored at DRIFT_EPSILON. NaNs without data."""
    n = float(sum(observed_counts))
    k = len(observed_counts)
    if n <= 0 or k < 2 or k != len(expected_shares):
        return math.nan, math.nan
    expected = [n * e for e in _smoothed(expected_shares)]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed_counts, expected))
    return float(statistic), chi2_sf(statistic, k - 1)


def chi2_sf(x: float, dof: float) -> float:
    """Survival function of the chi-squared distribution, P(X > x) = Q(dof/2, x/2), the
    regularized upper incomplete gamma function (series below a+1, continued fraction above,
    as in Numerical Recipes' gammq)."""
    if dof <= 0:
        raise ValueError(f"dof must be > 0; got {dof}.")
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    a, z = dof / 2.0, x / 2.0
    if z < a + 1.0:
        return max(0.0, min(1.0, 1.0 - _lower_gamma_series(a, z)))
    return max(0.0, min(1.0, _upper_gamma_continued_fraction(a, z)))


def _lower_gamma_series(a: float, z: float) -> float:
    """P(a, z) by its power series (converges fast for z < a + 1)."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(10_000):
        denominator += 1.0
        term *= z / denominator
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-z + a * math.log(z) - math.lgamma(a))


def _upper_gamma_continued_fraction(a: float, z: float) -> float:
    """Q(a, z) by Lentz's continued fraction (converges fast for z >= a + 1)."""
    tiny = 1e-300
    b = z + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(-z + a * math.log(z) - math.lgamma(a)) * h


class LabelDrift:
    """The last ``window`` final labels against a reference distribution (thread-safe)."""

    def __init__(self, reference: Mapping[str, float], *, window: int):
        self.reference = dict(reference)
        self._labels: deque[str] = deque(maxlen=window)
        self._lock = threading.Lock()

    def observe(self, labels: Iterable[str]) -> None:
        with self._lock:
            self._labels.extend(labels)

    def __len__(self) -> int:
        return len(self._labels)

    def _counts_and_shares(self) -> tuple[list[int], list[float]]:
        with self._lock:
            tally = _Tally(self._labels)
        # Labels outside the reference (a fallback label, say) are categories with share 0.
        categories = list(self.reference) + sorted(set(tally) - set(self.reference))
        return [tally.get(c, 0) for c in categories], [self.reference.get(c, 0.0) for c in categories]

    def psi(self) -> float:
        return population_stability_index(*self._counts_and_shares())

    def chi2_pvalue(self) -> float:
        return chi2_goodness_of_fit(*self._counts_and_shares())[1]


class ShadowTracker:
    """Primary vs shadow labels over the last ``window`` texts (thread-safe)."""

    def __init__(self, label_names: Sequence[str], *, window: int):
        self._pairs: deque[tuple[str, str]] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.label_names = tuple(label_names)

    def observe(self, primary: Sequence[str], shadow: Sequence[str]) -> None:
        with self._lock:
            self._pairs.extend(zip(primary, shadow))

    def agreement_rate(self) -> float:
        with self._lock:
            pairs = list(self._pairs)
        return sum(p == s for p, s in pairs) / len(pairs) if pairs else math.nan

    def flip_rate(self) -> float:
        rate = self.agreement_rate()
        return math.nan if math.isnan(rate) else 1.0 - rate

    def label_delta(self, label: str) -> float:
        """Shadow count minus primary count of ``label`` in the window, as a share of the window."""
        with self._lock:
            pairs = list(self._pairs)
        if not pairs:
            return math.nan
        return (sum(s == label for _, s in pairs) - sum(p == label for p, _ in pairs)) / len(pairs)
