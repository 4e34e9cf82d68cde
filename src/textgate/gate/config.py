"""The gate file: what to compare, on which data and slices, and what counts as a regression.

    length_buckets = [0, 16, 32, 64]      # optional slices by token count (top-level, first)

    [data]
    path = "val.jsonl"                    # relative to this file
    text_col = "text"
    label_col = "label"

    [[slice]]                             # any number; same keys as a slices file
    name = "slang"
    regex = '\\b(omg|lol)\\b'

    [baseline]
    spec = "model.toml"                   # a ModelSpec file (paths in it relative to it) ...
    [candidate]
    spec = "model.toml"
    dtype = "bfloat16"                    # ... with any ModelSpec keys on top (calibration,
    calibration = "calibration.toml"      # lock, ...: paths relative to this file), or
                                          # ModelSpec keys alone (model = ...), or
                                          # predictions = "candidate.parquet"
    [thresholds]
    max_accuracy_drop = 0.02              # fractions: 0.02 = 2 accuracy points

    [settings]
    bootstrap_resamples = 2000
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from textgate._internal.toml import read_toml, validate_table
from textgate.errors import ConfigError
from textgate.model import ModelSpec, load_model_spec, model_spec_from_table
from textgate.slices import SliceSpec, slices_from_toml

__all__ = [
    "DataConfig",
    "GateConfig",
    "GateSettings",
    "RENAMED_THRESHOLDS",
    "SIDES",
    "SideConfig",
    "SideName",
    "THRESHOLD_METRICS",
    "Thresholds",
    "load_gate_config",
]

_Fraction = Field(ge=0, le=1)
SideName = Literal["baseline", "candidate"]
SIDES: tuple[SideName, ...] = ("baseline", "candidate")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    path: str
    text_col: str = "text"
    label_col: str = "label"


class SideConfig(BaseModel):
    """One side of the comparison: ``predictions`` (a saved file), or a model: ``spec`` (a
    ModelSpec file) and/or ModelSpec keys inline, which override the file's. The inline keys are
    whatever ModelSpec has (model, dtype, calibration, lock, ...): ModelSpec itself validates
    them (:func:`load_gate_config`), so a new ModelSpec field works here with no copy."""

    model_config = ConfigDict(extra="allow", frozen=True)

    predictions: str | None = None
    spec: str | None = None

    @property
    def overrides(self) -> dict[str, Any]:
        """The inline ModelSpec keys, as written (relative paths relative to the gate file)."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _one_source(self) -> SideConfig:
        model_keys = [key for key in self.overrides if key in ModelSpec.model_fields]
        if self.predictions is not None and (self.spec or model_keys):
            raise ValueError("give either 'predictions' (a saved file) or a model ('spec' and/or 'model' "
                             "with ModelSpec keys), not both")
        if self.predictions is None and not (self.spec or "model" in model_keys):
            raise ValueError("needs 'spec' (a ModelSpec file), 'model' (folder, pkg: or Hub id) or "
                             "'predictions' (a saved predictions file)")
        return self


class Thresholds(_Strict):
    """What fails the gate. Drops and rates are fractions (0.02 = 2 points); ``false`` (None)
    turns a check off. THRESHOLD_METRICS names the registry metric each one limits."""

    max_accuracy_drop: float | None = Field(0.02, ge=0, le=1)
    max_slice_accuracy_drop: float | None = Field(0.05, ge=0, le=1)
    max_macro_f1_drop: float | None = Field(None, ge=0, le=1)
    max_recall_drop: float | None = Field(None, ge=0, le=1)
    max_ece_equal_width_increase: float | None = Field(0.02, ge=0, le=1)
    max_flip_rate: float | None = Field(None, ge=0, le=1)
    max_harmful_flip_rate: float | None = Field(None, ge=0, le=1)
    max_slice_flip_rate: float | None = Field(None, ge=0, le=1)
    max_invalid_label_rate: float | None = Field(0.0, ge=0, le=1)
    max_label_shift: float | None = Field(None, ge=0, le=1)
    # Candidate / baseline cost per text, timed in this run (textgate.latency).
    max_latency_increase: float | None = Field(0.25, ge=0, le=100)
    require_significance: bool = False
    alpha: float = Field(0.05, gt=0, lt=0.5)
    mode: Literal["threshold", "non-inferiority"] = "threshold"
    min_slice_size: int = Field(30, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """An old key is read as its new one, with a warning naming the new one."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in RENAMED_THRESHOLDS.items():
            if old in data:
                if new in data:
                    raise ValueError(f"'{old}' is the old name of '{new}'; give only '{new}'")
                warnings.warn(f"Threshold '{old}' is deprecated and will be removed: it is now '{new}' "
                              "(same meaning); rename it in the gate file.", FutureWarning, stacklevel=2)
                data[new] = data.pop(old)
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _false_turns_off(cls, value: Any, info: Any) -> Any:
        """TOML has no null: ``max_flip_rate = false`` turns that check off."""
        return None if value is False and info.field_name.startswith("max_") else value


# The metric (an id of textgate.evaluation.registry.METRICS) each threshold limits: a key
# ending in _drop or _increase bounds a move the wrong way (relative for latency), the others
# the candidate's level. The gate's checks read their metric from here.
THRESHOLD_METRICS: Mapping[str, str] = MappingProxyType({
    "max_accuracy_drop": "accuracy",
    "max_slice_accuracy_drop": "accuracy",
    "max_macro_f1_drop": "macro_f1",
    "max_recall_drop": "recall",
    "max_ece_equal_width_increase": "ece_equal_width",
    "max_flip_rate": "flip_rate",
    "max_harmful_flip_rate": "harmful_flip_rate",
    "max_slice_flip_rate": "flip_rate",
    "max_invalid_label_rate": "invalid_label_rate",
    "max_label_shift": "label_shift",
    "max_latency_increase": "latency_per_text_ms",
})
# Old threshold key -> its key now; the old one is still read, with a FutureWarning.
RENAMED_THRESHOLDS: Mapping[str, str] = MappingProxyType({
    "max_ece_increase": "max_ece_equal_width_increase",  # the metric's id is ece_equal_width
    "max_p99_latency_increase": "max_latency_increase",  # it was never a p99: cost per text
})


class GateSettings(_Strict):
    bootstrap_resamples: int = Field(2000, ge=100, le=100_000)
    seed: int = 0
    token_budget: int = Field(4096, ge=1)
    example_flips: int = Field(10, ge=0, le=100)
    # The latency check's timing sample: texts drawn from the data (seeded), timed rounds after
    # one discarded warm-up round (benchmarks/gate_calibration.py measured these defaults).
    latency_texts: int = Field(128, ge=1, le=100_000)
    latency_rounds: int = Field(5, ge=2, le=100)


class GateConfig(_Strict):
    data: DataConfig
    baseline: SideConfig
    candidate: SideConfig
    thresholds: Thresholds = Thresholds()
    settings: GateSettings = GateSettings()
    path: Path = Path("gate.toml")
    slices: tuple[SliceSpec, ...] = ()
    # Each model side's ModelSpec, built by load_gate_config (not a key of the file).
    model_specs: dict[SideName, ModelSpec] = {}

    def resolve(self, relative: str) -> Path:
        """A path from the file, relative to the file's folder."""
        return (self.path.parent / relative) if not Path(relative).is_absolute() else Path(relative)

    def model_spec(self, side: SideName) -> ModelSpec:
        """The side's ModelSpec (resolved once by :func:`load_gate_config`)."""
        if side not in self.model_specs:
            raise ConfigError(f"Field '{side}' in {self.path}: this side is a predictions file, not a model.",
                              field=side, path=self.path)
        return self.model_specs[side]

    def settings_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), **self.thresholds.model_dump(), **self.settings.model_dump()}


_TOP_LEVEL = ("data", "baseline", "candidate", "thresholds", "settings", "slice", "length_buckets")


def load_gate_config(path: Path | str) -> GateConfig:
    path = Path(path)
    doc = read_toml(path, what="Gate file", field="GATE_FILE")
    if unknown := [key for key in doc if key not in _TOP_LEVEL]:
        raise ConfigError(f"Unknown key '{unknown[0]}' in {path}; allowed top-level keys and tables: "
                          f"{', '.join(_TOP_LEVEL)}.", field=unknown[0], path=path)
    slices = slices_from_toml(doc, path=path)
    tables = {k: v for k, v in doc.items() if k not in ("slice", "length_buckets")}
    config = validate_table(GateConfig, {**tables, "path": path, "slices": slices}, origin=path)
    for side in SIDES:
        if unknown := [key for key in getattr(config, side).overrides if key not in ModelSpec.model_fields]:
            raise ConfigError(f"Field '{side}.{unknown[0]}' in {path}: unknown key. Allowed keys: predictions, "
                              f"spec, or the ModelSpec keys {', '.join(ModelSpec.model_fields)}.",
                              field=f"{side}.{unknown[0]}", path=path)
    specs = {side: _model_spec(config, side) for side in SIDES if getattr(config, side).predictions is None}
    config = config.model_copy(update={"model_specs": specs})
    _check_files(config)
    return config


def _model_spec(config: GateConfig, side: SideName) -> ModelSpec:
    """The side's spec file (its paths relative to it) with the inline keys on top (theirs
    relative to the gate file), validated by ModelSpec: a bad key names ``side.key``."""
    table: SideConfig = getattr(config, side)
    base = None
    if table.spec is not None:
        spec_path = config.resolve(table.spec)
        if not spec_path.is_file():
            raise ConfigError(f"Field '{side}.spec' in {config.path}: ModelSpec file {spec_path} does not "
                              "exist.", field=f"{side}.spec", path=config.path)
        base = load_model_spec(spec_path)
    return model_spec_from_table(table.overrides, base=config.path.parent, origin=config.path, prefix=side,
                                 defaults=base)


def _check_files(config: GateConfig) -> None:
    data_path = config.resolve(config.data.path)
    if not data_path.exists():
        raise ConfigError(f"Field 'data.path' in {config.path}: {data_path} does not exist.",
                          field="data.path", path=config.path)
    for side in SIDES:
        saved = getattr(config, side).predictions
        if saved is not None and not config.resolve(saved).is_file():
            raise ConfigError(f"Field '{side}.predictions' in {config.path}: {config.resolve(saved)} does "
                              "not exist. Write it with 'textgate predict --out'.",
                              field=f"{side}.predictions", path=config.path)
