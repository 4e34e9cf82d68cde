"""Inference: a loaded classifier over many texts, in input order -> ``Predictions``.
Start at ``engine.py``.

- ``engine.py``: ``predict``, ``predict_interleaved``, ``time_interleaved``, ``embed``;
- ``batches.py``: the shared steps (encode, plan batches, run one batch) the server reuses;
- ``packed.py``: the padding-free forward for BERT classifiers.

Importing this package imports torch.
"""

from textgate.infer.batches import DEFAULT_TOKEN_BUDGET, MAX_BATCH_SIZE
from textgate.infer.engine import embed, predict, predict_interleaved, time_interleaved

__all__ = ["DEFAULT_TOKEN_BUDGET", "MAX_BATCH_SIZE", "embed", "predict", "predict_interleaved", "time_interleaved"]
