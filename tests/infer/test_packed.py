"""The padding-free forward (textgate.infer.packed) must give what the model's own padded forward gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textgate.infer.batches import (
    Batch,
    can_pack,
    encode,
    plan_batches,
    plan_packed_batches,
    run_batch,
)
from textgate.infer.packed import packed_logits, supports_packed
from textgate.model import ModelSpec, load_classifier

TEXTS = ["i love this movie", "bad", "the phone is not very good today tbh lol omg",
         "a", "meh the game was okay i guess but the night was so sad", "great great great"]


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    return load_classifier(ModelSpec(model=str(tiny_model_dir)))


def _padded_and_packed(classifier, texts):
    encoded, lengths, _ = encode(classifier, texts)
    rows = np.arange(len(texts))
    padded = run_batch(classifier, encoded, Batch(rows=rows, width=int(lengths.max())))
    packed = run_batch(classifier, encoded, Batch(rows=rows, width=int(lengths.max()), packed=True))
    return padded, packed


def test_packed_equals_padded_on_mixed_lengths(classifier):
    padded, packed = _padded_and_packed(classifier, TEXTS)
    assert len(set(map(len, encode(classifier, TEXTS)[0]["input_ids"]))) > 3  # really mixed lengths
    np.testing.assert_allclose(packed, padded, atol=1e-5)
    assert (packed.argmax(1) == padded.argmax(1)).all()


def test_packed_uses_token_type_ids(classifier):
    encoded, lengths, _ = encode(classifier, TEXTS[:2])
    ids = encoded["input_ids"]
    with torch.inference_mode():
        zeros = packed_logits(classifier.model, ids, [[0] * len(row) for row in ids])
        ones = packed_logits(classifier.model, ids, [[1] * len(row) for row in ids])
        default = packed_logits(classifier.model, ids)
    torch.testing.assert_close(default, zeros)
    assert not torch.allclose(zeros, ones)


def test_packed_batches_bound_real_tokens_and_cover_every_row():
    lengths = np.array([5, 40, 12, 7, 33, 1, 20])
    batches = list(plan_packed_batches(lengths, token_budget=45))
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert all(b.packed and b.width == lengths[b.rows].max() for b in batches)
    assert all(lengths[b.rows].sum() <= 45 or len(b.rows) == 1 for b in batches)
    assert lengths[batches[0].rows[0]] == 40  # longest first, as the padded planner


def test_one_long_text_does_not_make_a_huge_attention_grid():
    lengths = np.array([512] + [20] * 255)
    batches = list(plan_packed_batches(lengths, token_budget=4096))
    assert sorted(np.concatenate([b.rows for b in batches]).tolist()) == list(range(256))
    assert all(len(b.rows) * b.width <= 2 * 4096 for b in batches)
    assert all(lengths[b.rows].sum() <= 4096 for b in batches)


def test_only_the_supported_layout_is_packed(classifier, tiny_model_dir):
    assert supports_packed(classifier.model) and can_pack(classifier)
    fixed = load_classifier(ModelSpec(model=str(tiny_model_dir), padding="max_length"))
    assert not can_pack(fixed)  # the spec asks for fixed-width padding: honour it
    classifier.model.train()
    try:
        assert not supports_packed(classifier.model)  # dropout would differ (MC dropout uses padded)
    finally:
        classifier.model.eval()
    assert not supports_packed(torch.nn.Linear(2, 2))


def test_packed_rejects_empty_input(classifier):
    with pytest.raises(ValueError, match="at least one"):
        packed_logits(classifier.model, [])


@pytest.mark.slow
def test_packed_matches_padded_on_the_demo_classifier(demo_spec_path, demo_classifier):
    import json

    demo = demo_classifier
    texts = [json.loads(line)["text"] for line in
             (demo_spec_path.parent / "val.jsonl").read_text().splitlines()[:256]]
    encoded, lengths, _ = encode(demo, texts)
    padded = np.zeros((len(texts), 3), np.float32)
    packed = np.zeros_like(padded)
    for batch in plan_batches(lengths, demo, 4096):
        padded[batch.rows] = run_batch(demo, encoded, batch)
    for batch in plan_packed_batches(lengths, 4096):
        packed[batch.rows] = run_batch(demo, encoded, batch)
    np.testing.assert_allclose(packed, padded, atol=1e-5)
    assert (packed.argmax(1) == padded.argmax(1)).all()
