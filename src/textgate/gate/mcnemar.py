"""McNemar's exact test, with the mid-p, on two models' per-example correctness (pure).

Only the discordant examples carry evidence: ``b`` examples only the baseline got right, ``c``
only the candidate. Under "both models are equally often right" ``min(b, c)`` is binomial
with ``b + c`` trials and p = 1/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from textgate._internal.records import Record
from textgate.errors import DataError

__all__ = ["McNemar", "mcnemar_from_codes", "mcnemar_midp"]

_MCNEMAR_METHOD = ("exact McNemar test on per-example correctness: p_exact = two-sided binomial "
                   "test of the discordant pairs, p_value = mid-p (Fagerland, Lydersen & Laake 2013)")
# A term of P(X <= k) this far below the running sum no longer changes a float64.
_TAIL_CUTOFF = 1e-20


@dataclass(frozen=True)
class McNemar(Record):
    """Exact McNemar test of "both models are equally often right" on the discordant examples."""

    baseline_only_correct: int
    candidate_only_correct: int
    discordant: int
    p_value: float  # mid-p
    p_exact: float  # two-sided exact binomial p
    method: str


def mcnemar_midp(b: int, c: int) -> McNemar:
    """Exact McNemar test from ``b`` (baseline-only correct) and ``c`` (candidate-only correct).

    ``p_exact`` = min(1, 2 P(X <= min(b, c))) for X ~ Bin(b + c, 1/2), as
    ``scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue``; ``p_value`` is the mid-p of
    Fagerland, Lydersen & Laake (2013), which keeps the exact test's size with less
    conservatism: ``p_exact - P(X = min(b, c))``, and ``1 - P(X = b) / 2`` when b == c (the
    observed outcome is then the only tie, counted by half). Both are 1.0 when b + c == 0.
    """
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DataError(f"McNemar count {name} must be an integer >= 0 (examples only one model "
                            f"got right); got {value!r}. Pass counts, not rates.", field=name)
    return _mcnemar(int(b), int(c))


def mcnemar_from_codes(true_codes: np.ndarray, base_codes: np.ndarray, cand_codes: np.ndarray) -> McNemar:
    """The test on label codes already checked (true, baseline and candidate, one per example)."""
    base_ok, cand_ok = base_codes == true_codes, cand_codes == true_codes
    return _mcnemar(int(np.sum(base_ok & ~cand_ok)), int(np.sum(cand_ok & ~base_ok)))


def _mcnemar(b: int, c: int) -> McNemar:
    n, k = b + c, min(b, c)
    if n == 0:  # no discordant pairs: no evidence either way
        return McNemar(b, c, 0, 1.0, 1.0, _MCNEMAR_METHOD)
    log_pmf_k = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    pmf_k = math.exp(log_pmf_k)
    if b == c:
        # Every other outcome is more extreme and only k itself ties, so the two-sided mid-p is
        # 1 - pmf(k)/2, as in the authors' own code (R package contingencytables).
        return McNemar(b, c, n, 1.0 - 0.5 * pmf_k, 1.0, _MCNEMAR_METHOD)
    if abs(b - c) == 1:
        p_exact = 1.0  # by symmetry 2 P(X <= (n-1)/2) is exactly 1
    else:
        # log P(X <= k) = log pmf(k) + log sum_x pmf(x) / pmf(k): log-sum-exp with the largest
        # term (x = k < n/2) factored out. The ratios come from pmf(x-1)/pmf(x) = x / (n-x+1),
        # which avoids cancelling lgamma values of size n log n; they shrink geometrically.
        ratio_sum, term = 1.0, 1.0
        for x in range(k, 0, -1):
            term *= x / (n - x + 1)
            ratio_sum += term
            if term < _TAIL_CUTOFF * ratio_sum:
                break
        p_exact = min(1.0, math.exp(math.log(2) + log_pmf_k + math.log(ratio_sum)))
    # 2 P(X <= k) - P(X = k): more extreme outcomes count fully, the observed ones by half.
    return McNemar(b, c, n, max(0.0, p_exact - pmf_k), p_exact, _MCNEMAR_METHOD)
