"""Pins textgate.gate.compare and the pieces it assembles (deltas, mcnemar, flips): McNemar
equals scipy, bootstrap intervals reproduced by a naive loop in the documented draw order,
point values equal textgate.evaluation.metrics, hand-built flip and label-shift cases, and
input errors that name the argument."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import textgate._internal.bootstrap as bootstrap_module
from textgate.errors import ConfigError, DataError
from textgate.evaluation.metrics import calibration_metrics, classification_metrics
from textgate.gate.compare import compare_predictions, mcnemar_midp
from textgate.predictions import Predictions

NAMES = ("negative", "neutral", "positive")
TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def _random_case(n: int, seed: int):
    """Two noisy 3-class models with probabilities; predictions sometimes differ from the argmax
    and sometimes are invalid, so ECE correctness and invalid labels are both exercised."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    y_true = np.array([NAMES[i] for i in y], dtype=object)

    def model(strength: float) -> Predictions:
        logits = rng.normal(size=(n, 3))
        logits[np.arange(n), y] += strength
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        predicted = np.array([NAMES[i] for i in p.argmax(axis=1)], dtype=object)
        swap = rng.random(n) < 0.1
        predicted[swap] = [NAMES[i] for i in rng.integers(0, 3, swap.sum())]
        predicted[rng.random(n) < 0.05] = "LABEL_2"
        return Predictions(label_names=NAMES, predicted=predicted, probabilities=p)

    return y_true, model(1.0), model(1.4)


def _labels_only(labels) -> Predictions:
    return Predictions(label_names=("a", "b", "c"), predicted=np.array(labels, dtype=object))


# Hand-built flips: rows 1, 4 harmful; 3, 5 beneficial; 6 other (b -> c, true a); 7 wrong on
# both sides but unchanged; candidate row 4 is the invalid "LABEL_9".
FLIP_TRUE = ["a", "a", "b", "b", "c", "c", "a", "b", "c", "a"]
FLIP_BASE = ["a", "a", "b", "c", "c", "a", "b", "a", "c", "a"]
FLIP_CAND = ["a", "b", "b", "b", "LABEL_9", "c", "c", "a", "c", "a"]


def _flip_case(**kwargs):
    return compare_predictions(FLIP_TRUE, _labels_only(FLIP_BASE), _labels_only(FLIP_CAND),
                               label_names=("a", "b", "c"), n_resamples=100, **kwargs)


def _interval(deltas, confidence=0.95):
    return np.quantile(deltas, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])


# ---------------------------------------------------------------------------------------------
# McNemar
# ---------------------------------------------------------------------------------------------

GRID = [(0, 0), (0, 5), (3, 3), (60, 0), (10, 25), (400, 460), (5000, 5200), (1, 0), (2, 3),
        (100, 101), (7, 7), (9000, 11000), (9999, 10001)]


@pytest.mark.parametrize(("b", "c"), GRID)
def test_mcnemar_equals_scipy_exact_and_mid_p(b, c):
    result = mcnemar_midp(b, c)
    n, k = b + c, min(b, c)
    assert (result.baseline_only_correct, result.candidate_only_correct, result.discordant) == (b, c, n)
    if n == 0:
        assert (result.p_exact, result.p_value) == (1.0, 1.0)
        return
    p_exact = stats.binomtest(k, n, 0.5).pvalue
    pmf = stats.binom.pmf(k, n, 0.5)
    # b == c: only the observed outcome ties, so it counts by half (Fagerland et al.'s own code).
    mid_p = 1 - pmf / 2 if b == c else min(1.0, max(0.0, p_exact - pmf))
    assert result.p_exact == pytest.approx(p_exact, rel=1e-9, abs=0)
    assert result.p_value == pytest.approx(mid_p, rel=1e-9, abs=0)
    assert 0 <= result.p_value <= result.p_exact <= 1


@pytest.mark.parametrize(("b", "c"), GRID)
def test_mcnemar_is_symmetric(b, c):
    one, other = mcnemar_midp(b, c), mcnemar_midp(c, b)
    assert (one.p_exact, one.p_value) == (other.p_exact, other.p_value)
    assert (one.baseline_only_correct, one.candidate_only_correct) == (other.candidate_only_correct,
                                                                     other.baseline_only_correct)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_mcnemar_rejects_non_counts(bad):
    with pytest.raises(DataError, match=r"McNemar count b must be an integer >= 0") as excinfo:
        mcnemar_midp(bad, 3)
    assert excinfo.value.field == "b"


def test_comparison_mcnemar_counts_examples_only_one_model_got_right():
    result = _flip_case()
    assert (result.mcnemar.baseline_only_correct, result.mcnemar.candidate_only_correct) == (2, 2)
    assert result.mcnemar.p_exact == 1.0


# ---------------------------------------------------------------------------------------------
# Bootstrap, reproduced by hand
# ---------------------------------------------------------------------------------------------


def _naive_values(y_true, side: Predictions, idx, with_ece: bool) -> list[float]:
    report = classification_metrics(y_true[idx], side.predicted[idx], label_names=NAMES)
    values = [report.accuracy, report.macro.f1, *(c.recall for c in report.per_class), report.invalid.rate]
    if with_ece:
        values.append(calibration_metrics(y_true[idx], side.probabilities[idx],
                                          label_names=NAMES).ece_equal_width.value)
    return values


def test_overall_intervals_equal_a_naive_loop_in_the_documented_draw_order(monkeypatch):
    # Chunks of 7 rows (200 is not a multiple) to show chunked draws equal one big draw.
    monkeypatch.setattr(bootstrap_module, "_CHUNK_ELEMENTS", 7 * 60 + 3)
    y_true, base, cand = _random_case(60, seed=1)
    result = compare_predictions(y_true, base, cand, label_names=NAMES, n_resamples=200, seed=7)

    rng = np.random.default_rng(7)
    all_idx = rng.integers(0, 60, size=(200, 60))
    deltas = np.array([np.subtract(_naive_values(y_true, cand, idx, True),
                                   _naive_values(y_true, base, idx, True)) for idx in all_idx])
    assert [m.name for m in result.metrics] == ["accuracy", "macro_f1", "recall:negative",
                                                "recall:neutral", "recall:positive",
                                                "invalid_label_rate", "ece_equal_width"]
    for column, metric in enumerate(result.metrics):
        low, high = _interval(deltas[:, column])
        assert (metric.ci_low, metric.ci_high) == pytest.approx((low, high), abs=TOL), metric.name
        assert metric.n == 60

    # The plain accuracy formula, as a reader would write it.
    base_ok, cand_ok = base.predicted == y_true, cand.predicted == y_true
    accuracy = [np.mean(cand_ok[idx]) - np.mean(base_ok[idx]) for idx in all_idx]
    low, high = _interval(accuracy)
    assert (result.metrics[0].ci_low, result.metrics[0].ci_high) == pytest.approx((low, high), abs=TOL)


def test_chunked_draws_give_the_same_comparison_as_unchunked(monkeypatch):
    y_true, base, cand = _random_case(50, seed=2)
    masks = {"first half": np.arange(50) < 25}
    whole = compare_predictions(y_true, base, cand, label_names=NAMES, slice_masks=masks,
                                n_resamples=150).to_dict()
    monkeypatch.setattr(bootstrap_module, "_CHUNK_ELEMENTS", 1)  # one resample per chunk
    assert compare_predictions(y_true, base, cand, label_names=NAMES, slice_masks=masks,
                               n_resamples=150).to_dict() == whole


def test_slice_interval_equals_a_naive_loop_with_its_own_generator():
    y_true, base, cand = _random_case(80, seed=3)
    rng = np.random.default_rng(0)
    masks = {"everything": np.ones(80, dtype=bool), "some": rng.random(80) < 0.4}
    result = compare_predictions(y_true, base, cand, label_names=NAMES, slice_masks=masks,
                                 n_resamples=300, seed=11, confidence=0.9)

    rows = np.flatnonzero(masks["some"])
    base_ok, cand_ok = (base.predicted == y_true)[rows], (cand.predicted == y_true)[rows]
    slice_rng = np.random.default_rng([11, 2])  # position 1 in mask order
    all_idx = slice_rng.integers(0, rows.size, size=(300, rows.size))
    low, high = _interval([np.mean(cand_ok[idx]) - np.mean(base_ok[idx]) for idx in all_idx], 0.9)
    some = result.slices[1]
    assert (some.name, some.size) == ("some", rows.size)
    assert (some.accuracy.ci_low, some.accuracy.ci_high) == pytest.approx((low, high), abs=TOL)
    assert some.accuracy.n == rows.size
    assert result.bootstrap == "paired bootstrap, 300 resamples, seed 11, 90% percentile interval"


def test_identical_candidate_has_zero_intervals_p_one_and_no_flips():
    y_true, base, _ = _random_case(40, seed=4)
    result = compare_predictions(y_true, base, base, label_names=NAMES, n_resamples=100,
                                 slice_masks={"all": np.ones(40, dtype=bool)})
    for metric in result.metrics:
        assert (metric.delta, metric.ci_low, metric.ci_high) == (0.0, 0.0, 0.0), metric.name
    assert (result.mcnemar.p_value, result.mcnemar.p_exact, result.mcnemar.discordant) == (1.0, 1.0, 0)
    assert (result.flips.flipped, result.flips.example_rows) == (0, ())
    assert np.trace(result.flips.matrix) == 40
    assert result.label_shift.total_variation == 0.0
    assert (result.slices[0].accuracy.ci_low, result.slices[0].accuracy.ci_high) == (0.0, 0.0)


def test_same_seed_same_result_other_seed_other_interval():
    y_true, base, cand = _random_case(120, seed=5)
    masks = {"half": np.arange(120) % 2 == 0}

    def run(seed):
        return compare_predictions(y_true, base, cand, label_names=NAMES, slice_masks=masks,
                                   n_resamples=200, seed=seed)

    first, again, other = run(3), run(3), run(4)
    assert first.to_dict() == again.to_dict()
    assert (first.metrics[0].ci_low, first.metrics[0].ci_high) != (other.metrics[0].ci_low,
                                                                   other.metrics[0].ci_high)
    assert first.slices[0].accuracy.ci_low != other.slices[0].accuracy.ci_low or \
        first.slices[0].accuracy.ci_high != other.slices[0].accuracy.ci_high
    assert first.metrics[0].delta == other.metrics[0].delta  # point values do not depend on seed


# ---------------------------------------------------------------------------------------------
# Point values
# ---------------------------------------------------------------------------------------------


def test_point_values_equal_textgate_metrics_on_the_full_data():
    y_true, base, cand = _random_case(200, seed=6)
    result = compare_predictions(y_true, base, cand, label_names=NAMES, n_resamples=100)
    full = np.arange(200)
    for metric, b, c in zip(result.metrics, _naive_values(y_true, base, full, True),
                            _naive_values(y_true, cand, full, True)):
        assert (metric.baseline, metric.candidate) == pytest.approx((b, c), abs=TOL), metric.name
        assert metric.delta == pytest.approx(c - b, abs=TOL)
        assert metric.ci_low <= metric.ci_high
    directions = {m.name: m.higher_is_better for m in result.metrics}
    assert directions["accuracy"] and directions["macro_f1"] and directions["recall:neutral"]
    assert not directions["invalid_label_rate"] and not directions["ece_equal_width"]
    assert result.notes == ()


def test_ece_is_left_out_with_a_note_when_a_side_has_no_probabilities():
    y_true, base, cand = _random_case(50, seed=7)
    labels_only = Predictions(label_names=NAMES, predicted=cand.predicted)
    result = compare_predictions(y_true, base, labels_only, label_names=NAMES, n_resamples=100)
    assert [m.name for m in result.metrics][-1] == "invalid_label_rate"
    assert result.notes == ("ece_equal_width not compared: candidate has no probabilities",)


def test_probability_columns_follow_each_side_own_label_order():
    y_true, base, cand = _random_case(60, seed=8)
    order = [2, 0, 1]
    permuted = Predictions(label_names=tuple(NAMES[i] for i in order), predicted=cand.predicted,
                           probabilities=cand.probabilities[:, order])
    kwargs = dict(label_names=NAMES, n_resamples=100)
    assert compare_predictions(y_true, base, permuted, **kwargs).to_dict() == \
        compare_predictions(y_true, base, cand, **kwargs).to_dict()


def test_slice_values_equal_metrics_on_the_slice():
    y_true, base, cand = _random_case(90, seed=9)
    mask = np.arange(90) < 30
    result = compare_predictions(y_true, base, cand, label_names=NAMES, n_resamples=100,
                                 slice_masks={"head": mask})
    head = result.slices[0]
    b = classification_metrics(y_true[mask], base.predicted[mask], label_names=NAMES).accuracy
    c = classification_metrics(y_true[mask], cand.predicted[mask], label_names=NAMES).accuracy
    assert (head.accuracy.baseline, head.accuracy.candidate) == pytest.approx((b, c), abs=TOL)
    assert head.flips.n == 30 and head.note == ""
    assert set(head.flips.example_rows) <= set(range(30))
    base_ok, cand_ok = (base.predicted == y_true)[mask], (cand.predicted == y_true)[mask]
    assert head.mcnemar.baseline_only_correct == int(np.sum(base_ok & ~cand_ok))
    assert head.mcnemar.candidate_only_correct == int(np.sum(cand_ok & ~base_ok))


# ---------------------------------------------------------------------------------------------
# Flips and label shift
# ---------------------------------------------------------------------------------------------


def test_flips_counts_rates_and_matrix_with_an_invalid_row_and_column():
    flips = _flip_case().flips
    assert (flips.n, flips.flipped, flips.harmful, flips.beneficial, flips.other) == (10, 5, 2, 2, 1)
    assert (flips.flip_rate, flips.harmful_rate, flips.beneficial_rate) == (0.5, 0.2, 0.2)
    assert flips.matrix_labels == ("a", "b", "c", "(invalid)")
    np.testing.assert_array_equal(flips.matrix, [[3, 1, 1, 0],
                                                 [0, 1, 1, 0],
                                                 [0, 1, 1, 1],
                                                 [0, 0, 0, 0]])
    assert flips.example_rows == (1, 4, 3, 5, 6)  # harmful, beneficial, other; sorted in each


def test_flip_matrix_has_no_invalid_row_without_invalid_predictions():
    cand = ["a", "b", "b", "b", "c", "c", "c", "a", "c", "a"]
    flips = compare_predictions(FLIP_TRUE, _labels_only(FLIP_BASE), _labels_only(cand),
                                label_names=("a", "b", "c"), n_resamples=100).flips
    assert flips.matrix_labels == ("a", "b", "c") and flips.matrix.shape == (3, 3)
    assert flips.matrix.sum() == 10


def test_example_rows_take_harmful_flips_first_and_are_seeded():
    assert set(_flip_case(n_example_flips=1).flips.example_rows) <= {1, 4}
    rows = _flip_case(n_example_flips=3).flips.example_rows
    assert rows[:2] == (1, 4) and rows[2] in {3, 5}
    picks = {_flip_case(n_example_flips=1, seed=seed).flips.example_rows for seed in range(20)}
    assert picks == {(1,), (4,)}  # a random harmful row, chosen by the seed
    assert _flip_case(n_example_flips=0).flips.example_rows == ()


def test_label_shift_and_total_variation():
    shift = _flip_case().label_shift
    assert shift.labels == ("a", "b", "c", "(invalid)")
    assert shift.baseline_share == pytest.approx((0.5, 0.2, 0.3, 0.0), abs=TOL)
    assert shift.candidate_share == pytest.approx((0.3, 0.3, 0.3, 0.1), abs=TOL)
    assert shift.delta == pytest.approx((-0.2, 0.1, 0.0, 0.1), abs=TOL)
    assert shift.total_variation == pytest.approx(0.2, abs=TOL)


def test_to_dict_is_strict_json():
    y_true, base, cand = _random_case(30, seed=10)
    result = compare_predictions(y_true, base, cand, label_names=NAMES, n_resamples=100,
                                 slice_masks={"none": np.zeros(30, dtype=bool)})
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["flips"]["matrix"] == result.flips.matrix.tolist()
    assert data["slices"][0]["accuracy"] is None
    assert data["metrics"][0]["name"] == "accuracy"


# ---------------------------------------------------------------------------------------------
# Slices and input errors
# ---------------------------------------------------------------------------------------------


def test_empty_slice_has_no_comparison_and_says_why():
    result = _flip_case(slice_masks={"nothing": np.zeros(10, dtype=bool)})
    empty = result.slices[0]
    assert (empty.size, empty.accuracy, empty.flips, empty.mcnemar) == (0, None, None, None)
    assert empty.note == "slice 'nothing' matched no examples; it has no comparison"


def test_slice_mask_length_mismatch_names_the_slice():
    with pytest.raises(DataError, match=r"Mask of slice 'long texts' must have one entry per "
                                        r"example \(10\); got shape \(9,\)") as excinfo:
        _flip_case(slice_masks={"long texts": np.ones(9, dtype=bool)})
    assert excinfo.value.field == "long texts"


def test_mismatched_lengths_name_the_side():
    with pytest.raises(DataError, match=r"candidate must have one entry per example of y_true "
                                        r"\(10\); got 9") as excinfo:
        compare_predictions(FLIP_TRUE, _labels_only(FLIP_BASE), _labels_only(FLIP_CAND[:9]),
                            label_names=("a", "b", "c"))
    assert excinfo.value.field == "candidate"


def test_label_set_mismatch_names_both_sets():
    y_true, base, cand = _random_case(20, seed=11)
    other = Predictions(label_names=("negative", "neutral", "mixed"), predicted=cand.predicted,
                        probabilities=cand.probabilities)
    with pytest.raises(ConfigError, match=r"candidate.label_names \['mixed', 'negative', 'neutral'\] "
                                          r"must be the same set as label_names \['negative', "
                                          r"'neutral', 'positive'\]"):
        compare_predictions(y_true, base, other, label_names=NAMES)


def test_bad_probabilities_say_which_side():
    y_true, base, cand = _random_case(20, seed=12)
    bad = Predictions(label_names=NAMES, predicted=base.predicted, probabilities=base.probabilities * 2)
    with pytest.raises(DataError, match=r"^baseline probabilities rows must sum to 1") as excinfo:
        compare_predictions(y_true, bad, cand, label_names=NAMES)
    assert excinfo.value.field == "baseline.probabilities"


@pytest.mark.parametrize(
    ("kwargs", "error", "field", "match"),
    [
        ({"n_resamples": 99}, ConfigError, "n_resamples", r"n_resamples must be an integer >= 100; got 99"),
        ({"n_resamples": 200.0}, ConfigError, "n_resamples", r"must be an integer >= 100; got 200.0"),
        ({"confidence": 0.5}, ConfigError, "confidence",
         r"confidence must be a number in the open interval \(0.5, 1\); got 0.5"),
        ({"confidence": 1.0}, ConfigError, "confidence", r"confidence must be a number in the open"),
        ({"confidence": 95}, ConfigError, "confidence", r"in the open interval .*got 95"),
        ({"seed": -1}, ConfigError, "seed", r"seed must be an integer >= 0; got -1"),
        ({"n_example_flips": -1}, ConfigError, "n_example_flips", r"n_example_flips must be an integer >= 0"),
        ({"y_true": ["a"] * 9 + ["z"]}, DataError, "y_true", r"y_true must contain only labels in"),
        ({"y_true": []}, DataError, "y_true", r"y_true is empty"),
        ({"baseline": list(FLIP_BASE)}, DataError, "baseline",
         r"baseline must be a textgate Predictions record; got list"),
        ({"slice_masks": {"x": np.ones(10)}}, DataError, "x", r"Mask of slice 'x' must be a boolean array"),
    ],
)
def test_bad_inputs_raise_errors_that_name_the_argument(kwargs, error, field, match):
    args = {"y_true": FLIP_TRUE, "baseline": _labels_only(FLIP_BASE), "candidate": _labels_only(FLIP_CAND)}
    args.update(kwargs)
    with pytest.raises(error, match=match) as excinfo:
        compare_predictions(args.pop("y_true"), args.pop("baseline"), args.pop("candidate"),
                            label_names=("a", "b", "c"), **args)
    assert excinfo.value.field == field
