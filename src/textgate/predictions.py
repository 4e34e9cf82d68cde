"""`Predictions`: the record every step hands to the next, and its Parquet file format.

A Predictions file is a Parquet table, one row per input example in input order:

    row            int64                  position of the example in the dataset
    predicted      string                 predicted label name
    probabilities  fixed_size_list<float> class probabilities, in `label_names` order
                                          (absent for label-only predictions of other systems)
    tokens         int32                  tokens the model saw (after truncation; optional)
    truncated      bool                   whether truncation cut the text (optional)
    text_sha256    string                 the example's text hash, ``text_hash(text, key)``
                                          (optional; a prediction-log export always has it)

and one schema-metadata key, ``textgate``, holding JSON with ``schema_version``,
``label_names``, ``settings``, ``model_fingerprint``, ``data_fingerprint``,
``batch_seconds`` and ``batch_sizes`` (and ``text_hash``, how the hashes were made, when the
file has them). Files written by older textgate versions keep loading: readers check
``schema_version`` and refuse only newer, unknown versions.

Schema versions: 1 the first; 2 adds the optional ``text_sha256`` column (and ``text_hash``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textgate._internal.validation import check_probabilities
from textgate.errors import DataError
from textgate.outputs import atomic_path

__all__ = [
    "PREDICTIONS_SCHEMA_VERSION",
    "Predictions",
    "is_textgate_predictions",
    "load_any_predictions",
    "load_predictions",
    "predictions_summary",
    "save_predictions",
    "texts_fingerprint",
]

# 2: the optional per-row text_sha256 column (1: without it); files of either version load.
PREDICTIONS_SCHEMA_VERSION = 2
_METADATA_KEY = b"textgate"


@dataclass(frozen=True, eq=False)
class Predictions:
    """Outputs of one classifier on one dataset, in dataset order.

    ``probabilities`` is ``None`` when the predictions came from a system that gave only labels.
    ``batch_seconds[i]`` is the wall time of batch ``i`` (tokenization + forward), holding
    ``batch_sizes[i]`` examples; both are empty for predictions not made by textgate.
    ``text_sha256``: each example's text hash (``textgate._internal.hashing.text_hash``), the key
    that joins these rows to the prediction log and to audits made with the same key;
    ``text_hash`` says how they were made (``text_hash_settings``: algorithm, keyed).
    """

    label_names: tuple[str, ...]
    predicted: np.ndarray  # (N,) object array of label names
    probabilities: np.ndarray | None = None  # (N, K) float32
    token_counts: np.ndarray | None = None  # (N,) tokens per example after truncation
    truncated: np.ndarray | None = None  # (N,) bool: truncation cut the text
    batch_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    batch_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    settings: dict[str, Any] = field(default_factory=dict)
    model_fingerprint: str = ""
    data_fingerprint: str = ""
    text_sha256: np.ndarray | None = None  # (N,) object array of 64-hex-digit text hashes
    text_hash: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.predicted)

    @property
    def confidence(self) -> np.ndarray | None:
        """Probability of the predicted class (top-label confidence), or None without probabilities."""
        return None if self.probabilities is None else self.probabilities.max(axis=1)

    @property
    def total_seconds(self) -> float:
        return float(np.sum(self.batch_seconds))


def texts_fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 (16 hex digits) of the texts in order: equal iff two runs saw the same inputs."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def save_predictions(predictions: Predictions, path: Path | str) -> Path:
    """Write ``predictions`` to a Parquet file (see the module docstring for the layout).

    Probabilities must be finite rows summing to 1 (DataError otherwise, nothing written): NaN
    from a broken model must not be saved beside a label that looks like a prediction."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if predictions.probabilities is not None:
        check_probabilities(predictions.probabilities, len(predictions), len(predictions.label_names))
    columns: dict[str, Any] = {
        "row": pa.array(np.arange(len(predictions), dtype=np.int64)),
        "predicted": pa.array([str(p) for p in predictions.predicted], type=pa.string()),
    }
    if predictions.probabilities is not None:
        flat = pa.array(np.ascontiguousarray(predictions.probabilities, dtype=np.float32).ravel())
        columns["probabilities"] = pa.FixedSizeListArray.from_arrays(flat, len(predictions.label_names))
    if predictions.token_counts is not None:
        columns["tokens"] = pa.array(np.asarray(predictions.token_counts, dtype=np.int32))
    if predictions.truncated is not None:
        columns["truncated"] = pa.array(np.asarray(predictions.truncated, dtype=bool))
    if predictions.text_sha256 is not None:
        if len(predictions.text_sha256) != len(predictions):
            raise DataError(f"Predictions hold {len(predictions)} rows but {len(predictions.text_sha256)} "
                            "text hashes; give one text_sha256 per row.", field="text_sha256")
        columns["text_sha256"] = pa.array([str(h) for h in predictions.text_sha256], type=pa.string())
    metadata = {
        "schema_version": PREDICTIONS_SCHEMA_VERSION,
        "label_names": list(predictions.label_names),
        "settings": predictions.settings,
        "model_fingerprint": predictions.model_fingerprint,
        "data_fingerprint": predictions.data_fingerprint,
        "batch_seconds": [float(s) for s in predictions.batch_seconds],
        "batch_sizes": [int(s) for s in predictions.batch_sizes],
    }
    if predictions.text_sha256 is not None:
        metadata["text_hash"] = dict(predictions.text_hash)
    table = pa.table(columns).replace_schema_metadata({_METADATA_KEY: json.dumps(metadata).encode()})
    with atomic_path(path) as partial:
        pq.write_table(table, partial)
    return path


def predictions_summary(predictions: Predictions, path: Path | str) -> dict[str, Any]:
    """What `textgate predict --format json` prints: the file written to ``path`` and what it holds."""
    names, counts = np.unique(np.asarray(predictions.predicted, dtype=str), return_counts=True)
    return {"schema_version": 1, "kind": "textgate.predict", "out": str(path),
            "rows": len(predictions), "label_names": list(predictions.label_names),
            "predicted_counts": {str(n): int(c) for n, c in zip(names, counts, strict=True)},
            "truncated": None if predictions.truncated is None else int(predictions.truncated.sum()),
            "seconds": round(predictions.total_seconds, 3), "model_fingerprint": predictions.model_fingerprint,
            "data_fingerprint": predictions.data_fingerprint,
            "hardware": (predictions.settings or {}).get("hardware")}


def load_predictions(path: Path | str) -> Predictions:
    """Read a Predictions file written by :func:`save_predictions` (any earlier schema version)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Predictions file {path} does not exist; pass the file written by "
                        "'textgate predict --out'.", field="predictions", path=path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"Predictions file {path} is not a readable Parquet file ({exc}); "
                        "write it again with 'textgate predict --out FILE.parquet'.",
                        field="predictions", path=path) from exc
    raw = (table.schema.metadata or {}).get(_METADATA_KEY)
    if raw is None:
        raise DataError(f"Parquet file {path} has no textgate metadata, so it was not written by "
                        "'textgate predict'; for another system's predictions pass a CSV/JSONL "
                        "file with a 'prediction' column or a plain file with one label per line.",
                        field="predictions", path=path)
    meta = json.loads(raw)
    version = meta.get("schema_version", 0)
    if version > PREDICTIONS_SCHEMA_VERSION:
        raise DataError(f"Predictions file {path} has schema_version {version}, newer than this "
                        f"textgate reads ({PREDICTIONS_SCHEMA_VERSION}); upgrade textgate.",
                        field="schema_version", path=path)
    label_names = tuple(meta["label_names"])
    probabilities = None
    if "probabilities" in table.column_names:
        flat = table.column("probabilities").combine_chunks().flatten().to_numpy()
        probabilities = flat.astype(np.float32).reshape(table.num_rows, len(label_names))
    order = np.argsort(table.column("row").to_numpy(), kind="stable")
    predicted = np.array(table.column("predicted").to_pylist(), dtype=object)[order]
    token_counts = truncated = None
    if "tokens" in table.column_names:
        token_counts = table.column("tokens").to_numpy().astype(np.int64)[order]
    if "truncated" in table.column_names:
        truncated = table.column("truncated").to_numpy(zero_copy_only=False).astype(bool)[order]
    text_sha256 = None
    if "text_sha256" in table.column_names:
        text_sha256 = np.array(table.column("text_sha256").to_pylist(), dtype=object)[order]
    return Predictions(
        label_names=label_names,
        token_counts=token_counts,
        truncated=truncated,
        predicted=predicted,
        probabilities=None if probabilities is None else probabilities[order],
        batch_seconds=np.asarray(meta.get("batch_seconds", []), dtype=np.float64),
        batch_sizes=np.asarray(meta.get("batch_sizes", []), dtype=np.int64),
        settings=meta.get("settings", {}),
        model_fingerprint=meta.get("model_fingerprint", ""),
        data_fingerprint=meta.get("data_fingerprint", ""),
        text_sha256=text_sha256,
        text_hash=meta.get("text_hash", {}),
    )


def is_textgate_predictions(path: Path | str) -> bool:
    """True for a Parquet file written by :func:`save_predictions` (or an unreadable .parquet,
    so that :func:`load_predictions` reports precisely what is wrong with it)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix != ".parquet" or not path.is_file():
        return False
    try:
        return _METADATA_KEY in (pq.read_schema(path).metadata or {})
    except Exception:  # pyarrow raises several types for broken files
        return True


def load_any_predictions(path: Path | str, *, label_names: Sequence[str]) -> Predictions:
    """A textgate Predictions file, or another system's labels: a CSV/TSV/JSONL/Parquet file
    with a ``prediction`` column, or a plain file with one label (name or id) per line."""
    from textgate.data import read_label_list, read_prediction_column

    path = Path(path)
    if is_textgate_predictions(path):
        return load_predictions(path)
    tabular = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".csv.gz", ".tsv.gz", ".jsonl.gz", ".ndjson.gz")
    if path.name.lower().endswith(tabular):
        predicted = read_prediction_column(path, label_names=label_names)
    else:
        predicted = read_label_list(path, label_names=label_names)
    return Predictions(label_names=tuple(label_names), predicted=predicted)
