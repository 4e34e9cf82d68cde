"""A padding-free ("packed") forward pass for BERT sequence classifiers.

A padded batch of texts of mixed length spends most of its time on padding: 32 random tweets
are padded to the longest, about 1.7x their real token count, and every linear layer (about
95% of a small encoder's FLOPs at tweet lengths) multiplies the padding too. Here the tokens of
all texts are concatenated into one (tokens, hidden) matrix for the embeddings, the linear
layers, the layer norms and the feed-forward blocks; only attention, which must not mix texts,
runs on a padded (texts, heads, longest, head_dim) grid with a key mask, and its cost at these
lengths is small. This is the "varlen" idea of text-embeddings-inference and FlashAttention,
done with plain torch ops so it runs on CPU.

It calls the model's own modules (weights, activation, layer-norm epsilon) in the order
``BertForSequenceClassification`` does, so outputs equal the padded forward up to float
rounding (probabilities within ~1e-6 on the demo classifier; tests/infer/test_packed.py pins this).
Only the plain BERT layout is supported — absolute positions, encoder only, a pooler and a
``classifier`` head, eval mode; :func:`supports_packed` says whether a model qualifies and the
callers fall back to the padded forward otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["packed_logits", "supports_packed"]


def supports_packed(model: Any) -> bool:
    """True when ``model`` has exactly the layout :func:`packed_logits` reproduces."""
    config = getattr(model, "config", None)
    bert = getattr(model, "bert", None)
    return (
        type(model).__name__ == "BertForSequenceClassification"
        and getattr(config, "model_type", None) == "bert"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "is_decoder", False)
        and getattr(config, "problem_type", None) in (None, "single_label_classification")
        and bert is not None
        and getattr(bert, "pooler", None) is not None
        and not model.training
    )


def packed_logits(model: Any, input_ids: Sequence[Sequence[int]],
                  token_type_ids: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """Logits (texts, classes) for unpadded token-id lists; call under ``torch.inference_mode``."""
    bert = model.bert
    lengths = torch.tensor([len(ids) for ids in input_ids], dtype=torch.long)
    if len(lengths) == 0 or int(lengths.min()) < 1:
        raise ValueError("packed_logits needs at least one text and at least one token per text")
    n_texts, width = len(lengths), int(lengths.max())
    ids = torch.tensor([token for ids in input_ids for token in ids], dtype=torch.long)
    positions = torch.cat([torch.arange(n) for n in lengths.tolist()])
    types = (torch.tensor([t for row in token_type_ids for t in row], dtype=torch.long)
             if token_type_ids is not None else torch.zeros_like(ids))
    # Where each packed token sits in the padded (texts * width) attention grid.
    grid_index = torch.repeat_interleave(torch.arange(n_texts), lengths) * width + positions
    key_mask = (torch.arange(width)[None, :] < lengths[:, None])[:, None, None, :]

    embeddings = bert.embeddings
    hidden = embeddings.LayerNorm(embeddings.word_embeddings(ids) + embeddings.token_type_embeddings(types)
                                  + embeddings.position_embeddings(positions))
    for layer in bert.encoder.layer:
        context = _attention(layer.attention.self, hidden, grid_index, key_mask, n_texts, width)
        attention_out = layer.attention.output
        hidden = attention_out.LayerNorm(attention_out.dense(context) + hidden)
        hidden = layer.output.LayerNorm(layer.output.dense(layer.intermediate(hidden)) + hidden)
    first_tokens = torch.cumsum(lengths, 0) - lengths  # [CLS] of each text
    pooled = bert.pooler.activation(bert.pooler.dense(hidden[first_tokens]))
    return model.classifier(pooled)


def _attention(self_attention: Any, hidden: torch.Tensor, grid_index: torch.Tensor, key_mask: torch.Tensor,
               n_texts: int, width: int) -> torch.Tensor:
    heads, head_size = self_attention.num_attention_heads, self_attention.attention_head_size
    size = heads * head_size

    def to_grid(projection: torch.Tensor) -> torch.Tensor:
        grid = projection.new_zeros(n_texts * width, size)
        grid[grid_index] = projection
        return grid.view(n_texts, width, heads, head_size).transpose(1, 2)

    query, key, value = (to_grid(linear(hidden)) for linear in
                         (self_attention.query, self_attention.key, self_attention.value))
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, scale=self_attention.scaling)
    return context.transpose(1, 2).reshape(n_texts * width, size)[grid_index]
