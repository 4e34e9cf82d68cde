"""The inference engine: a loaded classifier over many texts, fast, in input order.

How it runs (and why it matches ``transformers.pipeline`` while being faster):
- every text is tokenized once up front with the spec's truncation and ``max_length``;
- examples are sorted by token count and cut into batches whose padded size
  (rows x longest row) stays within ``token_budget``, so short texts are not padded to long
  ones and each matrix multiply is large enough to run near the CPU's peak;
- each batch runs under ``torch.inference_mode`` (bfloat16 specs under CPU autocast:
  matmuls in bfloat16, softmax and layer norms in float32); probabilities are a float32 softmax
  of the logits, as the pipeline computes them;
- results are scattered back to input order. ``batch_seconds`` are wall times per batch with
  the up-front tokenization time shared out by batch size, so they add up to the whole run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from textgate._internal.versions import library_versions
from textgate.errors import ConfigError
from textgate.hardware import detect_hardware
from textgate.infer.batches import (
    DEFAULT_TOKEN_BUDGET,
    MAX_BATCH_SIZE,
    Batch,
    autocast,
    check_lengths,
    collate,
    encode,
    plan_batches,
    plan_grouped_batches,
    run_batch,
    runtime_of,
)
from textgate.latency import BatchTimings
from textgate.model import Classifier
from textgate.predictions import Predictions, texts_fingerprint

__all__ = ["Run", "alternate_batches", "embed", "predict", "predict_interleaved", "time_interleaved"]


def predict(
    classifier: Classifier,
    texts: Sequence[str],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    progress: bool | None = None,
) -> Predictions:
    """Run ``classifier`` on ``texts`` and return Predictions in input order.

    ``progress``: show a progress bar on stderr; ``None`` shows it only on a terminal.
    """
    return predict_interleaved([classifier], texts, token_budget=token_budget, progress=progress)[0]


def predict_interleaved(
    classifiers: Sequence[Classifier],
    texts: Sequence[str],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    progress: bool | None = None,
) -> list[Predictions]:
    """Run several classifiers on the same ``texts`` with their batches alternating.

    The run that has done the smallest share of the texts goes next, so a slow spell of the
    machine (another process, thermal throttling) lands on every classifier alike and their
    latencies can be compared. Each result is exactly what :func:`predict` would return.
    """
    runs = [Run(classifier, texts, token_budget) for classifier in classifiers]
    if len(runs) > 1:
        # Without this the first classifier's first (widest) batch would also pay one-time
        # costs (allocator, kernel selection) and its p99 latency would look worse.
        for run in runs:
            run.warm_up()
    with _progress_bar(len(texts) * len(runs), progress) as advance:
        for run_index, batch_index in alternate_batches(runs):
            advance(len(runs[run_index].batches[batch_index].rows))
    return [run.result(interleaved=len(runs) > 1) for run in runs]


def time_interleaved(
    classifiers: Sequence[Classifier],
    texts: Sequence[str],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    rounds: int = 5,
    warmup_rounds: int = 1,
    groups: Sequence[int] | np.ndarray | None = None,
    progress: bool | None = None,
) -> list[BatchTimings]:
    """Time each classifier's forward passes over ``texts``: ``warmup_rounds`` discarded rounds,
    then ``rounds`` timed ones. In every round the classifiers' batches alternate (the one with
    the smallest share done goes next) and the side that starts rotates, so a slow spell of the
    machine and any first-mover cost land on every side alike. Tokenization is not timed.
    ``groups`` (one id per text) batches each group on its own (textgate.latency.timing_windows)."""
    if rounds < 1 or warmup_rounds < 0:
        raise ValueError(f"rounds must be >= 1 and warmup_rounds >= 0; got {rounds} and {warmup_rounds}.")
    runs = [Run(classifier, texts, token_budget, groups=groups) for classifier in classifiers]
    seconds = [np.zeros((rounds, len(run.batches))) for run in runs]
    with _progress_bar(len(texts) * len(runs) * (rounds + warmup_rounds), progress, what="timing") as advance:
        for round_index in range(-warmup_rounds, rounds):
            for run_index, batch_index in alternate_batches(runs, first=round_index % len(runs)):
                if round_index >= 0:
                    seconds[run_index][round_index, batch_index] = runs[run_index].seconds[batch_index]
                advance(len(runs[run_index].batches[batch_index].rows))
    return [BatchTimings(s, np.array([len(b.rows) for b in run.batches], dtype=np.int64))
            for s, run in zip(seconds, runs, strict=True)]


def alternate_batches(runs: Sequence[Run], *, first: int = 0) -> Iterator[tuple[int, int]]:
    """Run every batch of every run, the run with the smallest share of texts done next (ties:
    from ``first`` on); yields (run index, batch index) after each batch."""
    done = [0] * len(runs)
    position = [0] * len(runs)
    active = {i for i, run in enumerate(runs) if run.batches}
    while active:
        turn = min(active, key=lambda i: (done[i], (i - first) % len(runs)))
        batch_index = position[turn]
        runs[turn].run_batch(batch_index)
        done[turn] += len(runs[turn].batches[batch_index].rows)
        position[turn] += 1
        if position[turn] == len(runs[turn].batches):
            active.remove(turn)
        yield turn, batch_index


class Run:
    """One classifier over the texts: tokenized and planned up front, then batch by batch."""

    def __init__(self, classifier: Classifier, texts: Sequence[str], token_budget: int, *,
                 groups: Sequence[int] | np.ndarray | None = None):
        if isinstance(token_budget, bool) or not isinstance(token_budget, int) or token_budget < 1:
            raise ConfigError(f"token_budget must be a whole number of tokens >= 1; got {token_budget!r}. "
                              f"The default is {DEFAULT_TOKEN_BUDGET}.", field="token_budget")
        started = time.perf_counter()
        self.classifier, self.texts, self.token_budget = classifier, texts, token_budget
        self.encoded, self.lengths, self.truncated = encode(classifier, texts)
        check_lengths(classifier, self.lengths)
        if groups is None:
            self.batches = list(plan_batches(self.lengths, classifier, token_budget))
        else:
            self.batches = plan_grouped_batches(self.lengths, np.asarray(groups), classifier, token_budget)
        self.probabilities = np.zeros((len(texts), len(classifier.label_names)), dtype=np.float32)
        self.seconds = np.zeros(len(self.batches))
        self.tokenize_seconds = time.perf_counter() - started

    def warm_up(self) -> None:
        """Run the first batch once, untimed and discarded."""
        if self.batches:
            run_batch(self.classifier, self.encoded, self.batches[0])

    def run_batch(self, i: int) -> float:
        """Run batch ``i``, keep its probabilities and wall time, and return the time."""
        batch = self.batches[i]
        started = time.perf_counter()
        self.probabilities[batch.rows] = run_batch(self.classifier, self.encoded, batch)
        self.seconds[i] = time.perf_counter() - started
        return float(self.seconds[i])

    def result(self, *, interleaved: bool) -> Predictions:
        sizes = np.array([len(b.rows) for b in self.batches], dtype=np.int64)
        seconds = self.seconds.copy()
        if len(self.texts):
            seconds += self.tokenize_seconds * sizes / len(self.texts)
        names = np.array(self.classifier.label_names, dtype=object)
        settings = _run_settings(self.classifier, self.token_budget, self.batches, self.tokenize_seconds)
        settings["engine"]["interleaved"] = interleaved
        return Predictions(
            label_names=self.classifier.label_names,
            predicted=names[self.probabilities.argmax(axis=1)] if len(self.texts) else np.array([], dtype=object),
            probabilities=self.probabilities,
            token_counts=self.lengths,
            truncated=self.truncated,
            batch_seconds=seconds,
            batch_sizes=sizes,
            settings=settings,
            model_fingerprint=self.classifier.fingerprint,
            data_fingerprint=texts_fingerprint(self.texts),
        )


class _progress_bar:
    """A rich progress bar on stderr, or nothing when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool | None, what: str = "predicting"):
        self.total, self.what = total, what
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None

    def __enter__(self):
        if not self.enabled or self.total == 0:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn(self.what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._progress.start()
        task = self._progress.add_task("predict", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc_info):
        if self._progress is not None:
            self._progress.stop()
        return False


def _run_settings(classifier: Classifier, token_budget: int, batches: list[Batch], tokenize_s: float) -> dict:
    return {
        "model": classifier.settings(),
        "engine": {
            "token_budget": token_budget,
            "max_batch_size": MAX_BATCH_SIZE,
            "batches": len(batches),
            "order": "length-sorted, longest first",
            "compute": "bfloat16 autocast" if classifier.spec.dtype == "bfloat16" else "float32",
            "runtime": runtime_of(classifier).name,
            "attention": getattr(getattr(classifier.model, "config", None), "_attn_implementation", None),
            "torch_threads": torch.get_num_threads(),
            "tokenize_seconds": round(tokenize_s, 4),
        },
        "versions": library_versions(),
        "hardware": detect_hardware().to_dict(),
    }


def _last_hidden_state(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The encoder's last hidden state without running the head or keeping every layer's
    output; models without a separate base model fall back to ``hidden_states[-1]``."""
    base = getattr(model, "base_model", None)
    if base is not None and base is not model:
        return base(**inputs).last_hidden_state
    return model(**inputs, output_hidden_states=True).hidden_states[-1]


def embed(
    classifier: Classifier,
    texts: Sequence[str],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    progress: bool | None = None,
) -> np.ndarray:
    """Frozen sentence embeddings ``(N, hidden)`` float32, in input order: the attention-masked
    mean of the encoder's last hidden state, tokenized and batched exactly as :func:`predict`.

    The masked mean rather than a pooler: every encoder has a last hidden state, not every one
    has a pooler (DistilBERT, RoBERTa heads pool internally), and sentence-transformers
    encoders such as the demo's MiniLM were trained for mean pooling.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be a positive number of tokens; got {token_budget}.")
    encoded, lengths, _ = encode(classifier, texts)
    check_lengths(classifier, lengths)
    out: np.ndarray | None = None
    pad_id = classifier.tokenizer.pad_token_id or 0
    with _progress_bar(len(texts), progress, what="embedding") as advance:
        for batch in plan_batches(lengths, classifier, token_budget):
            inputs = collate(encoded, batch, pad_id=pad_id)
            with torch.inference_mode(), autocast(classifier):
                hidden = _last_hidden_state(classifier.model, inputs).float()
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            pooled = ((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).numpy()
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[batch.rows] = pooled
            advance(len(batch.rows))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
