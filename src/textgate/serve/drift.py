"""Drift of the served labels: the thread-safe windows the app feeds, measured with the
statistics of ``textgate drift`` (:mod:`textgate.drift.stats`, on scipy) (``LabelDrift`` against a
reference distribution, ``ShadowTracker`` primary vs shadow). :mod:`textgate.serve.prometheus`
exports them as gauges."""

from __future__ import annotations

import math
import threading
from collections import Counter as _Tally
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from textgate.drift.stats import chi2_goodness_of_fit, population_stability_index

__all__ = ["LabelDrift", "ShadowTracker"]

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
