"""Likely label errors: out-of-sample probabilities in, ranked findings out.

The core is pure and typed: :func:`audit_labels` takes the given labels (ids ``0..K-1``) and
out-of-sample probabilities ``(N, K)``, validates them once (:func:`validate_audit_inputs`)
and ranks the examples whose label looks wrong, by one of two methods:

- ``confident_learning`` (cleanlab): the calibrated confident joint ``C[given, likely]``
  (``cleanlab.count.compute_confident_joint``, the same matrix ``find_label_issues`` prunes
  with) estimates how many examples of each given label truly belong to each other class;
  its off-diagonal sum is the estimated number of label issues. ``find_label_issues`` with
  ``filter_by="prune_by_noise_rate"`` then picks that many examples, the least likely first,
  ranked by ``normalized_margin`` (default) or ``self_confidence``.
- ``loss``: the cross-entropy of the given label, ``-log p[given]``, highest first. How many
  to flag: ``top`` if given, else the count confident learning estimates, so both methods
  can be compared at the same size.

Every finding has a ``score`` where higher means more likely mislabeled: ``1 - quality``
(cleanlab's label-quality score of the ranking method) for confident learning, the loss in
nats for loss ranking. The suggested label is the most probable class other than the given one.

:func:`textgate.audit.kfold.kfold_probabilities` makes out-of-sample probabilities when no independent model exists:
seeded stratified k-fold logistic regression on frozen embeddings, so each example's
probabilities come from a head that never saw its label; :func:`validate_kfold_labels` checks
beforehand that every label has enough examples for the folds (the CLI runs it before embedding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from textgate._internal.labels import label_ids
from textgate._internal.validation import (
    ROW_SUM_TOLERANCE,
    check_class_id_values,
    check_probabilities,
)
from textgate.errors import ConfigError, DataError

__all__ = [
    "AUDIT_METHODS",
    "MIN_PROBABILITY",
    "RANKED_BY",
    "AuditResult",
    "Finding",
    "audit_labels",
    "label_ids",
    "validate_audit_inputs",
]

AUDIT_METHODS = ("confident_learning", "loss")
RANKED_BY = ("normalized_margin", "self_confidence")
# log(0) would make one example's loss infinite and the ranking among them arbitrary.
MIN_PROBABILITY = 1e-12

Method = Literal["confident_learning", "loss"]
RankedBy = Literal["normalized_margin", "self_confidence"]


@dataclass(frozen=True)
class Finding:
    """One likely label error. ``row`` is the 0-based position in the dataset."""

    rank: int  # 1 = most likely wrong
    row: int
    given_label: str
    suggested_label: str
    score: float  # higher = more likely mislabeled (see the module docstring)
    method: str
    given_probability: float
    suggested_probability: float


@dataclass(frozen=True, eq=False)
class AuditResult:
    """Findings of one method, plus confident learning's estimate of how many issues exist."""

    label_names: tuple[str, ...]
    method: str
    findings: tuple[Finding, ...]
    n_examples: int
    # (K, K) calibrated confident joint: rows given label, columns likely true label.
    confident_joint: np.ndarray | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def estimated_issues(self) -> int | None:
        """Off-diagonal sum of the confident joint: estimated mislabeled examples."""
        return None if self.confident_joint is None else _off_diagonal(self.confident_joint)

    def pairs(self) -> list[dict[str, Any]]:
        """Per (given, likely) label pair: confident learning's estimate and how many findings
        have that pair, largest estimate first; pairs with neither are left out."""
        flagged: dict[tuple[str, str], int] = {}
        for f in self.findings:
            flagged[(f.given_label, f.suggested_label)] = flagged.get((f.given_label, f.suggested_label), 0) + 1
        out = []
        for i, given in enumerate(self.label_names):
            for j, likely in enumerate(self.label_names):
                if i == j:
                    continue
                estimated = None if self.confident_joint is None else int(self.confident_joint[i, j])
                count = flagged.get((given, likely), 0)
                if count or estimated:
                    out.append({"given": given, "likely": likely, "estimated": estimated, "flagged": count})
        return sorted(out, key=lambda p: (-(p["estimated"] or 0), -p["flagged"], p["given"], p["likely"]))


def validate_audit_inputs(
    labels: np.ndarray | Sequence[int],
    probabilities: np.ndarray,
    *,
    label_names: Sequence[str] | None = None,
    require_every_class: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Check labels and probabilities once; return them as int64 ids and float64 rows that
    sum to exactly 1. Each failure names the argument, the rule, what was received and the fix."""
    probs = np.asarray(probabilities)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise DataError(f"probabilities must be a 2-D array (N examples x K >= 2 classes); got shape "
                        f"{probs.shape}. Pass one row of class probabilities per example.", field="probabilities")
    if not np.issubdtype(probs.dtype, np.number):
        raise DataError(f"probabilities must be numbers; got dtype {probs.dtype}.", field="probabilities")
    n, k = probs.shape
    if label_names is not None and len(label_names) != k:
        raise DataError(f"label_names has {len(label_names)} names but probabilities have {k} columns; "
                        "pass one name per probability column, in column order.", field="label_names")
    ids = np.asarray(labels)
    if ids.ndim != 1 or len(ids) != n:
        raise DataError(f"labels has {len(ids) if ids.ndim == 1 else ids.shape} entries but probabilities have "
                        f"{n} rows; both must describe the same examples in the same order (did the data "
                        "file change after the probabilities were computed?).", field="labels")
    if n == 0:
        raise DataError("labels and probabilities are empty; an audit needs at least one example.", field="labels")
    check_class_id_values(ids, k, columns="probabilities")
    probs = check_probabilities(probs, n, k)
    sums = probs.sum(axis=1)
    if require_every_class:
        counts = np.bincount(ids, minlength=k)
        missing = np.flatnonzero(counts == 0)
        if missing.size:
            names = [label_names[i] if label_names is not None else str(i) for i in missing]
            raise DataError(f"no example is labeled {', '.join(names)}: confident learning sets each class's "
                            "threshold to the mean probability of that class over the examples given it, which "
                            "is undefined for an absent class. Drop that class's probability column (and "
                            "renormalize), add examples of it, or use the loss method.", field="labels")
    return ids.astype(np.int64), probs / sums[:, None]


def audit_labels(
    labels: np.ndarray | Sequence[int],
    probabilities: np.ndarray,
    *,
    label_names: Sequence[str],
    method: Method = "confident_learning",
    ranked_by: RankedBy = "normalized_margin",
    top: int | None = None,
) -> AuditResult:
    """Rank likely label errors by ``method`` (see the module docstring).

    ``top``: how many findings to return at most (loss: exactly ``top``; default: confident
    learning's estimated count). ``label_names`` name the probability columns, in order.
    """
    if method not in AUDIT_METHODS:
        raise ConfigError(f"method must be one of {', '.join(AUDIT_METHODS)}; got {method!r}.", field="method")
    if ranked_by not in RANKED_BY:
        raise ConfigError(f"ranked_by must be one of {', '.join(RANKED_BY)}; got {ranked_by!r}.", field="ranked_by")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigError(f"top must be a positive number of findings; got {top!r}.", field="top")
    names = tuple(label_names)
    needs_joint = method == "confident_learning" or top is None
    ids, probs = validate_audit_inputs(labels, probabilities, label_names=names, require_every_class=needs_joint)
    # The estimate is reported whenever it is defined, also for loss ranking with a fixed top
    # (needs_joint: validation already required every class).
    every_class = needs_joint or np.bincount(ids, minlength=len(names)).min() > 0
    joint = _confident_joint(ids, probs) if every_class else None
    if method == "confident_learning":
        rows, scores = _confident_learning(ids, probs, joint, ranked_by)
    else:
        rows, scores = _loss_ranking(ids, probs, top if top is not None else _off_diagonal(joint))
    if top is not None:
        rows, scores = rows[:top], scores[:top]
    settings = {"method": method, "ranked_by": ranked_by if method == "confident_learning" else "loss",
                "top": top, "sum_tolerance": ROW_SUM_TOLERANCE,
                "estimate": "off-diagonal of cleanlab.count.compute_confident_joint (calibrated)",
                "cleanlab_version": _cleanlab_version()}
    return AuditResult(label_names=names, method=method, findings=_findings(rows, scores, ids, probs, names, method),
                       n_examples=len(ids), confident_joint=joint, settings=settings)


def _confident_joint(ids: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from cleanlab.count import compute_confident_joint

    return np.asarray(compute_confident_joint(ids, probs, calibrate=True), dtype=np.int64)


def _off_diagonal(joint: np.ndarray) -> int:
    return int(joint.sum() - np.trace(joint))


def _confident_learning(ids: np.ndarray, probs: np.ndarray, joint: np.ndarray,
                        ranked_by: str) -> tuple[np.ndarray, np.ndarray]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    # n_jobs=1: cleanlab's default forks one process per core, which costs more than it saves
    # at these sizes and fails in some sandboxes.
    rows = np.asarray(find_label_issues(ids, probs, filter_by="prune_by_noise_rate", confident_joint=joint,
                                        return_indices_ranked_by=ranked_by, n_jobs=1), dtype=np.int64)
    quality = get_label_quality_scores(ids, probs, method=ranked_by)
    return rows, 1.0 - quality[rows]


def _loss_ranking(ids: np.ndarray, probs: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    loss = -np.log(np.maximum(probs[np.arange(len(ids)), ids], MIN_PROBABILITY))
    order = np.argsort(-loss, kind="stable")[:count]
    return order, loss[order]


def _findings(rows: np.ndarray, scores: np.ndarray, ids: np.ndarray, probs: np.ndarray,
              names: tuple[str, ...], method: str) -> tuple[Finding, ...]:
    given, flagged = ids[rows], probs[rows]  # only the flagged rows: N may be large, findings few
    others = flagged.copy()
    others[np.arange(len(rows)), given] = -1.0
    suggested = others.argmax(axis=1)
    return tuple(
        Finding(rank=i + 1, row=int(row), given_label=names[given[i]], suggested_label=names[suggested[i]],
                score=float(score), method=method, given_probability=float(flagged[i, given[i]]),
                suggested_probability=float(flagged[i, suggested[i]]))
        for i, (row, score) in enumerate(zip(rows, scores))
    )


def _cleanlab_version() -> str:
    from importlib.metadata import version

    return version("cleanlab")


