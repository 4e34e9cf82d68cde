"""The drift file: what counts as drift, and how the checks run. Every key is optional.

    length_buckets = [0, 16, 32]          # optional slices, as in a slices file (top-level, first)

    [[slice]]                             # any number; same keys as a slices file
    name = "slang"
    regex = '\\b(omg|lol)\\b'

    [thresholds]
    alpha = 0.05                          # family-wise false-alarm rate of the whole report (Holm)
    min_psi = 0.01                        # label distributions: PSI at least this ...
    min_ks = 0.05                         # confidence and lengths: KS distance at least this
    min_rate_change = 0.01                # rates: |current - reference| at least 1 point
    min_domain_auc = 0.55                 # embeddings: held-out AUC of the domain classifier
    min_slice_size = 30                   # rows per side below which a slice's checks are skipped

    [settings]
    skip = ["emoji"]                      # check ids not to run (see CHECK_IDS)
    seed = 0
    domain_holdout = 0.5                  # share of rows the domain classifier is tested on
    domain_max_rows = 5000                # rows per side it uses at most (a seeded sample)
    confidence_bins = 20                  # histogram bins in the reports (not in any test)

A check drifts when its Holm-adjusted p-value is <= alpha *and* its effect reaches the minimum:
the p-value guards against noise (small windows), the minimum against trivia (large ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from textgate._internal.toml import read_toml, validate_table
from textgate.slices import SliceSpec, slices_from_toml

__all__ = ["CHECK_IDS", "DriftConfig", "DriftSettings", "DriftThresholds", "load_drift_config"]

# Every check, by the id the report and `settings.skip` use, with its name in words.
CHECK_IDS = {
    "predicted_labels": "predicted labels",
    "true_labels": "true labels",
    "confidence": "confidence",
    "truncation": "truncation rate",
    "length": "length",
    "characters": "characters per text",
    "url": "URL rate",
    "mention": "@mention rate",
    "hashtag": "hashtag rate",
    "emoji": "emoji rate",
    "elongated": "elongated-word rate",
    "non_ascii": "non-ASCII rate",
    "empty": "empty-text rate",
    "unknown_tokens": "unknown-token rate",
    "embedding": "embedding drift",
    "slice_share": "slice share",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftThresholds(_Strict):
    """When a check counts as drift (module docstring); ``false`` turns a minimum off (0)."""

    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_psi: float = Field(0.01, ge=0)
    min_ks: float = Field(0.05, ge=0, le=1)
    min_rate_change: float = Field(0.01, ge=0, le=1)
    min_domain_auc: float = Field(0.55, ge=0.5, le=1)
    min_slice_size: StrictInt = Field(30, ge=2)

    @field_validator("min_psi", "min_ks", "min_rate_change", mode="before")
    @classmethod
    def _false_turns_off(cls, value: Any) -> Any:
        return 0.0 if value is False else value


class DriftSettings(_Strict):
    skip: tuple[str, ...] = ()
    seed: StrictInt = Field(0, ge=0)
    domain_holdout: float = Field(0.5, gt=0.05, lt=0.95)
    domain_max_rows: StrictInt = Field(5000, ge=50, le=1_000_000)
    confidence_bins: StrictInt = Field(20, ge=2, le=200)

    @field_validator("skip")
    @classmethod
    def _known_checks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in value if v not in CHECK_IDS]
        if unknown:
            raise ValueError(f"unknown check id {unknown[0]!r}; the checks are {', '.join(CHECK_IDS)}")
        return value


class DriftConfig(_Strict):
    thresholds: DriftThresholds = DriftThresholds()
    settings: DriftSettings = DriftSettings()
    slices: tuple[SliceSpec, ...] = ()
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": None if self.path is None else str(self.path),
                "thresholds": self.thresholds.model_dump(),
                "settings": {**self.settings.model_dump(), "skip": list(self.settings.skip)},
                "slices": [spec.name for spec in self.slices]}


class _DriftFile(_Strict):
    """The file as written: these top-level keys and tables only."""

    thresholds: DriftThresholds = DriftThresholds()
    settings: DriftSettings = DriftSettings()
    slice: list[Any] = []  # read by textgate.slices.slices_from_toml
    length_buckets: Any = None


def load_drift_config(path: Path | str) -> DriftConfig:
    """A drift file (module docstring); ConfigError naming the field for anything wrong."""
    path = Path(path)
    doc = read_toml(path, what="Drift file", field="--config")
    parsed = validate_table(_DriftFile, doc, origin=path)
    return DriftConfig(thresholds=parsed.thresholds, settings=parsed.settings,
                       slices=slices_from_toml(doc, path=path), path=path)
