"""`evaluate`: a labeled Dataset + its Predictions -> an EvalReport (pure; no model needed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from textgate.data import Dataset
from textgate.errors import DataError
from textgate.evaluation.metrics import (
    CalibrationMetrics,
    ClassificationMetrics,
    LatencyMetrics,
    SliceMetrics,
    calibration_metrics,
    classification_metrics,
    latency_metrics,
    slice_metrics,
    wilson_interval,
)
from textgate.hardware import settings_notes
from textgate.predictions import Predictions, texts_fingerprint
from textgate.slices import SliceSpec, slice_masks

__all__ = ["EVAL_REPORT_SCHEMA_VERSION", "EvalReport", "accuracy_ci95", "check_alignment", "evaluate",
           "truncated_note"]

# Version of report.json; bump on any incompatible change and keep readers of older ones.
EVAL_REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True, eq=False)
class EvalReport:
    """Everything `textgate eval` measured, with the inputs and settings that produced it."""

    data: dict[str, Any]
    predictions: dict[str, Any]
    classification: ClassificationMetrics
    calibration: CalibrationMetrics | None
    latency: LatencyMetrics | None
    slices: tuple[SliceMetrics, ...]
    slice_definitions: tuple[SliceSpec, ...]
    length_unit: str
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": EVAL_REPORT_SCHEMA_VERSION,
            "kind": "textgate.eval",
            "created": self.created,
            "data": self.data,
            "predictions": self.predictions,
            "metrics": self.classification.to_dict(),
            "accuracy_ci95": list(accuracy_ci95(self.classification)),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "latency": None if self.latency is None else self.latency.to_dict(),
            "slices": [
                {**s.to_dict(), "definition": _slice_definition(spec),
                 "accuracy_ci95": None if s.metrics is None else list(accuracy_ci95(s.metrics))}
                for s, spec in zip(self.slices, self.slice_definitions, strict=True)
            ],
            "slice_length_unit": self.length_unit,
            "notes": list(self.notes),
        }


def evaluate(dataset: Dataset, predictions: Predictions, *, slices: Sequence[SliceSpec] = ()) -> EvalReport:
    """Measure ``predictions`` against the labels of ``dataset`` (same rows, same order)."""
    _require_labels(dataset)
    check_alignment(dataset, predictions)
    y_true, y_pred = dataset.labels, predictions.predicted
    names = dataset.label_names
    notes = []
    masks = slice_masks(slices, texts=dataset.texts, columns=dataset.columns,
                        token_counts=predictions.token_counts)
    calibration = None
    if predictions.probabilities is None:
        notes.append("Calibration not measured: the predictions carry no probabilities.")
    elif tuple(predictions.label_names) != tuple(names):
        notes.append("Calibration not measured: the predictions' label order differs from the data's.")
    else:
        calibration = calibration_metrics(y_true, predictions.probabilities, label_names=names)
    latency = None
    if len(predictions.batch_sizes):
        latency = latency_metrics(predictions.batch_seconds, predictions.batch_sizes)
    else:
        notes.append("Latency not measured: the predictions carry no timings (made outside textgate).")
    notes.extend(settings_notes(predictions.settings))
    if dataset.empty_text_rows:
        notes.append(f"{len(dataset.empty_text_rows)} examples have no visible text (empty, whitespace, "
                     "zero-width or control characters only); they were evaluated like any other.")
    truncated = truncated_note(predictions)
    if truncated:
        notes.append(truncated)
    return EvalReport(
        data=_data_summary(dataset),
        predictions=_predictions_summary(predictions),
        classification=classification_metrics(y_true, y_pred, label_names=names),
        calibration=calibration,
        latency=latency,
        slices=slice_metrics(y_true, y_pred, masks.masks, label_names=names),
        slice_definitions=tuple(slices),
        length_unit=masks.length_unit,
        notes=tuple(notes),
    )


def _require_labels(dataset: Dataset) -> None:
    if dataset.labels is None:
        raise DataError(f"{dataset.path} has no labels (column '{dataset.label_col}'); evaluation "
                        "needs them. Pass --label-col with the column that holds the gold labels.",
                        field="label_col", path=dataset.path)


def accuracy_ci95(metrics: ClassificationMetrics) -> tuple[float, float]:
    """95% Wilson interval of an accuracy: how far a slice's number could move by chance."""
    return wilson_interval(round(metrics.accuracy * metrics.n), metrics.n)


def check_alignment(dataset: Dataset, predictions: Predictions, *, what: str = "predictions") -> None:
    """Predictions must be for the dataset's rows: same count, and (when recorded) same texts.
    ``what`` names them in the message, e.g. "baseline predictions"."""
    if len(predictions) != len(dataset):
        raise DataError(f"The {what} have {len(predictions)} rows but {dataset.path} has "
                        f"{len(dataset)}; predict on the same file (rows are matched by position).",
                        field="predictions", path=dataset.path)
    if predictions.data_fingerprint and predictions.data_fingerprint != texts_fingerprint(dataset.texts):
        raise DataError(f"The {what} were made on other texts than those in {dataset.path} "
                        "(data fingerprints differ). Predict again on this file, or evaluate on the "
                        "file the predictions were made from.", field="predictions", path=dataset.path)


def _data_summary(dataset: Dataset) -> dict[str, Any]:
    return {
        "path": str(dataset.path),
        "rows": len(dataset),
        "text_col": dataset.text_col,
        "label_col": dataset.label_col,
        "label_names": list(dataset.label_names),
        "fingerprint": dataset.fingerprint,
        "texts_fingerprint": texts_fingerprint(dataset.texts),
        "empty_text_rows": list(dataset.empty_text_rows),
    }


def _predictions_summary(predictions: Predictions) -> dict[str, Any]:
    return {
        "label_names": list(predictions.label_names),
        "has_probabilities": predictions.probabilities is not None,
        "model_fingerprint": predictions.model_fingerprint,
        "data_fingerprint": predictions.data_fingerprint,
        "settings": predictions.settings,
        "truncated": None if predictions.truncated is None else int(predictions.truncated.sum()),
    }


def truncated_note(predictions: Predictions) -> str | None:
    """One line on how many texts were cut at max_length, or None when none were (or unknown)."""
    if predictions.truncated is None or not predictions.truncated.any():
        return None
    count, n = int(predictions.truncated.sum()), len(predictions)
    max_length = ((predictions.settings or {}).get("model") or {}).get("effective_max_length")
    limit = f"max_length ({max_length} tokens)" if max_length else "max_length"
    return (f"{count:,} of {n:,} texts ({100 * count / n:.1f}%) were longer than {limit} and were "
            "truncated: the model saw only their beginning.")


def _slice_definition(spec: SliceSpec) -> dict[str, Any]:
    return {key: value for key, value in vars(spec).items() if value is not None}
