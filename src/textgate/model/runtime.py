"""The contract between the inference engine and whatever runs a model: token ids of one batch
in, logits out.

Every capability reaches a model through ``textgate.infer``, and ``textgate.infer`` reaches it
only through a :class:`Runtime`: tokenization (the Hugging Face tokenizer of the Classifier,
with the spec's truncation), batch planning, temperature and the float32 softmax stay in the
engine, so a runtime is only the forward. A Classifier whose ``runtime`` is None runs its
PyTorch ``model`` eagerly (``textgate.infer.batches.TorchRuntime``); another runtime (ONNX
Runtime, OpenVINO) plugs in by setting ``runtime`` to an object with this shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Runtime"]


@runtime_checkable
class Runtime(Protocol):
    """Runs one planned batch of token ids to logits."""

    name: str  # e.g. "torch": recorded in prediction settings

    def can_pack(self) -> bool:
        """Whether :meth:`logits` with ``packed=True`` gives what the padded forward gives."""
        ...

    def logits(self, input_ids: Sequence[Sequence[int]], token_type_ids: Sequence[Sequence[int]] | None, *,
               width: int, pad_id: int, packed: bool) -> Any:
        """Logits ``(len(input_ids), K)`` as a float torch tensor or numpy array, in row order.

        ``width``: the padded length of the batch (its longest row when ``packed``); ``pad_id``:
        the tokenizer's padding id; ``packed``: run padding-free (only if :meth:`can_pack`)."""
        ...
