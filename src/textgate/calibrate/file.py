"""Writing the calibration file a ModelSpec's ``calibration`` names; its format (and reading it
at load time) is :mod:`textgate.model.calibration_file`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgate._internal.toml import dump_toml
from textgate._internal.versions import library_versions
from textgate.calibrate.heldout import CalibrationResult
from textgate.model.calibration_file import (
    CALIBRATION_FILE_VERSION,
    CalibrationFile,
    FittedOn,
    HeldOutMetrics,
)
from textgate.outputs import write_text_atomic

__all__ = ["write_calibration_file"]


def write_calibration_file(path: Path | str, result: CalibrationResult, *, model_fingerprint: str,
                           label_names: Sequence[str], data_path: str, data_fingerprint: str) -> Path:
    """Write the TOML file a ModelSpec's ``calibration`` field names (see docs/calibration.md)."""
    path = Path(path)
    heldout: dict[str, Any] = {"rows": result.n_eval}
    for change in result.metrics:
        heldout[f"{change.name}_before"] = change.before
        heldout[f"{change.name}_after"] = change.after
    record = CalibrationFile(
        schema_version=CALIBRATION_FILE_VERSION, method="temperature_scaling", temperature=result.temperature,
        model_fingerprint=model_fingerprint, label_names=tuple(label_names),
        textgate_version=library_versions()["textgate"],  # "not installed" outside a package install
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        fitted_on=FittedOn(path=data_path, data_fingerprint=data_fingerprint, rows=result.n_fit,
                           holdout=result.holdout_description),
        heldout=HeldOutMetrics(**heldout),
    )
    header = ("# Written by `textgate calibrate`. Reference it from a ModelSpec:\n"
              f'#   calibration = "{path.name}"   (relative to the ModelSpec file)\n'
              "# predict, eval, gate and serve then divide the logits by `temperature` before the softmax.\n")
    body = dump_toml(record.model_dump(), section_comments={
        "heldout": f"held-out metrics ({result.holdout}), before -> after; for reading only"})
    return write_text_atomic(path, header + body)
