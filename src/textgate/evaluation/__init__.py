"""Evaluation: one model's predictions against labeled data (`textgate eval`). Start at ``run.py``.

- ``run.py``: ``evaluate(dataset, predictions)`` -> ``EvalReport``;
- ``metrics.py``: the pure metric functions (equal to scikit-learn), which the gate and
  calibration measure with too;
- ``registry.py``: one entry per metric id (label, unit, direction, scope), which every report
  and the gate's checks and thresholds read;
- ``report.py``: report.json, report.md and the terminal tables.
"""

from textgate.evaluation.run import (
    EVAL_REPORT_SCHEMA_VERSION,
    EvalReport,
    accuracy_ci95,
    check_alignment,
    evaluate,
    truncated_note,
)

__all__ = ["EVAL_REPORT_SCHEMA_VERSION", "EvalReport", "accuracy_ci95", "check_alignment", "evaluate", "truncated_note"]
