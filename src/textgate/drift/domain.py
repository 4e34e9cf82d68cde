"""Embedding drift by a domain classifier: logistic regression on the model's frozen
embeddings learns to tell current rows from reference rows; its AUC on rows it never saw says
how separable the two windows are (0.5: not at all, 1: completely). This is the check the
monitoring tools document for unstructured data (e.g. Evidently's text drift).

Each side is split (seeded) into training and held-out rows; the classifier is fitted on the
training rows only, so under "no drift" the held-out scores of both sides come from one
distribution and the Mann-Whitney test of them is exact (`textgate.drift.stats.auc_test`).
Per slice, the same held-out scores are compared within the slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DOMAIN_C", "MIN_DOMAIN_ROWS", "DomainScores", "domain_scores"]

# Inverse L2 strength on standardized embeddings: hundreds of dimensions and a few thousand rows
# overfit without it. On the bundled tweets with 20% Sentiment140 mixed in, the held-out AUC was
# 0.564 at C = 0.005, 0.558 at 0.02, 0.555 at 0.05, 0.551 at 1 (8 trials each, 2,000 a side).
DOMAIN_C = 0.01
# Rows per side, in training and in the held-out part each, below which no classifier is fitted.
MIN_DOMAIN_ROWS = 10


@dataclass(frozen=True, eq=False)
class DomainScores:
    """Held-out rows of each side (indices into the window) and the classifier's scores on them."""

    reference_rows: np.ndarray
    reference_scores: np.ndarray
    current_rows: np.ndarray
    current_scores: np.ndarray
    train_rows: tuple[int, int]  # (reference, current) rows the classifier was fitted on


def domain_scores(reference: np.ndarray, current: np.ndarray, *, holdout: float, max_rows: int,
                  seed: int) -> DomainScores | None:
    """Fit on the training rows of both sides, score the held-out ones; None when a side has
    too few rows for both parts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng([seed, 14])
    parts = [_split(len(x), holdout=holdout, max_rows=max_rows, rng=rng) for x in (reference, current)]
    if any(min(len(train), len(test)) < MIN_DOMAIN_ROWS for train, test in parts):
        return None
    (ref_train, ref_test), (cur_train, cur_test) = parts
    x_train = np.vstack([reference[ref_train], current[cur_train]]).astype(np.float64)
    y_train = np.r_[np.zeros(len(ref_train)), np.ones(len(cur_train))]
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(C=DOMAIN_C, class_weight="balanced", max_iter=2000)
    # One BLAS thread: the products are small (rows x hundreds), and with several threads on a
    # busy machine the fit spent 10x longer waiting for them than computing (measured).
    with threadpool_limits(1):
        model.fit(scaler.transform(x_train), y_train)

    def score(x: np.ndarray) -> np.ndarray:
        return model.decision_function(scaler.transform(x.astype(np.float64)))

    return DomainScores(ref_test, score(reference[ref_test]), cur_test, score(current[cur_test]),
                        (len(ref_train), len(cur_train)))


def _split(n: int, *, holdout: float, max_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rows = rng.permutation(n)[:max_rows]
    cut = int(round(len(rows) * (1 - holdout)))
    return np.sort(rows[:cut]), np.sort(rows[cut:])
