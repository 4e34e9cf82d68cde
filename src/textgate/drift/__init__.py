"""Drift: is the current window of texts (and of a model's outputs on them) still like the
reference? Start at ``run.py``.

- ``run.py``: ``detect_drift`` (the checks, Holm's family-wise control, the verdict);
- ``window.py``: ``DriftWindow``, one side: texts, labels, Predictions, embeddings;
- ``sources.py``: a window from a data or Predictions file, a model run on it when given;
- ``stats.py``: the tests (scipy), PSI, Holm, and the live gauge's goodness-of-fit functions;
- ``descriptors.py``: the text descriptors (URL, @mention, hashtag, emoji, elongated words ...);
- ``domain.py``: the domain classifier on frozen embeddings;
- ``config.py``: the drift file (thresholds, settings, slices);
- ``report.py``, ``html.py``, ``cells.py``: report.json, report.md, the terminal tables, report.html
  and the cell formatting they share.
"""

from textgate.drift.config import (
    CHECK_IDS,
    DriftConfig,
    DriftSettings,
    DriftThresholds,
    load_drift_config,
)
from textgate.drift.run import DriftCheck, DriftReport, detect_drift
from textgate.drift.sources import read_window
from textgate.drift.window import (
    DriftWindow,
    window_from_dataset,
    window_from_predictions,
)

__all__ = [
    "CHECK_IDS",
    "DriftCheck",
    "DriftConfig",
    "DriftReport",
    "DriftSettings",
    "DriftThresholds",
    "DriftWindow",
    "detect_drift",
    "load_drift_config",
    "read_window",
    "window_from_dataset",
    "window_from_predictions",
]
