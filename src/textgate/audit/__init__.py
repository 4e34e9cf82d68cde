"""Likely label errors: out-of-sample probabilities in, ranked findings out (`textgate audit`).
Start at ``find.py``.

- ``find.py``: ``audit_labels`` (confident learning or loss ranking) and its records;
- ``kfold.py``: out-of-sample probabilities from a k-fold head on frozen embeddings;
- ``sources.py``: where the probabilities come from (a model, k-fold, a file, a .npy);
- ``export.py``: issues.csv/.jsonl, summary.json, review.html, argilla.jsonl;
- ``apply.py``: writing a dataset with a reviewer's corrections (`textgate audit apply`).
"""

from textgate.audit.find import (
    AUDIT_METHODS,
    RANKED_BY,
    AuditResult,
    Finding,
    audit_labels,
    label_ids,
    validate_audit_inputs,
)
from textgate.audit.kfold import (
    KFOLD_C_GRID,
    kfold_probabilities,
    validate_kfold_labels,
)

__all__ = [
    "AUDIT_METHODS",
    "KFOLD_C_GRID",
    "RANKED_BY",
    "AuditResult",
    "Finding",
    "audit_labels",
    "kfold_probabilities",
    "label_ids",
    "validate_audit_inputs",
    "validate_kfold_labels",
]
