"""`DriftWindow`: one side of a drift comparison — the texts (when known), their true labels
(when known), a model's `Predictions` and embeddings (when a model ran), and the text
descriptors. Built from a `Dataset`, a Predictions file, or both; ``take`` selects rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from textgate.drift.descriptors import TextDescriptors, describe_texts
from textgate.errors import DataError
from textgate.predictions import Predictions

__all__ = ["DriftWindow", "window_from_dataset", "window_from_predictions"]


@dataclass(frozen=True, eq=False)
class DriftWindow:
    """Rows of one window, every array in the same row order (``rows`` long).

    ``kind`` says what was read: "data" (a dataset file, perhaps with a model's outputs) or
    "predictions" (a Predictions file: outputs only, no texts). ``unknown_tokens`` (bool per
    text) marks texts holding a token the model's tokenizer does not know. ``descriptors`` are
    computed from ``texts`` when not given.
    """

    source: str
    kind: Literal["data", "predictions"]
    rows: int
    texts: tuple[str, ...] | None = None
    labels: np.ndarray | None = None
    label_names: tuple[str, ...] = ()
    predictions: Predictions | None = None
    embeddings: np.ndarray | None = None
    unknown_tokens: np.ndarray | None = None
    columns: Mapping[str, tuple] = field(default_factory=dict)
    descriptors: TextDescriptors | None = None
    model: str = ""

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise DataError(f"The {self.source} window has no rows; drift needs at least one example per "
                            "side.", field="rows", path=self.source)
        parts: dict[str, Any] = {"texts": self.texts, "labels": self.labels, "predictions": self.predictions,
                                 "embeddings": self.embeddings, "unknown_tokens": self.unknown_tokens,
                                 "descriptors": self.descriptors, **self.columns}
        for name, value in parts.items():
            if value is not None and len(value) != self.rows:
                raise DataError(f"{name} of the {self.source} window has {len(value):,} rows but the window "
                                f"has {self.rows:,}; build every part from the same rows, in the same order.",
                                field=name, path=self.source)
        if self.descriptors is None and self.texts is not None:
            object.__setattr__(self, "descriptors", describe_texts(self.texts))

    @property
    def has_texts(self) -> bool:
        return self.texts is not None

    def take(self, rows: np.ndarray | list[int]) -> DriftWindow:
        """The window restricted to ``rows`` (indices, repeats allowed), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        p = self.predictions
        taken = None if p is None else replace(
            p, predicted=p.predicted[rows],
            probabilities=None if p.probabilities is None else p.probabilities[rows],
            token_counts=None if p.token_counts is None else p.token_counts[rows],
            truncated=None if p.truncated is None else p.truncated[rows])
        return replace(
            self, rows=len(rows), predictions=taken,
            texts=None if self.texts is None else tuple(self.texts[i] for i in rows),
            labels=None if self.labels is None else self.labels[rows],
            embeddings=None if self.embeddings is None else self.embeddings[rows],
            unknown_tokens=None if self.unknown_tokens is None else self.unknown_tokens[rows],
            columns={k: tuple(v[i] for i in rows) for k, v in self.columns.items()},
            descriptors=None if self.descriptors is None else self.descriptors.take(rows))

    def describe(self) -> dict[str, Any]:
        """What the report says about this side."""
        p = self.predictions
        return {"source": self.source, "kind": self.kind, "rows": self.rows, "texts": self.has_texts,
                "labels": self.labels is not None, "label_names": list(self.label_names),
                "predictions": p is not None, "probabilities": p is not None and p.probabilities is not None,
                "embeddings": self.embeddings is not None, "model": self.model,
                "model_fingerprint": "" if p is None else p.model_fingerprint,
                "data_fingerprint": "" if p is None else p.data_fingerprint}


def window_from_dataset(dataset: Any, *, predictions: Predictions | None = None, embeddings: np.ndarray | None = None,
                        unknown_tokens: np.ndarray | None = None, model: str = "") -> DriftWindow:
    """A window from a `textgate.data.Dataset`, with a model's outputs on it when given."""
    return DriftWindow(source=str(dataset.path), kind="data", rows=len(dataset), texts=tuple(dataset.texts),
                       labels=dataset.labels, label_names=tuple(dataset.label_names), predictions=predictions,
                       embeddings=embeddings, unknown_tokens=unknown_tokens, columns=dict(dataset.columns),
                       model=model)


def window_from_predictions(predictions: Predictions, *, source: str) -> DriftWindow:
    """A window from a Predictions file: outputs only (no texts, so no text descriptors)."""
    return DriftWindow(source=source, kind="predictions", rows=len(predictions), label_names=predictions.label_names,
                       predictions=predictions, model=predictions.model_fingerprint)
