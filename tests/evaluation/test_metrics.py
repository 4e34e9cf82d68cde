"""Pins textgate.evaluation.metrics: values equal scikit-learn's, hand-computed calibration and latency
numbers, input errors that name the argument, and order invariance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

import textgate.evaluation.metrics as metrics_module
from textgate.errors import ConfigError, DataError
from textgate.evaluation.metrics import (
    calibration_metrics,
    classification_metrics,
    invalid_labels,
    latency_metrics,
    slice_metrics,
)

TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def _random_case(seed: int, k: int, n: int, *, skew: float = 0.0, noise: float = 0.4):
    """Labels drawn with class weights ~ exp(-skew * i); a fraction `noise` of predictions random."""
    rng = np.random.default_rng(seed)
    names = tuple(f"class_{i}" for i in range(k))
    weights = np.exp(-skew * np.arange(k))
    true = rng.choice(k, size=n, p=weights / weights.sum())
    pred = np.where(rng.random(n) < noise, rng.integers(0, k, size=n), true)
    return [names[i] for i in true], [names[i] for i in pred], names


NAMES3 = ("negative", "neutral", "positive")

CASES = {
    "binary": _random_case(0, 2, 50),
    "k5_imbalanced": _random_case(1, 5, 500, skew=1.0),
    "k10_small": _random_case(2, 10, 37, noise=0.7),
    "k4_heavy_imbalance": _random_case(3, 4, 300, skew=2.5, noise=0.2),
    "never_predicted": (
        ["negative", "neutral", "positive", "neutral", "negative"],
        ["negative", "positive", "positive", "negative", "negative"],
        NAMES3,
    ),
    "absent_from_true": (
        ["negative", "positive", "positive", "negative"],
        ["negative", "neutral", "positive", "positive"],
        NAMES3,
    ),
    "absent_everywhere": (["negative", "positive"], ["positive", "positive"], NAMES3),
    "invalid_predictions": (
        ["negative", "neutral", "positive", "neutral", "negative", "positive"],
        ["negative", "LABEL_1", "positive", "neutral", "LABEL_2", "LABEL_1"],
        NAMES3,
    ),
    "all_invalid": (["negative", "positive"], ["LABEL_0", "LABEL_2"], NAMES3),
    "n_equals_1": (["neutral"], ["neutral"], NAMES3),
    "n_equals_1_wrong": (["neutral"], ["positive"], NAMES3),
    "all_correct": (["a", "b", "c", "b", "a"], ["a", "b", "c", "b", "a"], ("a", "b", "c")),
}


def _assert_close(actual, expected, path="root"):
    """Recursive comparison of to_dict() output: floats to TOL, everything else exactly."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), path
        for key in expected:
            _assert_close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_close(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=TOL, rel=TOL), path
    else:
        assert actual == expected, path


# ---------------------------------------------------------------------------------------------
# Classification = scikit-learn
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_classification_equals_sklearn(case):
    y_true, y_pred, names = case
    labels = list(names)
    result = classification_metrics(y_true, y_pred, label_names=names)
    report = classification_report(y_true, y_pred, labels=labels, zero_division=0, output_dict=True)

    assert result.n == len(y_true)
    assert abs(result.accuracy - accuracy_score(y_true, y_pred)) <= TOL
    assert [c.label for c in result.per_class] == labels
    for c in result.per_class:
        expected = report[c.label]
        assert abs(c.precision - expected["precision"]) <= TOL
        assert abs(c.recall - expected["recall"]) <= TOL
        assert abs(c.f1 - expected["f1-score"]) <= TOL
        assert c.support == expected["support"]
    for ours, key, average in ((result.macro, "macro avg", "macro"), (result.weighted, "weighted avg", "weighted")):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        for value, from_report, from_prfs in (
            (ours.precision, report[key]["precision"], p),
            (ours.recall, report[key]["recall"], r),
            (ours.f1, report[key]["f1-score"], f),
        ):
            assert abs(value - from_report) <= TOL
            assert abs(value - from_prfs) <= TOL
    assert result.confusion.dtype == np.int64
    np.testing.assert_array_equal(result.confusion, confusion_matrix(y_true, y_pred, labels=labels))


def test_invalid_predictions_count_as_wrong_but_not_as_any_class():
    y_true, y_pred, names = CASES["invalid_predictions"]
    result = classification_metrics(y_true, y_pred, label_names=names)
    assert result.accuracy == pytest.approx(3 / 6)
    assert result.confusion.sum() == 3  # the three invalid predictions are in no cell
    neutral = result.per_class[1]
    assert (neutral.precision, neutral.recall, neutral.support) == (1.0, 0.5, 2)
    assert result.invalid.count == 3
    assert result.invalid.values == (("LABEL_1", 2), ("LABEL_2", 1))


def test_undefined_metrics_are_recorded_with_reasons():
    y_true, y_pred, names = CASES["absent_everywhere"]
    result = classification_metrics(y_true, y_pred, label_names=names)
    assert result.undefined == (
        "precision of 'negative' is undefined: the model never predicted it; reported as 0.0",
        "precision of 'neutral' is undefined: the model never predicted it; reported as 0.0",
        "recall of 'neutral' is undefined: no example has it as true label; reported as 0.0",
        "f1 of 'neutral' is undefined: it is neither a true nor a predicted label; reported as 0.0",
    )
    assert result.per_class[0].precision == 0.0


def test_no_undefined_reasons_when_every_class_is_true_and_predicted():
    y_true, y_pred, names = CASES["all_correct"]
    result = classification_metrics(y_true, y_pred, label_names=names)
    assert result.undefined == ()
    assert result.accuracy == 1.0
    assert result.macro.f1 == 1.0


def test_confusion_is_read_only():
    y_true, y_pred, names = CASES["binary"]
    result = classification_metrics(y_true, y_pred, label_names=names)
    with pytest.raises(ValueError):
        result.confusion[0, 0] = 99


def test_accepts_numpy_object_and_str_arrays():
    y_true, y_pred, names = CASES["k5_imbalanced"]
    from_lists = classification_metrics(y_true, y_pred, label_names=names).to_dict()
    from_arrays = classification_metrics(
        np.array(y_true, dtype=object), np.array(y_pred), label_names=list(names)
    ).to_dict()
    assert from_arrays == from_lists


# ---------------------------------------------------------------------------------------------
# Invalid labels
# ---------------------------------------------------------------------------------------------


def test_invalid_labels_counts_and_orders_most_frequent_first():
    y_pred = ["a", "LABEL_2", "LABEL_2", "LABEL_0", "b", "LABEL_0", "zz", "LABEL_0", "yy"]
    result = invalid_labels(y_pred, label_names=("a", "b"))
    assert result.count == 7
    assert result.rate == pytest.approx(7 / 9)
    # Equal counts are ordered by value, so the order never depends on the example order.
    assert result.values == (("LABEL_0", 3), ("LABEL_2", 2), ("yy", 1), ("zz", 1))


def test_invalid_labels_none():
    result = invalid_labels(["a", "b", "a"], label_names=("a", "b"))
    assert (result.count, result.rate, result.values) == (0, 0.0, ())


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------

# conf / correct: 0.5 / yes, 0.6 / no, 0.9 / yes, 0.7 / no.
HAND_TRUE = ["b", "b", "a", "a"]
HAND_PROBS = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7]])
HAND_NAMES = ("a", "b", "c")


def test_calibration_hand_computed_example():
    result = calibration_metrics(HAND_TRUE, HAND_PROBS, label_names=HAND_NAMES, n_bins=2)
    # Equal width, edges 0, .5, 1: conf .5 sits in the first, right-closed bin (0, .5].
    #   bin 1: {.5 ok}             gap |1 - .5| = .5
    #   bin 2: {.6 no, .9 ok, .7 no} gap |1/3 - 2.2/3| = .4   -> ECE (1*.5 + 3*.4)/4 = .425
    assert result.ece_equal_width.value == pytest.approx(0.425, abs=TOL)
    assert result.mce.value == pytest.approx(0.5, abs=TOL)
    # Equal mass: {.5 ok, .6 no} gap .05, {.7 no, .9 ok} gap .3 -> ECE (2*.05 + 2*.3)/4 = .175
    assert result.ece_equal_mass.value == pytest.approx(0.175, abs=TOL)
    # Brier rows: .38, .86, .015, 1.34
    assert result.brier.value == pytest.approx(2.595 / 4, abs=TOL)
    assert result.nll.value == pytest.approx(-(math.log(.5) + math.log(.3) + math.log(.9) + math.log(.1)) / 4, abs=TOL)
    assert result.nll.value == pytest.approx(1.0762664, abs=1e-7)
    first, second = result.reliability
    assert (first.lower, first.upper, first.count, first.mean_confidence, first.accuracy) == (0.0, 0.5, 1, 0.5, 1.0)
    assert (second.lower, second.upper, second.count) == (0.5, 1.0, 3)
    assert second.mean_confidence == pytest.approx(2.2 / 3, abs=TOL)
    assert second.accuracy == pytest.approx(1 / 3, abs=TOL)


def test_calibration_estimators_say_how_they_were_computed():
    result = calibration_metrics(HAND_TRUE, HAND_PROBS, label_names=HAND_NAMES)
    assert result.ece_equal_width.estimator == "top-label ECE, 15 equal-width bins, L1, weighted by bin size"
    assert result.ece_equal_mass.estimator == "top-label ECE, 15 equal-mass bins, L1, weighted by bin size"
    assert "non-empty bins only" in result.mce.estimator
    assert "natural log" in result.nll.estimator and "1e-12" in result.nll.estimator
    assert len(result.reliability) == 15
    empty = [b for b in result.reliability if b.count == 0]
    assert empty and all(math.isnan(b.mean_confidence) and math.isnan(b.accuracy) for b in empty)
    # With one example per equal-mass bin both ECEs reduce to the mean |correct - conf|.
    assert result.ece_equal_mass.value == pytest.approx((0.5 + 0.6 + 0.1 + 0.7) / 4, abs=TOL)


def test_confidence_zero_and_one_fall_in_first_and_last_bins():
    result = calibration_metrics(["a", "b"], [[1.0, 0.0], [0.0, 1.0]], label_names=("a", "b"), n_bins=4)
    assert [b.count for b in result.reliability] == [0, 0, 0, 2]
    assert result.ece_equal_width.value == 0.0
    confidence_zero = metrics_module._equal_width_bins(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 4)
    assert [b.count for b in confidence_zero] == [1, 0, 0, 1]


def _sampled(seed: int, n: int, k: int, *, sharpen: float = 1.0):
    """True labels drawn from the (un-sharpened) probabilities: calibrated when sharpen == 1."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.7), size=n)
    true = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1).clip(max=k - 1)
    shown = p**sharpen
    shown /= shown.sum(axis=1, keepdims=True)
    names = tuple(f"c{i}" for i in range(k))
    return [names[i] for i in true], shown, names


def test_calibrated_by_construction_has_near_zero_ece():
    y_true, p, names = _sampled(7, 100_000, 3)
    result = calibration_metrics(y_true, p, label_names=names)
    assert result.ece_equal_width.value < 0.01
    assert result.ece_equal_mass.value < 0.01


def test_overconfident_model_has_large_ece():
    y_true, p, names = _sampled(7, 100_000, 3, sharpen=4.0)
    result = calibration_metrics(y_true, p, label_names=names)
    assert result.ece_equal_width.value > 0.1
    assert result.ece_equal_mass.value > 0.1


def test_nll_equals_sklearn_log_loss_and_brier_equals_numpy_formula():
    y_true, p, names = _sampled(3, 2_000, 4)
    result = calibration_metrics(y_true, p, label_names=names)
    assert result.nll.value == pytest.approx(log_loss(y_true, y_proba=p, labels=list(names)), rel=1e-10)
    onehot = (np.array(y_true)[:, None] == np.array(names)[None, :]).astype(float)
    assert result.brier.value == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)), abs=TOL)


def test_nll_clips_zero_probability_of_true_class():
    result = calibration_metrics(["a"], [[0.0, 1.0]], label_names=("a", "b"))
    assert result.nll.value == pytest.approx(-math.log(1e-12))


def test_argmax_ties_pick_the_first_class():
    result = calibration_metrics(["a", "b"], [[0.5, 0.5], [0.5, 0.5]], label_names=("a", "b"), n_bins=2)
    assert result.reliability[0].accuracy == 0.5  # "a" counts as predicted for both rows


@pytest.mark.parametrize(
    ("probabilities", "match"),
    [
        ([[0.5, 0.6], [0.5, 0.5]], r"probabilities rows must sum to 1 .*row 0 sums to 1\.1"),
        ([[2.0, -1.0], [0.5, 0.5]], r"probabilities must be >= 0; rows 0"),
        ([[np.nan, 0.5], [0.5, 0.5]], r"probabilities must be finite; rows 0 contain NaN"),
        ([[0.5, 0.5]], r"probabilities must have shape \(N, K\) = \(2, 2\).*got shape \(1, 2\)"),
        ([[0.3, 0.3, 0.4], [0.3, 0.3, 0.4]], r"probabilities must have shape .*got shape \(2, 3\)"),
        ([0.5, 0.5], r"probabilities must have shape"),
    ],
    ids=["row_sum", "negative", "nan", "too_few_rows", "too_many_columns", "one_dimensional"],
)
def test_bad_probabilities_raise_data_error(probabilities, match):
    with pytest.raises(DataError, match=match) as excinfo:
        calibration_metrics(["a", "b"], probabilities, label_names=("a", "b"))
    assert excinfo.value.field == "probabilities"


def test_float32_softmax_rounding_is_accepted():
    p = np.array([[0.1, 0.2, 0.7000003]], dtype=np.float32)
    assert calibration_metrics(["c"], p, label_names=("a", "b", "c")).n == 1


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True])
def test_bad_n_bins_raises_config_error(n_bins):
    with pytest.raises(ConfigError, match=r"n_bins must be an integer >= 1"):
        calibration_metrics(HAND_TRUE, HAND_PROBS, label_names=HAND_NAMES, n_bins=n_bins)


# ---------------------------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------------------------


def test_latency_known_percentiles():
    result = latency_metrics([0.15, 0.2, 0.3, 0.4], [1, 2, 4, 5])
    assert (result.batches, result.examples) == (4, 12)
    assert result.total_seconds == pytest.approx(1.05)
    assert result.throughput_per_s == pytest.approx(12 / 1.05)
    # Batch ms 150, 200, 300, 400 (linear interpolation between order statistics).
    assert result.batch_ms.p50 == pytest.approx(250.0)
    assert result.batch_ms.p95 == pytest.approx(385.0)
    assert result.batch_ms.p99 == pytest.approx(397.0)
    # Per example: 150 x1, 100 x2, 75 x4, 80 x5 -> sorted 75,75,75,75,80,80,80,80,80,100,100,150.
    assert result.per_example_ms.p50 == pytest.approx(80.0)
    assert result.per_example_ms.p95 == pytest.approx(122.5)
    assert result.per_example_ms.p99 == pytest.approx(144.5)


def test_latency_without_timings_explains_why():
    with pytest.raises(DataError, match=r"batch_seconds is empty: these predictions carry no timings"):
        latency_metrics([], [])


@pytest.mark.parametrize(
    ("seconds", "sizes", "match"),
    [
        ([0.1, 0.2], [4], r"batch_seconds and batch_sizes must be 1-D with one entry per batch"),
        ([0.1, 0.2], [4, 0], r"batch_sizes must be integers >= 1"),
        ([0.1, 0.2], [4.0, 2.0], r"batch_sizes must be integers >= 1"),
        ([0.1, -0.2], [4, 2], r"batch_seconds must be finite, >= 0 and not all 0"),
        ([0.0, 0.0], [4, 2], r"batch_seconds must be finite, >= 0 and not all 0"),
    ],
)
def test_bad_latency_inputs(seconds, sizes, match):
    with pytest.raises(DataError, match=match):
        latency_metrics(seconds, sizes)


# ---------------------------------------------------------------------------------------------
# Slices
# ---------------------------------------------------------------------------------------------


def test_slices_sizes_fractions_and_metrics():
    y_true, y_pred, names = CASES["invalid_predictions"]
    short = np.array([True, True, False, False, True, False])
    masks = {"short": short, "nothing": np.zeros(6, dtype=bool), "all": np.ones(6, dtype=bool)}
    result = slice_metrics(y_true, y_pred, masks, label_names=names)
    assert [(s.name, s.size) for s in result] == [("short", 3), ("nothing", 0), ("all", 6)]
    assert [s.fraction for s in result] == [0.5, 0.0, 1.0]
    expected_short = classification_metrics(
        np.array(y_true)[short], np.array(y_pred)[short], label_names=names
    ).to_dict()
    assert result[0].metrics.to_dict() == expected_short
    assert result[0].metrics.invalid.count == 2
    assert result[1].metrics is None
    assert result[1].note == "slice 'nothing' matched no examples; it has no metrics"
    assert result[2].metrics.to_dict() == classification_metrics(y_true, y_pred, label_names=names).to_dict()


def test_slice_mask_length_mismatch_names_the_slice():
    with pytest.raises(DataError, match=r"Mask of slice 'long texts' must have one entry per example \(3\); got shape \(2,\)"):
        slice_metrics(["a", "b", "a"], ["a", "a", "a"], {"long texts": np.array([True, False])}, label_names=("a", "b"))


def test_slice_mask_must_be_boolean():
    with pytest.raises(DataError, match=r"Mask of slice 'x' must be a boolean array; got dtype int64"):
        slice_metrics(["a", "b"], ["a", "a"], {"x": np.array([1, 0], dtype=np.int64)}, label_names=("a", "b"))


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (["a", "b", "a"], ["a", "b"], r"y_pred must have one entry per example of y_true \(3\); got 2"),
        ([], [], r"y_true is empty; metrics need at least one example"),
        (["a", "b"], [], r"y_pred is empty"),
        (["a", "dog", "cat", "dog"], ["a"] * 4,
         r"y_true must contain only labels in label_names \['a', 'b'\]; got unknown labels 'cat' \(1\), 'dog' \(2\)"),
        ([["a", "b"]], [["a", "b"]], r"y_true must be a 1-D sequence of label names; got an array of shape \(1, 2\)"),
    ],
    ids=["length_mismatch", "empty", "empty_pred", "unknown_true_label", "two_dimensional"],
)
def test_bad_classification_inputs(y_true, y_pred, match):
    with pytest.raises(DataError, match=match):
        classification_metrics(y_true, y_pred, label_names=("a", "b"))


@pytest.mark.parametrize(
    ("label_names", "match"),
    [((), r"label_names is empty"), (("a", "b", "a"), r"label_names must be unique; got duplicates 'a'")],
)
def test_bad_label_names(label_names, match):
    with pytest.raises(DataError, match=match):
        classification_metrics(["a"], ["a"], label_names=label_names)


def test_unknown_true_label_is_checked_by_every_entry_point():
    for call in (
        lambda: calibration_metrics(["zebra"], [[1.0, 0.0]], label_names=("a", "b")),
        lambda: slice_metrics(["zebra"], ["a"], {}, label_names=("a", "b")),
    ):
        with pytest.raises(DataError, match=r"got unknown labels 'zebra' \(1\)"):
            call()


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_order_invariance(seed):
    rng = np.random.default_rng(seed)
    y_true, p, names = _sampled(seed, 400, 3)
    # Rounding makes many confidence ties, the hard case for equal-mass bins.
    p = np.round(p, 1)
    p /= p.sum(axis=1, keepdims=True)
    y_pred = [names[i] for i in p.argmax(axis=1)]
    y_pred[:7] = ["LABEL_9"] * 3 + ["LABEL_8"] * 4
    mask = rng.random(400) < 0.3
    perm = rng.permutation(400)
    y_true_a, y_pred_a = np.array(y_true), np.array(y_pred)

    def everything(order):
        return {
            "classification": classification_metrics(y_true_a[order], y_pred_a[order], label_names=names).to_dict(),
            "calibration": calibration_metrics(y_true_a[order], p[order], label_names=names).to_dict(),
            "slices": [s.to_dict() for s in slice_metrics(y_true_a[order], y_pred_a[order], {"m": mask[order]}, label_names=names)],
        }

    _assert_close(everything(perm), everything(np.arange(400)))


def test_latency_invariant_to_batch_order():
    seconds, sizes = np.array([0.3, 0.1, 0.25, 0.05]), np.array([8, 2, 8, 1])
    perm = np.array([2, 0, 3, 1])
    _assert_close(latency_metrics(seconds[perm], sizes[perm]).to_dict(), latency_metrics(seconds, sizes).to_dict())


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------


def test_to_dict_is_strict_json():
    y_true, y_pred, names = CASES["invalid_predictions"]
    records = [
        classification_metrics(y_true, y_pred, label_names=names),
        calibration_metrics(HAND_TRUE, HAND_PROBS, label_names=HAND_NAMES),  # has empty (NaN) bins
        latency_metrics([0.1, 0.2], [3, 4]),
        *slice_metrics(y_true, y_pred, {"none": np.zeros(6, dtype=bool)}, label_names=names),
    ]
    for record in records:
        text = json.dumps(record.to_dict(), allow_nan=False)
        assert json.loads(text) == record.to_dict()
    as_dict = records[0].to_dict()
    assert as_dict["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert as_dict["invalid"]["values"] == [["LABEL_1", 2], ["LABEL_2", 1]]
    assert records[1].to_dict()["reliability"][0]["mean_confidence"] is None


def test_all_is_sorted_and_importable():
    assert metrics_module.__all__ == sorted(metrics_module.__all__)
    assert all(hasattr(metrics_module, name) for name in metrics_module.__all__)


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [(8, 10, (0.4901624, 0.9433178)), (0, 10, (0.0, 0.2775328)), (10, 10, (0.7224672, 1.0)),
     (660, 1000, (0.6301, 0.6887))],
)
def test_wilson_interval_matches_published_values(successes, n, expected):
    from textgate.evaluation.metrics import wilson_interval

    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)
