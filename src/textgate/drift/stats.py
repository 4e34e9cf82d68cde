"""The statistics drift uses, each from scipy: two-sample tests with an effect size and an
interval, the population stability index, Holm's step-down adjustment, and the one-window
goodness-of-fit tests the server's live gauge needs (``population_stability_index``,
``chi2_goodness_of_fit``, ``chi2_sf``, with the signatures of :mod:`textgate.serve.drift`).

Every test returns a :class:`StatResult`. Under "no drift" (both windows drawn from one
population) each p-value is valid or conservative: Pearson's chi-squared and the asymptotic
Kolmogorov-Smirnov test are conservative with ties, Fisher's exact test is exact given the
margins, and the domain classifier's Mann-Whitney test on held-out scores is exact because a
model fitted on other rows scores the held-out rows of both windows alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "DRIFT_EPSILON",
    "StatResult",
    "auc_test",
    "categorical_test",
    "chi2_goodness_of_fit",
    "chi2_sf",
    "distribution_test",
    "holm_adjust",
    "population_stability_index",
    "proportion_test",
    "psi",
    "total_variation",
]

# Share given to a category absent on one side, so that PSI stays finite (a common choice; the
# server's gauge uses the same).
DRIFT_EPSILON = 1e-4
# Intervals are 95% ones; the family-wise decision uses the Holm-adjusted p-values, not them.
_CONFIDENCE = 0.95


@dataclass(frozen=True)
class StatResult:
    """One two-sample comparison: the test (name, statistic, p-value), the effect size it is
    judged by, an interval for the difference where one exists, and ``shift``, a distance in
    [0, 1] shared by every kind of check (total variation for categories and rates, the
    Kolmogorov-Smirnov distance for distributions, 2 x (AUC - 0.5) for the domain classifier)
    so that the largest change can be named."""

    test: str
    statistic: float
    p_value: float
    effect_name: str
    effect: float
    reference: float
    current: float
    ci_low: float | None = None
    ci_high: float | None = None
    shift: float = 0.0
    extra: tuple[tuple[str, float], ...] = ()


def _shares(counts: np.ndarray) -> np.ndarray:
    floored = np.maximum(counts / max(float(counts.sum()), 1.0), DRIFT_EPSILON)
    return floored / floored.sum()


def psi(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Population stability index sum((c - r) ln(c / r)) of two count vectors over the same
    categories, shares floored at DRIFT_EPSILON. Rules of thumb: < 0.1 stable, 0.1-0.25
    moderate, > 0.25 large. NaN when a side has no data."""
    ref, cur = np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)
    if ref.sum() <= 0 or cur.sum() <= 0 or ref.shape != cur.shape:
        return math.nan
    r, c = _shares(ref), _shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


def total_variation(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Half the L1 distance between the two share vectors: the largest difference in the share
    of any set of categories."""
    ref, cur = np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)
    return float(0.5 * np.abs(ref / ref.sum() - cur / cur.sum()).sum())


def categorical_test(reference_counts: Sequence[int], current_counts: Sequence[int]) -> StatResult:
    """Pearson's chi-squared test of homogeneity on the 2 x K table (categories empty on both
    sides dropped), with PSI as the effect size."""
    ref, cur = np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)
    used = (ref + cur) > 0
    if used.sum() < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.vstack([ref[used], cur[used]]), correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    value = psi(ref, cur)
    return StatResult("chi-squared", statistic, p_value, "PSI", value, math.nan, math.nan,
                      shift=total_variation(ref, cur), extra=(("dof", float(max(used.sum() - 1, 0))),))


def proportion_test(reference_hits: int, reference_n: int, current_hits: int, current_n: int) -> StatResult:
    """Two-proportion test (Fisher's exact, two-sided) with the difference current - reference
    as the effect and Newcombe's hybrid score interval for it (from Wilson intervals)."""
    p_ref, p_cur = reference_hits / reference_n, current_hits / current_n
    table = [[current_hits, current_n - current_hits], [reference_hits, reference_n - reference_hits]]
    odds, p_value = stats.fisher_exact(table)
    ref_lo, ref_hi = _wilson(reference_hits, reference_n)
    cur_lo, cur_hi = _wilson(current_hits, current_n)
    delta = p_cur - p_ref
    low = delta - math.sqrt((p_cur - cur_lo) ** 2 + (ref_hi - p_ref) ** 2)
    high = delta + math.sqrt((cur_hi - p_cur) ** 2 + (p_ref - ref_lo) ** 2)
    return StatResult("Fisher's exact", float(odds), float(p_value), "difference", delta, p_ref, p_cur,
                      ci_low=low, ci_high=high, shift=abs(delta))


def _wilson(hits: int, n: int) -> tuple[float, float]:
    interval = stats.binomtest(int(hits), int(n)).proportion_ci(_CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def distribution_test(reference: np.ndarray, current: np.ndarray) -> StatResult:
    """Two-sample Kolmogorov-Smirnov test, with the KS distance as the effect, the Wasserstein
    distance (in the values' units) beside it, and Welch's interval for the difference of means."""
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    ref_mean, cur_mean = float(ref.mean()), float(cur.mean())
    wasserstein = float(stats.wasserstein_distance(ref, cur))
    if np.ptp(np.concatenate([ref, cur])) == 0:  # one value everywhere: nothing can differ
        return StatResult("Kolmogorov-Smirnov", 0.0, 1.0, "KS distance", 0.0, ref_mean, cur_mean,
                          ci_low=0.0, ci_high=0.0, extra=(("wasserstein", 0.0),))
    ks = stats.ks_2samp(cur, ref, method="asymp")
    low = high = None
    if len(ref) > 1 and len(cur) > 1 and (ref.var() > 0 or cur.var() > 0):
        interval = stats.ttest_ind(cur, ref, equal_var=False).confidence_interval(_CONFIDENCE)
        low, high = float(interval.low), float(interval.high)
    return StatResult("Kolmogorov-Smirnov", float(ks.statistic), float(ks.pvalue), "KS distance",
                      float(ks.statistic), ref_mean, cur_mean, ci_low=low, ci_high=high,
                      shift=float(ks.statistic), extra=(("wasserstein", wasserstein),))


def auc_test(reference_scores: np.ndarray, current_scores: np.ndarray) -> StatResult:
    """Held-out AUC of scores that should rank current rows above reference rows: the
    one-sided Mann-Whitney test (AUC = U / (n_ref n_cur)) and DeLong's 95% interval."""
    ref, cur = np.asarray(reference_scores, dtype=float), np.asarray(current_scores, dtype=float)
    result = stats.mannwhitneyu(cur, ref, alternative="greater", method="asymptotic")
    auc = float(result.statistic) / (len(ref) * len(cur))
    low, high = _delong_interval(ref, cur, auc)
    return StatResult("Mann-Whitney (held-out)", float(result.statistic), float(result.pvalue), "AUC", auc,
                      0.5, auc, ci_low=low, ci_high=high, shift=max(0.0, 2 * (auc - 0.5)))


def _delong_interval(ref: np.ndarray, cur: np.ndarray, auc: float) -> tuple[float, float]:
    """DeLong et al. (1988): the AUC's variance from its structural components, where each
    current row's component is the share of reference rows it outranks (ties count half)."""
    pooled = stats.rankdata(np.concatenate([cur, ref]))
    cur_ranks, ref_ranks = stats.rankdata(cur), stats.rankdata(ref)
    n_cur, n_ref = len(cur), len(ref)
    v_cur = (pooled[:n_cur] - cur_ranks) / n_ref  # share of reference rows below each current row
    v_ref = 1.0 - (pooled[n_cur:] - ref_ranks) / n_cur  # share of current rows above each reference row
    variance = v_cur.var(ddof=1) / n_cur + v_ref.var(ddof=1) / n_ref if min(n_cur, n_ref) > 1 else math.nan
    if not math.isfinite(variance):
        return math.nan, math.nan
    half = float(stats.norm.ppf(0.5 + _CONFIDENCE / 2)) * math.sqrt(variance)
    return max(0.0, auc - half), min(1.0, auc + half)


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where adjusted <= alpha and the family-wise
    false-alarm rate stays <= alpha under any dependence between the tests."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


# --- one window against fixed reference shares (the server's live gauge) -------------------

def population_stability_index(observed_counts: Sequence[float], expected_shares: Sequence[float]) -> float:
    """PSI of observed counts against expected shares (both floored at DRIFT_EPSILON); NaN
    without data. The two-sample :func:`psi` with the reference given as shares."""
    observed = np.asarray(observed_counts, dtype=float)
    expected = np.asarray(expected_shares, dtype=float)
    if observed.sum() <= 0 or observed.shape != expected.shape or expected.sum() <= 0:
        return math.nan
    return psi(expected / expected.sum() * observed.sum(), observed)


def chi2_goodness_of_fit(observed_counts: Sequence[float], expected_shares: Sequence[float]) -> tuple[float, float]:
    """Pearson's chi-squared statistic of the counts against the shares (floored at
    DRIFT_EPSILON) and its p-value on K - 1 degrees of freedom; NaNs without data."""
    observed = np.asarray(observed_counts, dtype=float)
    n, k = float(observed.sum()), len(observed)
    if n <= 0 or k < 2 or k != len(expected_shares):
        return math.nan, math.nan
    expected = n * _shares(np.asarray(expected_shares, dtype=float))
    result = stats.chisquare(observed, expected)
    return float(result.statistic), float(result.pvalue)


def chi2_sf(x: float, dof: float) -> float:
    """P(X > x) for X chi-squared with ``dof`` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"dof must be > 0; got {dof}.")
    return float(stats.chi2.sf(x, dof))
