"""Calibration (`textgate calibrate`): temperature scaling fitted and measured on held-out
data, Monte Carlo dropout, the calibration file, reliability diagrams. Start at ``heldout.py``.

- ``temperature.py``: fit and apply one temperature T (from probabilities or logits);
- ``heldout.py``: ``calibrate_temperature`` (split, k-fold or a separate set) with paired
  bootstrap intervals of every metric before and after;
- ``mc_dropout.py``: dropout at inference, the mean of N passes, and what it costs;
- ``plan.py``: what `textgate calibrate` decides before it runs (held-out method, MC dropout
  passes, which predictions and specs qualify);
- ``file.py``: writing the calibration file (its format: :mod:`textgate.model.calibration_file`);
- ``report.py``: report.json, report.md, report.html and the terminal tables.
"""

from textgate.calibrate.file import write_calibration_file
from textgate.calibrate.heldout import (
    DEFAULT_FIT_FRACTION,
    DEFAULT_RESAMPLES,
    REPORTED_METRICS,
    CalibrationResult,
    MetricChange,
    calibrate_temperature,
    paired_calibration_changes,
)
from textgate.calibrate.mc_dropout import (
    DEFAULT_MC_PASSES,
    McDropoutPoint,
    McDropoutRun,
    mc_dropout_curve,
    mc_dropout_metrics,
    mc_dropout_mode,
)
from textgate.calibrate.plan import (
    CalibrationPlan,
    check_uncalibrated_predictions,
    heldout_examples,
    parse_pass_counts,
    plan_calibration,
    uncalibrated_spec,
)
from textgate.calibrate.temperature import (
    TemperatureFit,
    apply_temperature,
    fit_temperature,
    logits_from_probabilities,
)
from textgate.model.calibration_file import (
    CALIBRATION_FILE_VERSION,
    CalibrationFile,
    check_calibration_labels,
    read_calibration_file,
)

__all__ = [
    "CALIBRATION_FILE_VERSION",
    "DEFAULT_FIT_FRACTION",
    "DEFAULT_MC_PASSES",
    "DEFAULT_RESAMPLES",
    "REPORTED_METRICS",
    "CalibrationFile",
    "CalibrationPlan",
    "CalibrationResult",
    "McDropoutPoint",
    "McDropoutRun",
    "MetricChange",
    "TemperatureFit",
    "apply_temperature",
    "calibrate_temperature",
    "check_calibration_labels",
    "check_uncalibrated_predictions",
    "fit_temperature",
    "heldout_examples",
    "logits_from_probabilities",
    "mc_dropout_curve",
    "mc_dropout_metrics",
    "mc_dropout_mode",
    "paired_calibration_changes",
    "parse_pass_counts",
    "plan_calibration",
    "read_calibration_file",
    "uncalibrated_spec",
    "write_calibration_file",
]
