"""The inference engine: same answers as transformers.pipeline, in input order, with settings."""

from __future__ import annotations

import numpy as np
import pytest

from textgate.errors import DataError
from textgate.infer import predict
from textgate.model import ModelSpec, load_classifier
from textgate.predictions import texts_fingerprint

TEXTS = [
    "i love this movie lol",
    "awful",
    "",
    "   ",
    "the game was not very good tbh " * 10,  # long: gets truncated
    "omg!!",
    "sad day, bad phone",
    "great new film tomorrow #fire",
    "meh",
    "that was so so okay",
] * 7


def pipeline_probabilities(classifier, texts, *, batch_size=32):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=classifier.model, tokenizer=classifier.tokenizer,
                    top_k=None, device="cpu")
    outputs = pipe(list(texts), batch_size=batch_size, truncation=True, max_length=classifier.max_length)
    return np.array([[{d["label"]: d["score"] for d in out}[name] for name in classifier.label_names]
                     for out in outputs])


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    return load_classifier(ModelSpec(model=str(tiny_model_dir)))


@pytest.mark.parametrize("token_budget", [1, 64, 4096])
def test_float32_matches_the_pipeline(classifier, token_budget):
    predictions = predict(classifier, TEXTS, token_budget=token_budget)
    expected = pipeline_probabilities(classifier, TEXTS)
    np.testing.assert_array_equal(predictions.probabilities.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(predictions.probabilities, expected, atol=1e-5)
    assert len(set(predictions.predicted)) > 1  # the fixture's outputs are not constant


def test_results_come_back_in_input_order(classifier):
    forward = predict(classifier, TEXTS)
    reverse = predict(classifier, TEXTS[::-1])
    np.testing.assert_allclose(forward.probabilities, reverse.probabilities[::-1], atol=1e-6)
    single = predict(classifier, [TEXTS[4]])
    np.testing.assert_allclose(single.probabilities[0], forward.probabilities[4], atol=1e-6)


def test_batches_respect_the_token_budget_and_cover_every_text(classifier):
    predictions = predict(classifier, TEXTS, token_budget=128)
    assert predictions.batch_sizes.sum() == len(TEXTS)
    widest = predictions.token_counts.max()
    assert predictions.batch_sizes[0] == 128 // widest  # longest first
    assert predictions.settings["engine"]["batches"] == len(predictions.batch_sizes)
    assert np.all(predictions.batch_seconds > 0)


def test_records_token_counts_settings_and_fingerprints(classifier):
    predictions = predict(classifier, TEXTS)
    assert predictions.token_counts[4] == classifier.max_length  # truncated
    assert predictions.token_counts[2] == 2  # [CLS] [SEP]
    assert predictions.truncated[4] and predictions.truncated.sum() == 7
    assert predictions.data_fingerprint == texts_fingerprint(TEXTS)
    assert predictions.model_fingerprint == classifier.fingerprint
    assert predictions.settings["model"]["effective_max_length"] == classifier.max_length
    assert predictions.settings["versions"]["torch"]
    np.testing.assert_allclose(predictions.probabilities.sum(1), 1, atol=1e-6)


def test_padding_to_max_length_gives_the_same_answers(tiny_model_dir, classifier):
    padded = load_classifier(ModelSpec(model=str(tiny_model_dir), padding="max_length"))
    np.testing.assert_allclose(predict(padded, TEXTS).probabilities, predict(classifier, TEXTS).probabilities,
                               atol=1e-5)


@pytest.mark.hardware
def test_bfloat16_agrees_closely(tiny_model_dir, classifier):
    bf16 = load_classifier(ModelSpec(model=str(tiny_model_dir), dtype="bfloat16"))
    fast, exact = predict(bf16, TEXTS), predict(classifier, TEXTS)
    assert fast.settings["engine"]["compute"] == "bfloat16 autocast"
    # A random tiny model with large weights is harder on bfloat16 than a trained one: bound
    # the typical error and the agreement, not the single worst probability.
    assert np.abs(fast.probabilities - exact.probabilities).mean() < 0.01
    assert (fast.predicted == exact.predicted).mean() >= 0.9
    assert fast.model_fingerprint != exact.model_fingerprint


def test_texts_over_the_limit_without_truncation_are_named(tiny_model_dir):
    strict = load_classifier(ModelSpec(model=str(tiny_model_dir), truncation=False))
    with pytest.raises(DataError, match=r"7 texts are longer than max_length 64 tokens \(rows 5, 15,.*truncation = true"):
        predict(strict, TEXTS)


def test_no_texts(classifier):
    predictions = predict(classifier, [])
    assert len(predictions) == 0
    assert predictions.probabilities.shape == (0, 3)


def test_interleaved_runs_give_the_same_answers_and_alternate(tiny_model_dir, classifier, monkeypatch):
    from textgate.infer import engine as infer

    short = load_classifier(ModelSpec(model=str(tiny_model_dir), max_length=16))
    calls = []
    original = infer.run_batch
    monkeypatch.setattr(infer, "run_batch", lambda c, e, b: calls.append(c.max_length) or original(c, e, b))
    both = infer.predict_interleaved([classifier, short], TEXTS, token_budget=256)
    np.testing.assert_allclose(both[0].probabilities, predict(classifier, TEXTS, token_budget=256).probabilities,
                               atol=1e-6)
    np.testing.assert_allclose(both[1].probabilities, predict(short, TEXTS, token_budget=256).probabilities,
                               atol=1e-6)
    assert both[0].settings["engine"]["interleaved"] is True
    interleaved_calls = calls[: len(both[0].batch_sizes) + len(both[1].batch_sizes)]
    assert interleaved_calls[:4] == [64, 16, 64, 16] or interleaved_calls[:2] == [64, 16]
    assert len(set(interleaved_calls[:6])) == 2  # neither run goes first to the end


def test_timing_rounds_alternate_sides_and_rotate_who_starts(tiny_model_dir, classifier, monkeypatch):
    from textgate.infer import engine as infer

    short = load_classifier(ModelSpec(model=str(tiny_model_dir), max_length=16))
    calls = []
    original = infer.run_batch
    monkeypatch.setattr(infer, "run_batch", lambda c, e, b: calls.append(c.max_length) or original(c, e, b))
    base, cand = infer.time_interleaved([classifier, short], TEXTS, token_budget=256, rounds=3)
    assert base.seconds.shape == (3, len(base.sizes)) and cand.seconds.shape == (3, len(cand.sizes))
    assert base.texts == cand.texts == len(TEXTS)
    assert (base.seconds > 0).all() and (cand.seconds > 0).all()
    per_round = len(base.sizes) + len(cand.sizes)
    assert len(calls) == 4 * per_round  # one warm-up round and three timed ones, every batch each
    starts = [calls[i * per_round] for i in range(4)]
    assert starts[0] != starts[1] and starts[:2] == starts[2:]  # who goes first rotates round by round
    assert len(set(calls[:4])) == 2  # within a round the sides alternate


def test_timing_needs_a_timed_round(classifier):
    from textgate.infer import time_interleaved

    with pytest.raises(ValueError, match="rounds must be >= 1"):
        time_interleaved([classifier], TEXTS, rounds=0)


class CountingRuntime:
    """A runtime that is not PyTorch: logits from token ids alone, with a record of each call."""

    name = "counting"

    def __init__(self, k):
        self.k = k
        self.calls = []

    def can_pack(self):
        return False

    def logits(self, input_ids, token_type_ids, *, width, pad_id, packed):
        self.calls.append((len(input_ids), width, packed))
        out = np.zeros((len(input_ids), self.k), dtype=np.float32)
        for row, ids in enumerate(input_ids):
            out[row, len(ids) % self.k] = 5.0  # the class is the token count modulo K
        return out


def test_the_engine_reaches_the_model_only_through_its_runtime(classifier):
    from dataclasses import replace

    from textgate.infer.batches import TorchRuntime, runtime_of
    from textgate.model import Runtime

    assert isinstance(runtime_of(classifier), TorchRuntime) and isinstance(runtime_of(classifier), Runtime)
    runtime = CountingRuntime(len(classifier.label_names))
    assert isinstance(runtime, Runtime)
    other = replace(classifier, model=None, runtime=runtime)
    texts = ["a", "a b c", "hello there world", "x y", ""] * 3
    predictions = predict(other, texts, token_budget=64)
    expected = [classifier.label_names[n % len(classifier.label_names)] for n in predictions.token_counts]
    assert list(predictions.predicted) == expected
    assert sum(n for n, _, _ in runtime.calls) == len(texts) and not any(p for _, _, p in runtime.calls)
    assert predictions.settings["engine"]["runtime"] == "counting"
    assert predict(classifier, texts).settings["engine"]["runtime"] == "torch"
