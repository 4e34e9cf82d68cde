"""Out-of-sample probabilities by k-fold on frozen embeddings, for an audit when no independent
model exists: seeded stratified k-fold logistic regression, so each example's probabilities
come from a head that never saw its label; :func:`validate_kfold_labels` checks beforehand that
every label has enough examples for the folds (the CLI runs it before embedding)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from textgate.audit.find import MIN_PROBABILITY
from textgate.errors import ConfigError, DataError

__all__ = ["KFOLD_C_GRID", "kfold_probabilities", "validate_kfold_labels"]

# Enough iterations for L2-regularized logistic regression on standardized embeddings.
_MAX_ITER = 2000
# Inverse L2 strengths the k-fold head tries; the one with the lowest out-of-fold NLL on the
# given labels wins. Strong regularization, because the head must not memorize the noisy labels
# it audits: on the demo's embeddings of TweetEval test with 10% planted noise, out-of-fold NLL
# is 0.804 at C=0.01 and 0.791 at C=0.001 (BENCHMARKS.md, label audit quality).
KFOLD_C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)


def kfold_probabilities(
    embeddings: np.ndarray,
    labels: np.ndarray | Sequence[int],
    *,
    n_classes: int,
    folds: int = 5,
    seed: int = 0,
    C: float | None = None,  # scikit-learn's name for it
    say: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Out-of-sample probabilities ``(N, n_classes)`` by seeded stratified k-fold: for each
    fold, standardize + L2 logistic regression fitted on the other folds, then predict the fold.

    ``C``: the head's inverse L2 strength; None tries each of :data:`KFOLD_C_GRID` on the same
    folds and keeps the one whose out-of-fold probabilities have the lowest NLL on the given
    labels (no planted truth needed, so a user's run picks it the same way). Returns the
    probabilities and the settings used (for the summary). ``say`` receives a progress line
    per candidate C.
    """
    from sklearn.model_selection import StratifiedKFold

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise DataError(f"embeddings must be (N, D) with one row per label; got shape {x.shape} for "
                        f"{len(y)} labels.", field="embeddings")
    validate_kfold_labels(y, n_classes=n_classes, folds=folds)
    if C is not None and (isinstance(C, bool) or not isinstance(C, numbers.Real) or not np.isfinite(C) or C <= 0):
        raise ConfigError(f"C (--kfold-c) must be a positive number; got {C!r}. Leave it out to pick C by "
                          "out-of-fold NLL.", field="C")
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y))
    runs: dict[float, tuple[np.ndarray, int, float]] = {}
    for strength in KFOLD_C_GRID if C is None else (float(C),):
        out, not_converged = _fit_folds(x, y, splits, n_classes, strength)
        nll = float(-np.log(np.maximum(out[np.arange(len(y)), y], MIN_PROBABILITY)).mean())
        runs[strength] = (out, not_converged, nll)
        if say is not None:
            say(f"k-fold: C={strength:g}: {folds} folds, out-of-fold NLL {nll:.4f}")
    best = min(runs, key=lambda strength: runs[strength][2])
    out, not_converged, _ = runs[best]
    settings = {"folds": folds, "seed": seed, "C": best,
                "C_chosen_by": "lowest out-of-fold NLL on the given labels" if C is None else "given",
                "out_of_fold_nll": {f"{strength:g}": round(run[2], 6) for strength, run in runs.items()},
                "head": f"StandardScaler + LogisticRegression(L2, C={best:g}, lbfgs, max_iter={_MAX_ITER})",
                "splitter": "StratifiedKFold(shuffle=True)", "folds_not_converged": not_converged}
    return out, settings


def validate_kfold_labels(labels: np.ndarray | Sequence[int], *, n_classes: int, folds: int) -> None:
    """Check that stratified ``folds``-fold can split ``labels`` (ids): at least two labels, each
    present one with at least ``folds`` examples. Cheap, so callers run it before embedding."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2; got {folds!r}.", field="folds")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise DataError("k-fold needs examples of at least two labels; all examples have the same label.",
                        field="labels")
    if counts[present].min() < folds:
        small = int(present[counts[present].argmin()])
        raise DataError(f"stratified {folds}-fold needs at least {folds} examples of every label present; "
                        f"label id {small} has {counts[small]}. Use fewer folds (--folds) or add examples.",
                        field="folds")


def _fit_folds(x: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
               strength: float) -> tuple[np.ndarray, int]:
    """Out-of-fold probabilities of the head with inverse L2 strength ``strength``, and how
    many folds' fits did not converge."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    out = np.zeros((len(y), n_classes))
    not_converged = 0
    for train, test in splits:
        head = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=_MAX_ITER))
        # One BLAS thread: these matrices are small, and multi-threaded OpenBLAS spin-waits when
        # the cores are busy (measured 50x slower on a loaded 2-core machine).
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
            warnings.simplefilter("always", ConvergenceWarning)
            head.fit(x[train], y[train])
        not_converged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        # A fold's training part may lack a rare class: its column stays 0 for that fold.
        out[np.ix_(test, head.classes_)] = head.predict_proba(x[test])
    return out, not_converged
