"""Labels from production: a labeling batch drawn from a window of the prediction log.

    sample_window         the rows of a ``LogWindow`` a strategy picks, deterministic for a seed
    write_labeling_batch  batch.csv, argilla.jsonl, predictions.parquet and sample.json

Strategies (``STRATEGIES``):

    uniform         n rows at random: the only batch whose accuracy estimates production's
    low-confidence  the n rows with the lowest top probability (ties in served order)
    guard-flagged   n rows at random among those the guard gave a reason (any status)
    disagreement    n rows at random among those where the shadow's label differs from the
                    primary model's (needs a server run with --shadow)

batch.csv is a dataset ``textgate eval`` reads once its ``label`` column is filled in:
``textgate eval --predictions DIR/predictions.parquet DIR/batch.csv`` (``--text-col
text_sha256`` when the batch has no texts). Texts are in it when the log holds them
(``log_text = true``) or when the caller joins them from its own file by their hash; text cells
a spreadsheet would run as a formula get a leading ``'``, as in the audit's issues.csv.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgate.audit.export import ARGILLA_QUESTION, ARGILLA_TEXT_FIELD, spreadsheet_safe
from textgate.errors import ConfigError, DataError
from textgate.outputs import atomic_path, write_text_atomic
from textgate.predictions import Predictions, save_predictions, texts_fingerprint
from textgate.serve.window import LogWindow, format_time, window_predictions

__all__ = ["BATCH_COLUMNS", "SAMPLE_SCHEMA_VERSION", "STRATEGIES", "LabelingSample", "sample_window",
           "write_labeling_batch"]

# Version of sample.json (and of the batch files' columns).
SAMPLE_SCHEMA_VERSION = 1
STRATEGIES = ("uniform", "low-confidence", "guard-flagged", "disagreement")
# batch.csv, in this order; "text" only when some row has its text, shadow_* only when a shadow ran.
BATCH_COLUMNS = ("id", "served_at", "request_id", "item", "text_sha256", "text", "prediction", "confidence",
                 "served_label", "guard_status", "guard_reasons", "shadow_prediction", "shadow_confidence", "label")
FILES = ("batch.csv", "argilla.jsonl", "predictions.parquet", "sample.json")


@dataclass(frozen=True)
class LabelingSample:
    """The rows a strategy picked from a window: ``rows`` index ``window.records``, in served order."""

    window: LogWindow
    rows: tuple[int, ...]
    strategy: str
    seed: int
    requested: int
    population: int  # rows the strategy chose from

    @property
    def notes(self) -> list[str]:
        notes = []
        if len(self.rows) < self.requested:
            notes.append(f"{self.requested:,} rows were asked for but the strategy's population holds only "
                         f"{self.population:,}; all of them are in the batch.")
        if self.strategy != "uniform":
            notes.append(f"A {self.strategy} batch is not a random sample of production: its accuracy is the "
                         "accuracy on such items, not production accuracy (use --strategy uniform for that).")
        if self.strategy == "low-confidence":
            notes.append("low-confidence takes the lowest top probabilities; the seed plays no part.")
        return notes


def sample_window(window: LogWindow, n: int, *, strategy: str, seed: int = 0) -> LabelingSample:
    """Pick up to ``n`` rows of ``window`` by ``strategy`` (one of ``STRATEGIES``); the same
    window, n, strategy and seed give the same rows. DataError when the strategy finds no row
    (no guard reasons; no shadow rows or no disagreement)."""
    if n < 1:
        raise ConfigError(f"Option '--n' must be at least 1. Got {n} instead.", field="--n")
    if strategy not in STRATEGIES:
        raise ConfigError(f"Option '--strategy' must be one of {', '.join(STRATEGIES)}. Got {strategy!r} instead.",
                          field="--strategy")
    records = window.records
    if strategy == "low-confidence":
        confidence = [max(window.probabilities_of(r).values()) for r in records]  # type: ignore[union-attr]
        order = sorted(range(len(records)), key=lambda i: (confidence[i], i))
        return LabelingSample(window, tuple(sorted(order[:n])), strategy, seed, n, len(records))
    if strategy == "uniform":
        pool = list(range(len(records)))
    elif strategy == "guard-flagged":
        pool = [i for i, r in enumerate(records) if r.reasons or r.status != "ok"]
        if not pool:
            raise DataError(f"No row of the window ({len(records):,} rows of model {window.fingerprint}) was "
                            "flagged by the guard; choose another --strategy or a wider window.", field="--strategy")
    else:
        with_shadow = [i for i, r in enumerate(records) if r.shadow_label is not None]
        if not with_shadow:
            raise DataError(f"The window ({len(records):,} rows of model {window.fingerprint}) has no shadow "
                            "predictions; --strategy disagreement needs a server started with --shadow "
                            "CANDIDATE.toml.", field="--strategy")
        pool = [i for i in with_shadow if records[i].shadow_label != records[i].model_label]
        if not pool:
            raise DataError(f"The shadow agrees with the primary model on all {len(with_shadow):,} rows of the "
                            "window it ran on; there is no disagreement to label.", field="--strategy")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return LabelingSample(window, tuple(sorted(pool[i] for i in picked)), strategy, seed, n, len(pool))


def write_labeling_batch(sample: LabelingSample, out_dir: Path | str, *,
                         texts: Mapping[str, str] | None = None) -> tuple[list[Path], dict[str, Any]]:
    """Write the batch files to ``out_dir``; returns their paths and sample.json's content.

    ``texts``: text by ``text_sha256`` (the caller's own texts hashed with the log's key), for
    rows whose text the log does not hold."""
    window = sample.window
    chosen = [window.records[i] for i in sample.rows]
    row_texts = [r.text if r.text is not None else (texts or {}).get(r.text_sha256) for r in chosen]
    has_text = any(t is not None for t in row_texts)
    has_shadow = any(r.shadow_label is not None for r in chosen)
    columns = [c for c in BATCH_COLUMNS if (c != "text" or has_text)
               and (not c.startswith("shadow_") or has_shadow)]
    rows = [_batch_row(window, record, text) for record, text in zip(chosen, row_texts, strict=True)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    with atomic_path(paths[0]) as partial, partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(paths[1]) as partial, partial.open("w", encoding="utf-8") as handle:
        for row, record in zip(rows, chosen, strict=True):
            handle.write(json.dumps(_argilla_record(window, row, record, sample.strategy), ensure_ascii=False,
                                    allow_nan=False) + "\n")
    save_predictions(_batch_predictions(window, sample, rows, has_text), paths[2])
    logged = sum(r.text is not None for r in chosen)
    joined = sum(t is not None for t in row_texts) - logged
    summary = {
        "schema_version": SAMPLE_SCHEMA_VERSION,
        "kind": "textgate.log_sample",
        "strategy": sample.strategy,
        "seed": sample.seed,
        "requested": sample.requested,
        "rows": len(chosen),
        "population": sample.population,
        "estimates_production_accuracy": sample.strategy == "uniform",
        "window": window.summary(),
        "text": {"logged": logged, "joined": joined, "hash_only": len(chosen) - logged - joined},
        "files": [str(p) for p in paths],
        "eval": _eval_command(out, has_text and all(t is not None for t in row_texts)),
        "notes": sample.notes,
    }
    write_text_atomic(paths[3], json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return paths, summary


def _batch_row(window: LogWindow, record: Any, text: str | None) -> dict[str, Any]:
    scores = window.probabilities_of(record) or {}
    shadow = record.shadow_scores
    return {
        "id": f"{record.request_id}/{record.item}",
        "served_at": format_time(record.time),
        "request_id": record.request_id,
        "item": record.item,
        "text_sha256": record.text_sha256,
        "text": "" if text is None else spreadsheet_safe(text),
        "prediction": record.model_label,
        "confidence": round(float(scores[record.model_label]), 6) if record.model_label in scores
        else round(max(scores.values()), 6),
        "served_label": record.label or "",
        "guard_status": record.status,
        "guard_reasons": ",".join(record.reasons),
        "shadow_prediction": record.shadow_label or "",
        "shadow_confidence": "" if not shadow else round(max(shadow.values()), 6),
        "label": "",
    }


def _argilla_record(window: LogWindow, row: Mapping[str, Any], record: Any, strategy: str) -> dict[str, Any]:
    """One record in the shape of Argilla 2.x ``Record.to_dict()`` (the audit's argilla.jsonl
    shape): field ``text`` (absent when neither the log nor the caller has it: join on
    ``metadata.text_sha256``), the model's label as a suggestion for question ``label``."""
    metadata = {key: row[key] for key in ("request_id", "item", "served_at", "text_sha256", "served_label",
                                          "guard_status", "shadow_prediction") if row[key] not in ("", None)}
    metadata["strategy"] = strategy
    return {
        "id": row["id"],
        "fields": {ARGILLA_TEXT_FIELD: row["text"]} if row["text"] else {},
        "metadata": metadata,
        "suggestions": {ARGILLA_QUESTION: {"value": row["prediction"], "score": row["confidence"],
                                           "agent": f"textgate serve ({window.fingerprint})"}},
        "responses": {},
        "vectors": {},
    }


def _batch_predictions(window: LogWindow, sample: LabelingSample, rows: Sequence[Mapping[str, Any]],
                       has_text: bool) -> Predictions:
    """The sampled rows' Predictions, in batch.csv's order. Its data fingerprint is that of the
    text column as written (so eval checks it matches batch.csv), or empty without texts."""
    full = window_predictions(window)
    index = np.asarray(sample.rows, dtype=np.int64)
    written = [str(r["text"]) for r in rows]
    complete = has_text and all(written)
    return Predictions(
        label_names=full.label_names,
        predicted=full.predicted[index],
        probabilities=None if full.probabilities is None else full.probabilities[index],
        token_counts=None if full.token_counts is None else full.token_counts[index],
        truncated=None if full.truncated is None else full.truncated[index],
        settings={**full.settings, "sample": {"strategy": sample.strategy, "seed": sample.seed,
                                              "requested": sample.requested, "population": sample.population}},
        model_fingerprint=full.model_fingerprint,
        data_fingerprint=texts_fingerprint(written) if complete else "",
        text_sha256=None if full.text_sha256 is None else full.text_sha256[index],
        text_hash=full.text_hash,
    )


def _eval_command(out: Path, complete: bool) -> str:
    text_col = "" if complete else " --text-col text_sha256"
    return f"textgate eval --predictions {out / 'predictions.parquet'} {out / 'batch.csv'}{text_col}"
