"""The calibration file format: the TOML that `textgate calibrate` writes and a ModelSpec's
``calibration`` names (docs/calibration.md). Loading reads it here and checks that it was fitted
for this very model and label set; :mod:`textgate.calibrate` fits and writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from textgate._internal.toml import read_toml, validate_table
from textgate.errors import ConfigError

__all__ = ["CALIBRATION_FILE_VERSION", "CalibrationFile", "FittedOn", "HeldOutMetrics", "check_calibration_labels",
           "read_calibration_file"]

CALIBRATION_FILE_VERSION = 1
# The fix every error about a calibration file ends with.
_REFIT = "Re-run `textgate calibrate MODEL DATA --out FILE` and point the ModelSpec's calibration at FILE."


class HeldOutMetrics(BaseModel):
    """Held-out figures stored in a calibration file (for people reading it; not used to load)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    rows: int = Field(ge=1)


class FittedOn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    data_fingerprint: str
    rows: int = Field(ge=1, description="rows the saved temperature was fitted on")
    holdout: str


class CalibrationFile(BaseModel):
    """The TOML file `textgate calibrate` writes and a ModelSpec's ``calibration`` names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(ge=1, le=CALIBRATION_FILE_VERSION)
    method: Literal["temperature_scaling"]
    temperature: float = Field(gt=0, allow_inf_nan=False)
    model_fingerprint: str = Field(min_length=1)
    label_names: tuple[str, ...] = Field(min_length=1)
    textgate_version: str
    created: str
    fitted_on: FittedOn
    heldout: HeldOutMetrics


def read_calibration_file(path: Path | str, *, model_fingerprint: str | None = None,
                          label_names: Sequence[str] | None = None) -> CalibrationFile:
    """Read and check a calibration file; with ``model_fingerprint`` / ``label_names``, also that
    it was fitted for that model (the fingerprint of its ModelSpec without calibration)."""
    path = Path(path)
    raw = read_toml(path, what="Calibration file (ModelSpec field 'calibration')", field="calibration")
    try:
        record = validate_table(CalibrationFile, raw, origin=f"calibration file {path}")
    except ConfigError as exc:
        raise ConfigError(f"ModelSpec field 'calibration': {exc} {_REFIT}", field="calibration", path=path) from exc
    if model_fingerprint is not None and record.model_fingerprint != model_fingerprint:
        raise ConfigError(
            f"ModelSpec field 'calibration': {path} was fitted for model fingerprint "
            f"{record.model_fingerprint}, but this ModelSpec's model (without calibration) has fingerprint "
            f"{model_fingerprint}: its weights, adapter or an output-changing setting (dtype, max_length, "
            f"padding, label_map, ...) differ. {_REFIT}", field="calibration", path=path)
    if label_names is not None:
        check_calibration_labels(record, path, label_names)
    return record


def check_calibration_labels(record: CalibrationFile, path: Path | str, label_names: Sequence[str]) -> None:
    """ConfigError unless ``record`` (read from ``path``) was fitted for exactly ``label_names``."""
    if tuple(record.label_names) != tuple(label_names):
        raise ConfigError(
            f"ModelSpec field 'calibration': {path} was fitted for labels {list(record.label_names)}, but "
            f"the model outputs {list(label_names)}. {_REFIT}", field="calibration", path=path)
