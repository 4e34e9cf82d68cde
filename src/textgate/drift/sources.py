"""Where a window comes from: a dataset file (csv/tsv/jsonl/parquet/TweetEval; labels
optional), or a `textgate predict` Predictions file. With a classifier, a dataset's texts are
predicted and embedded (`textgate.infer.predict` / `embed`) and their unknown tokens counted;
a Predictions file is used as it is. Importing this module imports no model library; running a
classifier imports torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textgate.data import read_dataset
from textgate.drift.window import (
    DriftWindow,
    window_from_dataset,
    window_from_predictions,
)
from textgate.predictions import is_textgate_predictions, load_predictions

__all__ = ["read_window", "unknown_token_flags"]


def read_window(path: Path | str, *, classifier: Any = None, text_col: str = "text", label_col: str = "label",
                embeddings: bool = True, token_budget: int | None = None,
                progress: bool | None = None) -> DriftWindow:
    """The window a file holds (see the module docstring). ``embeddings``: also embed the texts
    for the domain classifier when a classifier is given."""
    path = Path(path)
    if is_textgate_predictions(path):
        return window_from_predictions(load_predictions(path), source=str(path))
    dataset = read_dataset(path, text_col=text_col, label_col=label_col, require_labels=False,
                           label_names=None if classifier is None else classifier.label_names)
    if classifier is None:
        return window_from_dataset(dataset)
    from textgate.infer import DEFAULT_TOKEN_BUDGET, embed, predict

    budget = token_budget or DEFAULT_TOKEN_BUDGET
    predictions = predict(classifier, dataset.texts, token_budget=budget, progress=progress)
    vectors = embed(classifier, dataset.texts, token_budget=budget, progress=progress) if embeddings else None
    return window_from_dataset(dataset, predictions=predictions, embeddings=vectors,
                               unknown_tokens=unknown_token_flags(classifier, dataset.texts),
                               model=classifier.source.describe())


def unknown_token_flags(classifier: Any, texts: Sequence[str]) -> np.ndarray | None:
    """Per text: does the model's tokenization (its truncation applied) hold the unknown token?
    None for a tokenizer without one (byte-level BPE knows every input)."""
    from textgate.infer.batches import encode

    unk = getattr(classifier.tokenizer, "unk_token_id", None)
    if unk is None:
        return None
    encoded, _, _ = encode(classifier, texts)
    return np.fromiter((unk in ids for ids in encoded["input_ids"]), dtype=bool, count=len(texts))
