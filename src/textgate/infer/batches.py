"""The steps of inference that the offline engine (:mod:`textgate.infer.engine`) and the
server's micro-batcher share: tokenize every text once (``encode``), plan batches within a token
budget (``plan_batches``, or ``plan_packed_batches`` for the padding-free forward), and run one
batch to probabilities (``run_batch``). The contract with a model is
:class:`textgate.model.Runtime` (token ids in, logits out), reached through :func:`batch_logits`;
:class:`TorchRuntime` is the PyTorch one. Every forward path then ends in :func:`probabilities`
(temperature, float32 softmax).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from textgate.errors import DataError
from textgate.infer.packed import packed_logits, supports_packed
from textgate.model import Classifier, Runtime

__all__ = [
    "DEFAULT_TOKEN_BUDGET",
    "MAX_BATCH_SIZE",
    "PACKED_GRID_FACTOR",
    "Batch",
    "TorchRuntime",
    "autocast",
    "batch_logits",
    "can_pack",
    "check_lengths",
    "collate",
    "encode",
    "plan_batches",
    "plan_grouped_batches",
    "plan_packed_batches",
    "probabilities",
    "run_batch",
    "runtime_of",
]

# Padded tokens per batch: large enough for efficient GEMMs on 2-16 cores, small enough
# that attention and activations stay in cache-friendly sizes (measured: benchmarks/throughput.py).
DEFAULT_TOKEN_BUDGET = 4096
# Upper bound on rows per batch so that a set of very short texts does not make one huge batch.
MAX_BATCH_SIZE = 256
# Padding-free batches: the attention grid (rows x longest row) may be this many times the
# token budget; tweets of mixed length stay in one batch, one 512-token text does not take 255 along.
PACKED_GRID_FACTOR = 2


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # indices into the input texts
    width: int  # padded length (for a packed batch: its longest row)
    packed: bool = False  # run padding-free (textgate.infer.packed) instead of padded


def encode(classifier: Classifier, texts: Sequence[str]) -> tuple[dict[str, list[list[int]]], np.ndarray, np.ndarray]:
    """Token ids of every text (the spec's truncation applied), tokens per text, and which
    texts truncation cut. Shared by the offline engine and the server's micro-batcher."""
    encoded = tokenize(classifier, texts)
    lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))
    return encoded, lengths, truncated_rows(classifier, texts, lengths)


def tokenize(classifier: Classifier, texts: Sequence[str]) -> dict[str, list[list[int]]]:
    if not texts:
        return {"input_ids": []}
    return classifier.tokenizer(
        list(texts),
        truncation=classifier.spec.truncation,
        max_length=classifier.max_length if classifier.spec.truncation else None,
        padding=False,
        return_attention_mask=False,
    )


def truncated_rows(classifier: Classifier, texts: Sequence[str], lengths: np.ndarray) -> np.ndarray:
    """Which texts lost tokens to truncation. Only texts that reached the limit can have, so
    only those are tokenized again without truncation."""
    truncated = np.zeros(len(texts), dtype=bool)
    at_limit = np.flatnonzero(lengths >= classifier.max_length) if classifier.spec.truncation else []
    if len(at_limit):
        full = classifier.tokenizer([texts[i] for i in at_limit], truncation=False, padding=False,
                                    return_attention_mask=False, verbose=False)["input_ids"]
        truncated[at_limit] = [len(ids) > classifier.max_length for ids in full]
    return truncated


def check_lengths(classifier: Classifier, lengths: np.ndarray) -> None:
    too_long = np.flatnonzero(lengths > classifier.max_length)
    if too_long.size:
        rows = ", ".join(str(r + 1) for r in too_long[:10])
        raise DataError(
            f"{too_long.size} texts are longer than max_length {classifier.max_length} tokens "
            f"(rows {rows}{', ...' if too_long.size > 10 else ''}) and the ModelSpec sets "
            "truncation = false. Set truncation = true (what pipelines usually do) or shorten them.",
            field="truncation",
        )


def plan_batches(lengths: np.ndarray, classifier: Classifier, token_budget: int) -> Iterator[Batch]:
    """Longest first, so a batch that does not fit in memory fails at once, not at the end."""
    order = np.argsort(-lengths, kind="stable")
    fixed_width = classifier.max_length if classifier.spec.padding == "max_length" else None
    start = 0
    while start < len(order):
        width = fixed_width or int(lengths[order[start]])
        size = max(1, min(MAX_BATCH_SIZE, token_budget // max(width, 1)))
        rows = order[start : start + size]
        yield Batch(rows=rows, width=width)
        start += size


def plan_grouped_batches(lengths: np.ndarray, groups: np.ndarray, classifier: Classifier,
                         token_budget: int) -> list[Batch]:
    """Each group batched on its own, rows mapped back to positions in the whole input."""
    batches = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        for batch in plan_batches(lengths[members], classifier, token_budget):
            batches.append(Batch(rows=members[batch.rows], width=batch.width, packed=batch.packed))
    return batches


def can_pack(classifier: Classifier) -> bool:
    """Whether the padding-free forward reproduces this classifier's padded one."""
    return classifier.spec.padding == "longest" and runtime_of(classifier).can_pack()


def plan_packed_batches(lengths: np.ndarray, token_budget: int) -> Iterator[Batch]:
    """Batches for the padding-free forward: longest first, bounded by *real* tokens, and the
    padded attention grid (rows x longest row) by PACKED_GRID_FACTOR x the budget, so one long
    text among many short ones does not make a huge attention matrix."""
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        end, tokens, width = start, 0, int(lengths[order[start]])
        max_rows = min(MAX_BATCH_SIZE, max(1, PACKED_GRID_FACTOR * token_budget // max(width, 1)))
        while end < len(order) and end - start < max_rows and (end == start or tokens + lengths[order[end]] <= token_budget):
            tokens += int(lengths[order[end]])
            end += 1
        yield Batch(rows=order[start:end], width=width, packed=True)
        start = end


def autocast(classifier: Classifier) -> torch.autocast:
    """CPU bfloat16 autocast for bfloat16 specs (matmuls in bfloat16, softmax and layer norms in
    float32); a no-op context for float32 ones."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=classifier.spec.dtype == "bfloat16")


def run_batch(classifier: Classifier, encoded: dict[str, list[list[int]]], batch: Batch) -> np.ndarray:
    """Probabilities (rows, K) of one planned batch of encoded texts."""
    return probabilities(classifier, batch_logits(classifier, encoded, batch))


def batch_logits(classifier: Classifier, encoded: dict[str, list[list[int]]], batch: Batch) -> torch.Tensor:
    """Logits (rows, K) of one planned batch, from the classifier's runtime, padded or
    padding-free (``batch.packed``)."""
    types = encoded.get("token_type_ids")
    logits = runtime_of(classifier).logits(
        [encoded["input_ids"][r] for r in batch.rows],
        [types[r] for r in batch.rows] if types is not None else None,
        width=batch.width, pad_id=classifier.tokenizer.pad_token_id or 0, packed=batch.packed)
    return torch.as_tensor(logits)


def runtime_of(classifier: Classifier) -> Runtime:
    """The classifier's runtime: its own, else its PyTorch model run eagerly."""
    return classifier.runtime if classifier.runtime is not None else TorchRuntime(classifier)


class TorchRuntime:
    """The Classifier's PyTorch model, eagerly, under inference mode and the spec's autocast:
    padded batches through the model's own forward, packed ones through
    :func:`textgate.infer.packed.packed_logits`."""

    name = "torch"

    def __init__(self, classifier: Classifier):
        self.classifier = classifier

    def can_pack(self) -> bool:
        return supports_packed(self.classifier.model)

    def logits(self, input_ids: Sequence[Sequence[int]], token_type_ids: Sequence[Sequence[int]] | None, *,
               width: int, pad_id: int, packed: bool) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.classifier):
            if packed:
                return packed_logits(self.classifier.model, input_ids, token_type_ids)
            encoded = {"input_ids": input_ids, **({} if token_type_ids is None else {"token_type_ids": token_type_ids})}
            rows = Batch(rows=np.arange(len(input_ids)), width=width)
            return self.classifier.model(**collate(encoded, rows, pad_id=pad_id)).logits


def probabilities(classifier: Classifier, logits: torch.Tensor) -> np.ndarray:
    """Float32 softmax of the logits divided by the classifier's temperature (1.0 unless its
    ModelSpec names a calibration file). Every forward path ends here."""
    logits = torch.as_tensor(logits).float()
    if classifier.temperature != 1.0:
        logits = logits / classifier.temperature
    return torch.softmax(logits, dim=-1).numpy()


def collate(encoded: dict[str, list[list[int]]], batch: Batch, *, pad_id: int) -> dict[str, torch.Tensor]:
    n = len(batch.rows)
    ids = np.full((n, batch.width), pad_id, dtype=np.int64)
    mask = np.zeros((n, batch.width), dtype=np.int64)
    for out_row, row in enumerate(batch.rows):
        tokens = encoded["input_ids"][row]
        ids[out_row, : len(tokens)] = tokens
        mask[out_row, : len(tokens)] = 1
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if "token_type_ids" in encoded:
        types = np.zeros((n, batch.width), dtype=np.int64)
        for out_row, row in enumerate(batch.rows):
            segment = encoded["token_type_ids"][row]
            types[out_row, : len(segment)] = segment
        inputs["token_type_ids"] = torch.from_numpy(types)
    return inputs
