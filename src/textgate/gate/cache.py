"""A cache of Predictions on disk, keyed by everything that decides them.

Key = model fingerprint (weights, config, tokenizer and adapter bytes + output-changing
settings) + fingerprint of the texts + engine token budget + library versions + the CPU's
identity (model, torch kernel level, native or emulated bfloat16: they change rounding). Change
any file under a model folder, a setting, the data, the installed torch/transformers or the
machine, and the key changes, so a stale entry is never read. Entries are Predictions Parquet
files. Their timings are never compared: the gate times both models in its own run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgate.errors import DataError
from textgate.predictions import (
    PREDICTIONS_SCHEMA_VERSION,
    Predictions,
    load_predictions,
    save_predictions,
)

__all__ = ["PredictionCache", "default_cache_dir"]


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    """``$TEXTGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/textgate``, else ``~/.cache/textgate``."""
    environ = os.environ if environ is None else environ
    if explicit := environ.get("TEXTGATE_CACHE_DIR"):
        return Path(explicit)
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "textgate"


@dataclass(frozen=True)
class PredictionCache:
    root: Path

    @staticmethod
    def key(*, model_fingerprint: str, texts_fingerprint: str, token_budget: int,
            versions: dict[str, Any], hardware: dict[str, str] | None = None) -> str:
        payload = {
            "model": model_fingerprint,
            "texts": texts_fingerprint,
            "token_budget": token_budget,
            "versions": {k: versions.get(k) for k in ("torch", "transformers", "tokenizers", "peft")},
            "schema": PREDICTIONS_SCHEMA_VERSION,
            "hardware": hardware or {},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / "predictions" / f"{key}.parquet"

    def load(self, key: str) -> Predictions | None:
        """The cached Predictions, or None; an unreadable entry is removed and counts as a miss."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_predictions(path)
        except DataError:
            path.unlink(missing_ok=True)
            return None

    def save(self, key: str, predictions: Predictions) -> Path:
        """Write atomically, so a crash never leaves a half-written entry behind."""
        path = self.path(key)
        return save_predictions(predictions, path)  # atomic
