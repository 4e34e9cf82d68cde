"""Comparing two models' speed from timings measured in one run (pure numpy; no models).

The gate times both sides on the same texts (``timing_windows``: runs of neighbours in length
from every stratum of the data), interleaved batch by batch, over several
rounds after a discarded warm-up round (``textgate.infer.time_interleaved``). Each side gives a
``BatchTimings``: wall seconds of its forward passes, one row per round, one column per batch.

Estimator. A side's cost per text is ``sum over batches of (median over rounds of that batch's
seconds) / texts``: the median drops a round that a slow spell of the machine hit, the sum weighs
long and short batches by what they really cost. The change is ``candidate / baseline - 1``.
Its interval is a percentile bootstrap that resamples batches (the same batch positions for both
sides when their batch plans have the same shape, since then position b holds the same texts)
and rounds (the same rounds for both sides: their batches alternated within a round, so a round
is one stretch of the machine's time). Tokenization is not timed: it runs once, up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TIMING_WINDOW", "BatchTimings", "LatencyComparison", "compare_latency", "timing_windows"]

# Texts per timing window: one batch of neighbours in length, as in a full run's sorted batches.
TIMING_WINDOW = 16


@dataclass(frozen=True, eq=False)
class BatchTimings:
    seconds: np.ndarray  # (rounds, batches) wall seconds of each batch's forward pass
    sizes: np.ndarray  # (batches,) texts per batch

    def __post_init__(self) -> None:
        if self.seconds.ndim != 2 or self.seconds.shape[1] != len(self.sizes) or self.seconds.shape[0] < 1:
            raise ValueError(f"BatchTimings needs seconds of shape (rounds >= 1, {len(self.sizes)} batches); "
                             f"got {self.seconds.shape}.")

    @property
    def texts(self) -> int:
        return int(self.sizes.sum())

    def ms_per_text(self) -> float:
        return 1000 * float(np.median(self.seconds, axis=0).sum()) / max(self.texts, 1)

    def round_ms_per_text(self) -> list[float]:
        """Each round's per-text cost, for plots and for seeing the spread by eye."""
        return [round(1000 * float(s) / max(self.texts, 1), 4) for s in self.seconds.sum(axis=1)]


@dataclass(frozen=True)
class LatencyComparison:
    baseline_ms_per_text: float
    candidate_ms_per_text: float
    increase: float  # candidate / baseline - 1
    ci_low: float
    ci_high: float
    confidence: float
    texts: int
    rounds: int
    baseline_batches: int
    candidate_batches: int
    paired_batches: bool
    baseline_round_ms: tuple[float, ...]  # each timed round's cost per text
    candidate_round_ms: tuple[float, ...]
    baseline_batch_ms: tuple[float, ...]  # every timed batch, round by round
    candidate_batch_ms: tuple[float, ...]
    estimator: str = ("sum of per-batch medians over rounds / texts; percentile bootstrap over batches "
                      "and rounds")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def compare_latency(baseline: BatchTimings, candidate: BatchTimings, *, n_resamples: int = 2000,
                    seed: int = 0, confidence: float = 0.95) -> LatencyComparison:
    """Relative per-text cost of ``candidate`` over ``baseline`` with a bootstrap interval."""
    if baseline.texts != candidate.texts or baseline.texts == 0:
        raise ValueError(f"Both sides must be timed on the same, non-empty texts; got {baseline.texts} and "
                         f"{candidate.texts} texts.")
    base_ms, cand_ms = baseline.ms_per_text(), candidate.ms_per_text()
    paired = baseline.seconds.shape[1] == candidate.seconds.shape[1] and np.array_equal(baseline.sizes,
                                                                                         candidate.sizes)
    rng = np.random.default_rng(seed)
    base_batches = rng.integers(0, baseline.seconds.shape[1], size=(n_resamples, baseline.seconds.shape[1]))
    cand_batches = base_batches if paired else rng.integers(
        0, candidate.seconds.shape[1], size=(n_resamples, candidate.seconds.shape[1]))
    rounds = min(baseline.seconds.shape[0], candidate.seconds.shape[0])
    round_picks = rng.integers(0, rounds, size=(n_resamples, rounds))
    ratios = _resampled_cost(candidate, cand_batches, round_picks) / _resampled_cost(baseline, base_batches, round_picks)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(ratios - 1, [tail, 100 - tail])
    return LatencyComparison(
        baseline_ms_per_text=base_ms, candidate_ms_per_text=cand_ms,
        increase=cand_ms / base_ms - 1 if base_ms > 0 else 0.0, ci_low=float(low), ci_high=float(high),
        confidence=confidence, texts=baseline.texts, rounds=rounds,
        baseline_batches=baseline.seconds.shape[1], candidate_batches=candidate.seconds.shape[1],
        paired_batches=paired, baseline_round_ms=tuple(baseline.round_ms_per_text()),
        candidate_round_ms=tuple(candidate.round_ms_per_text()),
        baseline_batch_ms=tuple(round(1000 * float(v), 3) for v in baseline.seconds.ravel()),
        candidate_batch_ms=tuple(round(1000 * float(v), 3) for v in candidate.seconds.ravel()),
    )


def timing_windows(token_counts: np.ndarray, n_texts: int, *, window: int = TIMING_WINDOW,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows to time and their window ids: the rows sorted by length, cut into ``n_texts // window``
    equal strata, and a seeded run of ``window`` neighbouring rows picked in each stratum.

    Timing a plain random sample would batch a few texts of very different lengths together and
    pad them far more than a full run does (its sorted batches hold neighbours in length), which
    hides exactly what padding settings change. Each window is batched on its own, so its padding
    is a full run's, and the strata cover short and long texts alike."""
    n = len(token_counts)
    order = np.argsort(token_counts, kind="stable")
    if n <= n_texts:
        windows = max(1, n // max(window, 1))
        return order, np.minimum(np.arange(n) * windows // max(n, 1), windows - 1)
    windows = max(1, n_texts // window)
    rng = np.random.default_rng(seed)
    bounds = np.linspace(0, n, windows + 1).astype(int)
    rows, groups = [], []
    for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        size = min(window, hi - lo)
        start = int(rng.integers(lo, hi - size + 1))
        rows.append(order[start:start + size])
        groups.append(np.full(size, g))
    return np.concatenate(rows), np.concatenate(groups)


def _resampled_cost(timings: BatchTimings, batches: np.ndarray, round_picks: np.ndarray) -> np.ndarray:
    """Per-text cost of each bootstrap draw: ``batches`` (draws, B) picks batches, ``round_picks``
    (draws, R) picks rounds, the same for both sides: round r of both sides ran in the same
    stretch of time, so a slow spell stays paired. Sizes follow the drawn batches."""
    drawn = timings.seconds[round_picks[:, None, :], batches[:, :, None]]  # (draws, B, R)
    seconds = np.median(drawn, axis=-1).sum(axis=1)
    return seconds / timings.sizes[batches].sum(axis=1)
