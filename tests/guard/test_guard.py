"""Pins textgate.guard: every rule, status and reason id, on hand-built Predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textgate._internal.toml import validate_table
from textgate.errors import ConfigError, DataError, TextgateError
from textgate.guard import REASONS, Guard, GuardedPrediction, GuardRules
from textgate.predictions import Predictions

LABELS = ("negative", "neutral", "positive")
CONFIDENT = [0.05, 0.05, 0.9]
UNSURE = [0.3, 0.3, 0.4]


def preds(predicted, probabilities=None, truncated=None) -> Predictions:
    return Predictions(
        label_names=LABELS,
        predicted=np.array(predicted, dtype=object),
        probabilities=None if probabilities is None else np.array(probabilities, dtype=np.float32),
        truncated=None if truncated is None else np.array(truncated, dtype=bool),
    )


def check_one(rules: GuardRules, text: str, label: str, probs=CONFIDENT, truncated=False) -> GuardedPrediction:
    guard = Guard.for_labels(LABELS, rules)
    return guard.check([text], preds([label], [probs], [truncated]))[0]


def test_a_clean_prediction_passes_unchanged():
    result = check_one(GuardRules(min_confidence=0.5), "great film", "positive")
    assert (result.status, result.label, result.valid, result.reasons) == ("ok", "positive", True, ())
    assert result.score == pytest.approx(0.9)
    assert result.scores == pytest.approx(dict(zip(LABELS, CONFIDENT, strict=True)))


def test_a_valid_label_k_is_normalized_but_not_valid():
    result = check_one(GuardRules(), "great film", "LABEL_2")
    assert (result.status, result.label, result.model_label) == ("ok", "positive", "LABEL_2")
    assert result.valid is False
    assert result.reasons == ("label_normalized",)
    assert result.score == pytest.approx(0.9)


@pytest.mark.parametrize("fallback, status, label", [(None, "rejected", None), ("neutral", "fallback", "neutral")])
def test_an_out_of_range_label_k_is_invalid(fallback, status, label):
    result = check_one(GuardRules(fallback_label=fallback), "great film", "LABEL_7")
    assert (result.status, result.label, result.valid) == (status, label, False)
    assert result.reasons == ("invalid_label",)
    assert result.score is None


def test_a_label_outside_allowed_labels_is_invalid():
    rules = GuardRules(allowed_labels=("negative", "positive"), fallback_label="negative")
    result = check_one(rules, "meh", "neutral", probs=[0.1, 0.8, 0.1])
    assert (result.status, result.label, result.reasons) == ("fallback", "negative", ("invalid_label",))


@pytest.mark.parametrize("rules, status, label", [
    (GuardRules(), "rejected", None),
    (GuardRules(empty_text="fallback", fallback_label="neutral"), "fallback", "neutral"),
])
@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(rules, status, label, text):
    result = check_one(rules, text, "positive")
    assert (result.status, result.label, result.valid, result.reasons) == (status, label, False, ("empty_text",))


@pytest.mark.parametrize("rules, status, label", [
    (GuardRules(min_confidence=0.5), "needs_review", None),
    (GuardRules(min_confidence=0.5, low_confidence="fallback", fallback_label="neutral"), "fallback", "neutral"),
])
def test_low_confidence(rules, status, label):
    result = check_one(rules, "great film", "positive", probs=UNSURE)
    assert (result.status, result.label, result.valid, result.reasons) == (status, label, False, ("low_confidence",))


def test_confidence_rules_are_skipped_without_probabilities():
    guard = Guard.for_labels(LABELS, GuardRules(min_confidence=0.9, short_text_chars=100))
    result = guard.check(["ok"], preds(["positive"]))[0]
    assert (result.status, result.valid, result.score, result.scores) == ("ok", True, None, None)


@pytest.mark.parametrize("action, status, label, valid", [
    ("flag", "ok", "positive", True),
    ("needs_review", "needs_review", None, False),
])
def test_truncated(action, status, label, valid):
    result = check_one(GuardRules(truncated=action), "a long text", "positive", truncated=True)
    assert (result.status, result.label, result.valid, result.reasons) == (status, label, valid, ("truncated",))
    assert result.truncated is True


def test_short_overconfident_text_is_treated_as_low_confidence():
    rules = GuardRules(short_text_chars=5, short_text_max_confidence=0.95)
    sure = [0.01, 0.01, 0.98]
    short = check_one(rules, " lol ", "positive", probs=sure)
    assert (short.status, short.label, short.reasons) == ("needs_review", None, ("short_text_overconfident",))
    assert check_one(rules, "lol omg", "positive", probs=sure).status == "ok"
    assert check_one(rules, "lol", "positive", probs=CONFIDENT).status == "ok"


def test_the_most_cautious_outcome_wins_and_every_reason_is_kept():
    rules = GuardRules(min_confidence=0.5, low_confidence="fallback", fallback_label="neutral",
                       truncated="needs_review")
    result = check_one(rules, "long text", "LABEL_2", probs=UNSURE, truncated=True)
    assert result.status == "needs_review"
    assert result.reasons == ("label_normalized", "low_confidence", "truncated")


@pytest.mark.parametrize("rules", [
    GuardRules(fallback_label="unknown"),
    GuardRules(allowed_labels=("negative", "positive"), fallback_label="neutral"),
    GuardRules(low_confidence="fallback"),
    GuardRules(empty_text="fallback"),
])
def test_a_bad_fallback_label_names_the_field(rules):
    with pytest.raises(ConfigError, match="fallback_label") as caught:
        Guard.for_labels(LABELS, rules)
    assert caught.value.field == "fallback_label"


def test_mismatched_inputs_are_data_errors():
    guard = Guard.for_labels(LABELS)
    with pytest.raises(DataError, match="2 texts but 1 predictions"):
        guard.check(["a", "b"], preds(["positive"]))
    other = Predictions(label_names=("no", "yes"), predicted=np.array(["yes"], dtype=object))
    with pytest.raises(DataError, match="label_names") as caught:
        guard.check(["a"], other)
    assert caught.value.field == "label_names"
    with pytest.raises(TextgateError, match="Guard.for_labels"):
        guard.predict(["a"])


def test_counts_have_every_reason_and_results_serialize_to_json():
    guard = Guard.for_labels(LABELS, GuardRules(min_confidence=0.5))
    results = guard.check(
        ["great", "", "hmm", "fine", "cut off"],
        preds(["positive", "positive", "positive", "LABEL_9", "LABEL_0"],
              [CONFIDENT, CONFIDENT, UNSURE, CONFIDENT, [0.9, 0.05, 0.05]],
              [False, False, False, False, True]),
    )
    assert [r.status for r in results] == ["ok", "rejected", "needs_review", "rejected", "ok"]
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    expected = dict.fromkeys(REASONS, 0) | {"empty_text": 1, "low_confidence": 1, "invalid_label": 1,
                                             "label_normalized": 1, "truncated": 1}
    assert Guard.counts(results) == expected
    encoded = json.loads(json.dumps([r.to_dict() for r in results]))
    assert encoded[4]["reasons"] == ["label_normalized", "truncated"]
    assert encoded[4]["label"] == "negative" and encoded[4]["truncated"] is True


def test_rules_load_from_a_toml_table_and_name_unknown_keys():
    rules = validate_table(GuardRules, {"min_confidence": 0.6, "truncated": "needs_review"},
                           origin="serve.toml", prefix="guard")
    assert rules.min_confidence == 0.6 and rules.truncated == "needs_review"
    with pytest.raises(ConfigError, match="guard.min_confidenc") as caught:
        validate_table(GuardRules, {"min_confidenc": 0.6}, origin="serve.toml", prefix="guard")
    assert caught.value.field == "guard.min_confidenc"
    with pytest.raises(ConfigError, match="guard.min_confidence"):
        validate_table(GuardRules, {"min_confidence": 1.5}, origin="serve.toml", prefix="guard")


def test_guard_predict_runs_the_tiny_model(tiny_model_dir):
    from textgate.model import ModelSpec, load_classifier

    classifier = load_classifier(ModelSpec(model=str(tiny_model_dir), max_length=8))
    guard = Guard(classifier, GuardRules(min_confidence=0.0), token_budget=64)
    texts = ["i love this movie", "", "the film was very very bad and not good at all today"]
    results = guard.predict(texts)
    assert [r.index for r in results] == [0, 1, 2]
    assert results[0].model_label in LABELS and results[0].score == pytest.approx(max(results[0].scores.values()))
    assert results[1].status == "rejected"
    assert results[2].truncated and "truncated" in results[2].reasons


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200b", "\x00\x01", "\u00ad", "\t\n\u2028", "\ufeff"])
def test_text_without_visible_characters_is_empty(text):
    result = check_one(GuardRules(), text, "positive")
    assert (result.status, result.label, result.valid, result.reasons) == ("rejected", None, False, ("empty_text",))


@pytest.mark.parametrize("text", ["a", "\u200bok", "🙂", "!", "\u00e9"])
def test_any_visible_character_makes_a_text_non_empty(text):
    assert "empty_text" not in check_one(GuardRules(), text, "positive").reasons


@pytest.mark.parametrize("probs", [[float("nan")] * 3, [0.1, float("inf"), 0.2], [0.5, 0.5, float("-inf")]])
def test_non_finite_probabilities_are_rejected_never_valid(probs):
    result = check_one(GuardRules(min_confidence=0.5), "great film", "negative", probs=probs)
    assert (result.status, result.label, result.valid, result.reasons) == ("rejected", None, False, ("non_finite",))
    assert result.score is None and result.scores is None
    json.dumps(result.to_dict(), allow_nan=False)  # an answer a strict JSON client can read
    assert Guard.counts([result])["non_finite"] == 1


def test_empty_text_wins_over_non_finite_output():
    result = check_one(GuardRules(), "\u200b", "negative", probs=[float("nan")] * 3)
    assert result.reasons == ("empty_text",)
