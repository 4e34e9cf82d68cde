"""Temperature scaling, its held-out evaluation and bootstrap, the calibration file through a
ModelSpec (predict/eval apply it), MC dropout, and every bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS, write_tiny_classifier

from textgate._internal.bootstrap import Scratch
from textgate.calibrate import (
    CalibrationPlan,
    apply_temperature,
    calibrate_temperature,
    check_uncalibrated_predictions,
    fit_temperature,
    heldout_examples,
    logits_from_probabilities,
    mc_dropout_curve,
    mc_dropout_metrics,
    paired_calibration_changes,
    parse_pass_counts,
    plan_calibration,
    read_calibration_file,
    uncalibrated_spec,
)
from textgate.calibrate.heldout import _per_example, _resampled_metrics
from textgate.calibrate.temperature import softmax
from textgate.cli import EXIT_OK, EXIT_USAGE, main
from textgate.errors import ConfigError, DataError
from textgate.evaluation.metrics import calibration_metrics
from textgate.model import ModelSpec
from textgate.predictions import Predictions

NAMES = ("negative", "neutral", "positive")


def _synthetic(n: int, k: int, temperature: float, seed: int = 0):
    """Labels drawn from softmax(z); the 'model' reports logits temperature * z, so the NLL-optimal
    temperature is `temperature` (up to sampling error)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    p = softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return z * temperature, y


# ---------------------------------------------------------------------------------------------
# ECE: the bootstrap's statistic on a hand-computed case, and an independent implementation
# ---------------------------------------------------------------------------------------------

# Eight examples, K = 3, all values dyadic so every sum below is exact in binary floating point.
# 15 equal-width bins, (lo, hi] with lo = i/15; confidence = the row's max.
HAND_P = np.array([
    [0.75, 0.125, 0.125],      # 1: true neg, conf .75 correct   -> bin 11 (0.733, 0.800]
    [0.125, 0.75, 0.125],      # 2: true pos, conf .75 wrong     -> bin 11
    [0.5, 0.25, 0.25],         # 3: true neg, conf .5 correct    -> bin 7  (0.467, 0.533]
    [0.0625, 0.0625, 0.875],   # 4: true pos, conf .875 correct  -> bin 13 (0.867, 0.933]
    [0.3125, 0.4375, 0.25],    # 5: true neg, conf .4375 wrong   -> bin 6  (0.400, 0.467]
    [0.625, 0.25, 0.125],      # 6: true neu, conf .625 wrong    -> bin 9  (0.600, 0.667]
    [0.0625, 0.0625, 0.875],   # 7: true pos, conf .875 correct  -> bin 13
    [0.25, 0.5, 0.25],         # 8: true neu, conf .5 correct    -> bin 7
])
HAND_Y = ["negative", "positive", "negative", "positive", "negative", "neutral", "positive", "neutral"]


def test_bootstrap_statistic_on_the_identity_resample_equals_the_hand_computed_case():
    # (calibration_metrics itself is pinned by hand-computed cases in tests/evaluation/test_metrics.py.)
    # Per bin: (count, accuracy, mean confidence, |acc - conf| * count)
    #   bin 11: 2, 1/2, 0.75,   0.25 * 2 = 0.5
    #   bin 7:  2, 1,   0.5,    0.5  * 2 = 1.0
    #   bin 13: 2, 1,   0.875,  0.125 * 2 = 0.25
    #   bin 6:  1, 0,   0.4375, 0.4375
    #   bin 9:  1, 0,   0.625,  0.625
    # ECE = (0.5 + 1.0 + 0.25 + 0.4375 + 0.625) / 8 = 2.8125 / 8 = 0.3515625
    # MCE = max(0.25, 0.5, 0.125, 0.4375, 0.625) = 0.625
    # Equal-mass, 15 bins over 8 examples: 8 bins of one example, so ECE = mean |conf - correct|
    #   = (0.25 + 0.75 + 0.5 + 0.125 + 0.4375 + 0.625 + 0.125 + 0.5) / 8 = 3.3125 / 8 = 0.4140625
    # Accuracy: rows 1, 3, 4, 7, 8 correct = 5/8.
    y = np.array([NAMES.index(v) for v in HAND_Y])
    row = _resampled_metrics(_per_example(y, HAND_P), np.arange(8)[None, :], Scratch(8))[0]
    assert row[:3].tolist() == [0.3515625, 0.4140625, 0.625]
    assert row[5] == 0.625
    # Brier and NLL: the same numbers as calibration_metrics.
    m = calibration_metrics(HAND_Y, HAND_P, label_names=NAMES)
    assert row[3:5] == pytest.approx([m.brier.value, m.nll.value], abs=1e-12)


def test_ece_equals_torchmetrics_to_1e_9():
    """Independent implementation: torchmetrics 1.9, top-label ECE with 15 equal-width bins from
    torch.linspace(0, 1, 16), each bin weighted by its share of examples (norm="l1"); norm="max"
    is the MCE over non-empty bins. Its bins are [lo, hi) while ours are (lo, hi], so
    confidences within 1e-6 of an edge are left out of the data. Its public
    `multiclass_calibration_error` casts confidences to float32 (agreement ~1e-7), so the 1e-9
    comparison feeds its binning-and-norm step `_ce_compute` float64 confidences (row max) and
    accuracies (argmax == label), computed with the same torch ops its update step uses."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    rng = np.random.default_rng(7)
    k = 4
    p = softmax(rng.normal(size=(6000, k)) * 2)
    y = rng.integers(0, k, size=6000)
    edges = np.linspace(0, 1, 16)
    keep = np.abs(p.max(axis=1)[:, None] - edges[None, :]).min(axis=1) > 1e-6
    p, y = p[keep], y[keep]
    names = ("a", "b", "c", "d")
    ours = calibration_metrics(np.array(names, dtype=object)[y], p, label_names=names)
    preds, target = torch.from_numpy(p), torch.from_numpy(y)
    confidences, predicted = preds.max(dim=1)
    accuracies = predicted.eq(target).to(torch.float64)
    assert abs(ours.ece_equal_width.value - _ce_compute(confidences, accuracies, 15, norm="l1").item()) < 1e-9
    assert abs(ours.mce.value - _ce_compute(confidences, accuracies, 15, norm="max").item()) < 1e-9
    public = multiclass_calibration_error(preds, target, num_classes=k, n_bins=15, norm="l1").item()
    assert abs(ours.ece_equal_width.value - public) < 1e-6
    assert ours.ece_equal_width.value > 0.01  # a real, non-trivial value was compared


# ---------------------------------------------------------------------------------------------
# Fitting the temperature
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("true_t", [2.5, 0.4, 12.0])
def test_recovers_a_known_temperature_within_2_percent(true_t):
    logits, y = _synthetic(20_000, 3, true_t)
    fit = fit_temperature(logits, y)
    assert fit.temperature == pytest.approx(true_t, rel=0.02)
    assert fit.nll_after < fit.nll_before and not fit.at_bound


def test_fit_is_the_nll_minimum_and_from_probabilities_equals_from_logits():
    logits, y = _synthetic(3000, 4, 1.7, seed=3)
    fit = fit_temperature(logits, y)

    def nll(t):
        return float(-np.mean(np.log(apply_temperature(logits, t)[np.arange(y.size), y])))

    assert nll(fit.temperature) == pytest.approx(fit.nll_after, abs=1e-12)
    assert nll(fit.temperature) < min(nll(fit.temperature * 0.999), nll(fit.temperature * 1.001))
    # log p is the logits up to a per-row constant: same fit, same scaled probabilities.
    from_p = fit_temperature(logits_from_probabilities(softmax(logits)), y)
    assert from_p.temperature == pytest.approx(fit.temperature, rel=1e-6)
    np.testing.assert_allclose(apply_temperature(logits_from_probabilities(softmax(logits)), 2.0),
                               apply_temperature(logits, 2.0), atol=1e-12)


def test_separable_data_reports_a_bound_not_an_estimate():
    z = np.array([[5.0, 0.0], [0.0, 5.0]] * 20)
    fit = fit_temperature(z, np.array([0, 1] * 20))
    assert fit.at_bound and fit.temperature == pytest.approx(math.exp(-4), rel=1e-3)
    y = np.array(["a", "b"] * 20, dtype=object)
    result = calibrate_temperature(y, softmax(z), label_names=("a", "b"), n_resamples=100)
    assert any("search bound" in note for note in result.notes)


# ---------------------------------------------------------------------------------------------
# Held-out evaluation and the paired bootstrap
# ---------------------------------------------------------------------------------------------


def _labelled(n=4000, t=2.0, seed=0):
    logits, y = _synthetic(n, 3, t, seed)
    return np.array(NAMES, dtype=object)[y], softmax(logits)


def test_split_is_stratified_seeded_and_evaluates_the_saved_temperature():
    y, p = _labelled()
    result = calibrate_temperature(y, p, label_names=NAMES, n_resamples=200)
    assert result.holdout == "split" and result.n_fit + result.n_eval == y.size
    eval_rows = np.array(result.eval_rows)
    for name in NAMES:  # each class split ~50/50
        assert abs((y[eval_rows] == name).sum() - (y == name).sum() / 2) <= 1
    after = calibration_metrics(y[eval_rows], apply_temperature(np.log(p[eval_rows]), result.temperature),
                                label_names=NAMES)
    assert result.metric("ece_equal_width").after == pytest.approx(after.ece_equal_width.value, abs=1e-12)
    assert result.metric("ece_equal_width").after < result.metric("ece_equal_width").before
    assert result.temperature == pytest.approx(2.0, rel=0.1)
    again = calibrate_temperature(y, p, label_names=NAMES, n_resamples=200)
    assert again.eval_rows == result.eval_rows and again.metrics == result.metrics
    other = calibrate_temperature(y, p, label_names=NAMES, n_resamples=200, seed=1)
    assert other.eval_rows != result.eval_rows


def test_paired_intervals_cover_the_points_and_accuracy_never_moves():
    y, p = _labelled()
    result = calibrate_temperature(y, p, label_names=NAMES, n_resamples=400)
    for m in result.metrics:
        if m.name != "mce":  # the max over bins is not smooth; its bootstrap can miss the point
            assert m.delta_ci[0] <= m.delta <= m.delta_ci[1], m
    accuracy = result.metric("accuracy")
    assert accuracy.delta == 0 and accuracy.delta_ci == (0.0, 0.0)
    nll = result.metric("nll")
    assert nll.delta_ci[1] < 0  # over-confident by T = 2: the fix is significant


def test_k_fold_pools_out_of_fold_predictions_and_refits_on_all_rows():
    y, p = _labelled(n=3000)
    result = calibrate_temperature(y, p, label_names=NAMES, k_folds=5, n_resamples=100)
    assert result.holdout == "k-fold" and result.n_eval == 3000 and len(result.fold_temperatures) == 5
    assert result.temperature == pytest.approx(fit_temperature(np.log(p), np.searchsorted(NAMES, y)).temperature)
    assert all(t == pytest.approx(2.0, rel=0.15) for t in result.fold_temperatures)


def test_separate_eval_set_fits_on_all_calibration_rows():
    y, p = _labelled(n=2000, seed=1)
    ey, ep = _labelled(n=1000, seed=2)
    result = calibrate_temperature(y, p, label_names=NAMES, eval_y_true=ey, eval_probabilities=ep, n_resamples=100)
    assert result.holdout == "eval-data" and (result.n_fit, result.n_eval) == (2000, 1000)
    assert result.eval_rows is None
    expected = calibration_metrics(ey, apply_temperature(np.log(ep), result.temperature), label_names=NAMES)
    assert result.after.ece_equal_mass.value == pytest.approx(expected.ece_equal_mass.value, abs=1e-12)
    # The public paired comparison of any two sets of probabilities gives the same table.
    changes = paired_calibration_changes(ey, ep, apply_temperature(logits_from_probabilities(ep), result.temperature),
                                         label_names=NAMES, n_resamples=100)
    for mine, theirs in zip(result.metrics, changes, strict=True):
        assert mine.name == theirs.name and mine.delta == pytest.approx(theirs.delta, abs=1e-12)
        assert mine.delta_ci == pytest.approx(theirs.delta_ci, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


def test_probabilities_rows_not_summing_to_one_are_refused():
    y, p = _labelled(n=50)
    bad = p.copy()
    bad[3] *= 1.5
    with pytest.raises(DataError, match=r"probabilities: probabilities rows must sum to 1.*row 3"):
        calibrate_temperature(y, bad, label_names=NAMES)
    with pytest.raises(DataError, match="sum to 1"):
        logits_from_probabilities(bad)


def test_label_ids_out_of_range_and_unknown_names_are_refused():
    logits, _ = _synthetic(10, 3, 1.0)
    with pytest.raises(DataError, match=r"class ids in 0\.\.2.*rows \[4\] hold \[3\]"):
        fit_temperature(logits, np.array([0, 1, 2, 0, 3, 1, 2, 0, 1, 2]))
    with pytest.raises(DataError, match="integer class ids"):
        fit_temperature(logits, np.array([0.5] * 10))
    y, p = _labelled(n=10)
    y[2] = "angry"
    with pytest.raises(DataError, match="unknown labels 'angry'"):
        calibrate_temperature(y, p, label_names=NAMES)


def test_mismatched_lengths_are_refused():
    logits, y = _synthetic(10, 3, 1.0)
    with pytest.raises(DataError, match=r"labels must have one entry per example of y_true \(10\); got 9"):
        fit_temperature(logits, y[:9])
    ys, p = _labelled(n=10)
    with pytest.raises(DataError, match=r"shape \(N, K\) = \(9, 3\).*got shape \(10, 3\)"):
        calibrate_temperature(ys[:9], p, label_names=NAMES)


@pytest.mark.parametrize("t", [0, -1.0, float("nan"), float("inf"), True])
def test_non_positive_or_non_finite_temperature_is_refused(t):
    with pytest.raises(ConfigError, match="temperature must be a finite number > 0"):
        apply_temperature(np.zeros((2, 3)), t)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"k_folds": 1}, "k_folds must be an integer from 2"),
    ({"fit_fraction": 1.0}, r"fit_fraction must be a number in \(0, 1\)"),
    ({"n_resamples": 10}, "n_resamples must be an integer >= 100"),
    ({"eval_y_true": ["negative"]}, "Pass both eval_y_true and eval_probabilities"),
])
def test_bad_settings_are_refused(kwargs, match):
    y, p = _labelled(n=20)
    with pytest.raises(ConfigError, match=match):
        calibrate_temperature(y, p, label_names=NAMES, **kwargs)


def test_fit_fraction_with_another_held_out_method_is_refused_not_ignored():
    y, p = _labelled(n=40)
    for other, named in (({"k_folds": 5}, "k_folds=5"), ({"eval_y_true": y, "eval_probabilities": p},
                                                          "a separate evaluation set")):
        with pytest.raises(ConfigError, match=f"fit_fraction=0.7 together with {named}") as caught:
            calibrate_temperature(y, p, label_names=NAMES, fit_fraction=0.7, n_resamples=100, **other)
        assert caught.value.field == "fit_fraction"
    # Left out, it is the 50/50 default; given alone, it is used.
    default = calibrate_temperature(y, p, label_names=NAMES, n_resamples=100)
    half = calibrate_temperature(y, p, label_names=NAMES, fit_fraction=0.5, n_resamples=100)
    assert default.eval_rows == half.eval_rows and "(50%)" in default.holdout_description
    larger = calibrate_temperature(y, p, label_names=NAMES, fit_fraction=0.75, n_resamples=100)
    assert larger.n_fit > default.n_fit and "(75%)" in larger.holdout_description


# ---------------------------------------------------------------------------------------------
# What `textgate calibrate` decides before it runs (calibrate/plan.py)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, CalibrationPlan("split", None, None, ())),
        ({"fit_fraction": 0.7}, CalibrationPlan("split", 0.7, None, ())),
        ({"k_folds": 5, "mc_dropout": "10,1,5"}, CalibrationPlan("k-fold", None, 5, (10, 1, 5))),
        ({"eval_data": True, "mc_dropout": [1, 2]}, CalibrationPlan("eval-data", None, None, (1, 2))),
    ],
)
def test_plan_names_the_held_out_method_and_the_mc_dropout_passes(kwargs, expected):
    assert plan_calibration(runs_model=True, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"runs_model": True, "eval_data": True, "k_folds": 3}, "--k-fold",
         "Choose one way to hold out data; got --eval-data and --k-fold."),
        ({"runs_model": True, "fit_fraction": 0.5, "k_folds": 3}, "--k-fold", "got --fit-split and --k-fold"),
        ({"runs_model": False, "eval_data": True}, "--eval-data", "--eval-data needs MODEL; with --predictions"),
        ({"runs_model": False, "mc_dropout": "1"}, "--mc-dropout", "runs the model, so it needs MODEL"),
        ({"runs_model": True, "mc_dropout": "0,5"}, "--mc-dropout", "pass counts >= 1 .* got '0,5'"),
        ({"runs_model": True, "mc_dropout": "1,two"}, "--mc-dropout", "got '1,two'"),
        ({"runs_model": True, "mc_dropout": ""}, "--mc-dropout", "got ''"),
        ({"runs_model": True, "mc_dropout": [True]}, "--mc-dropout", "got \\[True\\]"),
    ],
)
def test_plan_refuses_conflicting_or_impossible_options_naming_the_option(kwargs, field, match):
    with pytest.raises(ConfigError, match=match) as caught:
        plan_calibration(**kwargs)
    assert caught.value.field == field


def test_pass_counts_parse_from_the_command_line_form():
    assert parse_pass_counts("1,5, 10") == (1, 5, 10)
    with pytest.raises(ConfigError, match="e.g. 1,5,10,20,40"):
        parse_pass_counts("1,,5")


def _saved(*, probabilities=True, fingerprint="abc", temperature=None) -> Predictions:
    p = softmax(np.random.default_rng(0).normal(size=(4, 3)))
    model = {} if temperature is None else {"temperature": temperature}
    return Predictions(label_names=NAMES, predicted=np.array(NAMES, dtype=object)[p.argmax(1)],
                       probabilities=p if probabilities else None, settings={"model": model},
                       model_fingerprint=fingerprint)


def test_only_uncalibrated_predictions_with_probabilities_can_be_calibrated():
    check_uncalibrated_predictions(_saved(), path="raw.parquet")
    check_uncalibrated_predictions(_saved(temperature=1.0), path="raw.parquet")
    for saved, found in ((_saved(temperature=1.7), "temperature 1.7"), (_saved(probabilities=False), "no probabilities"),
                         (_saved(fingerprint=""), "temperature 1.0")):
        with pytest.raises(DataError, match=f"made by the model without calibration \\(found {found}\\)") as caught:
            check_uncalibrated_predictions(saved, path="p.parquet")
        assert (caught.value.field, caught.value.path) == ("predictions", "p.parquet")


def test_a_specs_calibration_file_is_set_aside_with_a_note():
    spec = ModelSpec(model="some/model", calibration="cal.toml")
    raw, note = uncalibrated_spec(spec)
    assert raw.calibration is None and raw.model == "some/model" and "ignoring" in note and "cal.toml" in note
    assert uncalibrated_spec(raw) == (raw, None)


def test_mc_dropout_runs_on_the_held_out_rows_or_the_separate_set():
    y, p = _labelled(n=40)
    texts = [f"t{i}" for i in range(40)]
    split = calibrate_temperature(y, p, label_names=NAMES, n_resamples=100)
    held_texts, held_labels = heldout_examples(split, texts, y)
    assert held_texts == [texts[i] for i in split.eval_rows] and list(held_labels) == list(y[list(split.eval_rows)])
    assert heldout_examples(split, texts, y, eval_texts=["e"], eval_labels=["neutral"]) == (["e"], ["neutral"])


# ---------------------------------------------------------------------------------------------
# The calibration file through a ModelSpec
# ---------------------------------------------------------------------------------------------

TEXTS = ["i love this lol", "awful day", "okay film", "omg so bad", "great game", "meh", "sad night",
         "happy new phone", "the old movie", "not good tbh", "so happy today", "bad phone", "fire game",
         "the day was ok", "sucks", "very good film", "not bad", "old sad movie", "lol okay", "great night"]


def _write_data(path: Path, offset: int) -> Path:
    rng = np.random.default_rng(offset)
    rows = [{"text": f"{TEXTS[i % len(TEXTS)]} {TEXTS[(i * 7 + offset) % len(TEXTS)]}",
             "label": LABELS[int(rng.integers(0, 3))]} for i in range(60)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_calibration_file_through_a_modelspec_changes_eval_ece_as_reported(capsys, tiny_model_dir, tmp_path):
    fit_data, eval_data = _write_data(tmp_path / "fit.jsonl", 1), _write_data(tmp_path / "eval.jsonl", 2)
    code, out, err = _run(capsys, "calibrate", tiny_model_dir, fit_data, "--eval-data", eval_data, "--out",
                          tmp_path / "cal.toml", "--resamples", 100, "--format", "json")
    assert code == EXIT_OK, err
    report = json.loads(out)
    ece = {m["name"]: m for m in report["metrics"]}["ece_equal_width"]
    assert report["temperature"] != pytest.approx(1.0, abs=0.05) and ece["before"] != ece["after"]

    (tmp_path / "plain.toml").write_text(f'model = "{tiny_model_dir}"\n')
    (tmp_path / "calibrated.toml").write_text(f'model = "{tiny_model_dir}"\ncalibration = "cal.toml"\n')
    measured = {}
    for name in ("plain", "calibrated"):
        code, out, err = _run(capsys, "eval", tmp_path / f"{name}.toml", eval_data, "--format", "json")
        assert code == EXIT_OK, err
        measured[name] = json.loads(out)
    assert measured["plain"]["calibration"]["ece_equal_width"]["value"] == pytest.approx(ece["before"], abs=1e-6)
    assert measured["calibrated"]["calibration"]["ece_equal_width"]["value"] == pytest.approx(ece["after"], abs=1e-6)
    assert measured["plain"]["metrics"]["accuracy"] == measured["calibrated"]["metrics"]["accuracy"]
    settings = measured["calibrated"]["predictions"]["settings"]["model"]
    assert settings["temperature"] == pytest.approx(report["temperature"])
    plain_fp = measured["plain"]["predictions"]["model_fingerprint"]
    assert report["model"]["fingerprint"] == plain_fp
    assert measured["calibrated"]["predictions"]["model_fingerprint"] != plain_fp


def _fingerprint(spec_path: Path) -> str:
    from textgate.model import identify_model, load_model_spec

    return identify_model(load_model_spec(spec_path)).fingerprint


def test_fingerprint_holds_the_temperature_not_the_path(tiny_model_dir, tmp_path):
    (tmp_path / "plain.toml").write_text(f'model = "{tiny_model_dir}"\n')
    fingerprint = _fingerprint(tmp_path / "plain.toml")
    for folder, t in (("a", 1.5), ("b", 1.5), ("c", 2.0)):
        (tmp_path / folder).mkdir()
        _write_file(tmp_path / folder / "cal.toml", temperature=t, fingerprint=fingerprint)
        (tmp_path / folder / "spec.toml").write_text(f'model = "{tiny_model_dir}"\ncalibration = "cal.toml"\n')
    a, b, c = (_fingerprint(tmp_path / f / "spec.toml") for f in "abc")
    assert a == b and a != c and a != fingerprint


def _write_file(path: Path, *, temperature=1.5, fingerprint="0" * 16, labels=LABELS, extra="") -> Path:
    names = ", ".join(json.dumps(n) for n in labels)
    path.write_text(
        f'schema_version = 1\nmethod = "temperature_scaling"\ntemperature = {temperature}\n'
        f'model_fingerprint = "{fingerprint}"\nlabel_names = [{names}]\ntextgate_version = "0.1.0"\n'
        f'created = "2026-01-01T00:00:00+00:00"\n{extra}\n[fitted_on]\npath = "x.jsonl"\ndata_fingerprint = "ab"\n'
        f'rows = 10\nholdout = "split"\n\n[heldout]\nrows = 10\nece_equal_width_before = 0.1\n')
    return path


@pytest.mark.parametrize(("change", "match"), [
    ({"temperature": 0}, r"Field 'temperature'.*greater than 0"),
    ({"temperature": -2.0}, r"Field 'temperature'.*greater than 0"),
    ({"temperature": "nan"}, r"Field 'temperature'"),
    ({"extra": "mystery = 1"}, r"Field 'mystery'.*Extra inputs"),
    ({"labels": ("neg", "neu", "pos")}, r"fitted for labels \['neg', 'neu', 'pos'\]"),
    ({"fingerprint": "ffffffffffffffff"}, r"fitted for model fingerprint ffffffffffffffff"),
])
def test_bad_calibration_file_is_a_config_error_naming_the_field_and_fix(tiny_model_dir, tmp_path, change, match):
    from textgate.model import load_classifier, load_model_spec

    (tmp_path / "plain.toml").write_text(f'model = "{tiny_model_dir}"\n')
    options = {"fingerprint": _fingerprint(tmp_path / "plain.toml"), **change}
    _write_file(tmp_path / "cal.toml", **options)
    (tmp_path / "spec.toml").write_text(f'model = "{tiny_model_dir}"\ncalibration = "cal.toml"\n')
    with pytest.raises(ConfigError, match=match) as caught:
        load_classifier(load_model_spec(tmp_path / "spec.toml"))
    assert caught.value.field == "calibration"
    assert "ModelSpec field 'calibration'" in str(caught.value) and "textgate calibrate" in str(caught.value)


def test_calibration_file_written_without_an_installed_textgate(tmp_path, monkeypatch):
    import importlib.metadata

    from textgate.calibrate import write_calibration_file

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    y, p = _labelled(n=40)
    result = calibrate_temperature(y, p, label_names=NAMES, n_resamples=100)
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    path = write_calibration_file(tmp_path / "cal.toml", result, model_fingerprint="ab", label_names=NAMES,
                                  data_path="x.jsonl", data_fingerprint="cd")
    assert read_calibration_file(path).textgate_version == "not installed"


def test_malformed_or_missing_calibration_file(tmp_path):
    (tmp_path / "cal.toml").write_text("temperature = [1.5\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as caught:
        read_calibration_file(tmp_path / "cal.toml")
    assert caught.value.field == "calibration"
    with pytest.raises(ConfigError, match="does not exist"):
        read_calibration_file(tmp_path / "missing.toml")


# ---------------------------------------------------------------------------------------------
# MC dropout
# ---------------------------------------------------------------------------------------------


def _classifier_with_dropout(tmp_path: Path, *, hidden: float, attention: float):
    from textgate.model import ModelSpec, load_classifier

    folder = write_tiny_classifier(tmp_path / f"drop-{hidden}-{attention}")
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=hidden, attention_probs_dropout_prob=attention, classifier_dropout=hidden)
    (folder / "config.json").write_text(json.dumps(config))
    return load_classifier(ModelSpec(model=str(folder)))


def test_mc_dropout_varies_outputs_through_attention_dropout_and_restores_the_model(tmp_path):
    from textgate.calibrate import mc_dropout_mode
    from textgate.infer import predict

    classifier = _classifier_with_dropout(tmp_path, hidden=0.0, attention=0.5)  # attention dropout only
    attention = classifier.model.config._attn_implementation
    before = predict(classifier, TEXTS).probabilities
    with mc_dropout_mode(classifier, seed=3):
        assert classifier.model.config._attn_implementation == "eager"
        first, second = (predict(classifier, TEXTS).probabilities for _ in range(2))
    with mc_dropout_mode(classifier, seed=3):
        replay = predict(classifier, TEXTS).probabilities
    assert np.abs(first - second).max() > 1e-3  # dropout in attention is active
    np.testing.assert_array_equal(first, replay)  # and seeded
    assert not classifier.model.training and classifier.model.config._attn_implementation == attention
    np.testing.assert_array_equal(predict(classifier, TEXTS).probabilities, before)


def test_mc_dropout_with_dropout_off_equals_the_deterministic_predictions(tmp_path):
    from textgate.infer import predict

    classifier = _classifier_with_dropout(tmp_path, hidden=0.0, attention=0.0)
    deterministic = predict(classifier, TEXTS).probabilities
    y = np.array(LABELS, dtype=object)[deterministic.argmax(axis=1)]
    run = mc_dropout_curve(classifier, TEXTS, y, passes=[1], seed=0)
    points = run.points
    expected = calibration_metrics(y, deterministic, label_names=LABELS)
    assert points[0].passes == 1 and points[0].accuracy == 1.0 and min(run.deterministic_seconds) > 0
    np.testing.assert_allclose(run.mean_probabilities, deterministic, atol=1e-5)
    assert points[0].ece_equal_width == pytest.approx(expected.ece_equal_width.value, abs=1e-5)
    assert points[0].nll == pytest.approx(expected.nll.value, abs=1e-5)


def test_mc_dropout_checks_labels_before_any_pass_and_records_seed_and_rows(tmp_path, monkeypatch):
    import textgate.infer

    classifier = _classifier_with_dropout(tmp_path, hidden=0.0, attention=0.0)
    y = np.array(LABELS, dtype=object)[np.arange(len(TEXTS)) % len(LABELS)]
    run = mc_dropout_curve(classifier, TEXTS, y, passes=[1, 2], seed=5)
    assert (run.seed, run.rows) == (5, len(TEXTS)) and run.summary()["seed"] == 5
    with pytest.raises(ValueError, match="token_budget must be a whole number of tokens >= 1; got 0"):
        mc_dropout_curve(classifier, TEXTS, y, passes=[1], token_budget=0)

    def no_pass(*args, **kwargs):
        raise AssertionError("a pass ran before the labels were checked")

    monkeypatch.setattr(textgate.infer, "predict", no_pass)
    with pytest.raises(DataError, match=rf"texts must have one entry per example of y_true \({len(TEXTS) - 1}\)"):
        mc_dropout_curve(classifier, TEXTS, y[:-1], passes=[40])
    bad = y.copy()
    bad[0] = "angry"
    with pytest.raises(DataError, match="unknown labels 'angry'"):
        mc_dropout_curve(classifier, TEXTS, bad, passes=[40])


def test_mc_dropout_curve_averages_the_first_n_passes(tmp_path):
    rng = np.random.default_rng(0)
    stack = np.stack([softmax(rng.normal(size=(30, 3))) for _ in range(4)])
    y = np.array(NAMES, dtype=object)[rng.integers(0, 3, size=30)]
    points = mc_dropout_metrics(y, stack, [1.0, 2.0, 3.0, 4.0], label_names=NAMES, passes=[4, 1, 2])
    assert [p.passes for p in points] == [1, 2, 4] and [p.seconds for p in points] == [1.0, 3.0, 10.0]
    mean2 = calibration_metrics(y, stack[:2].mean(axis=0), label_names=NAMES)
    assert points[1].nll == pytest.approx(mean2.nll.value, abs=1e-12)
    with pytest.raises(DataError, match="only 4 were run"):
        mc_dropout_metrics(y, stack, [1.0] * 4, label_names=NAMES, passes=[5])


def test_cli_mc_dropout_report_and_usage_errors(capsys, tiny_model_dir, tmp_path):
    data = _write_data(tmp_path / "data.jsonl", 3)
    code, out, err = _run(capsys, "calibrate", tiny_model_dir, data, "--k-fold", 3, "--mc-dropout", "1,2",
                          "--resamples", 100, "--out", tmp_path / "cal.toml", "--report", tmp_path / "report")
    assert code == EXIT_OK, err
    assert "Temperature scaling, held out" in out and "MC dropout" in out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["kind"] == "textgate.calibration" and [p["passes"] for p in report["mc_dropout"]["points"]] == [1, 2]
    assert (report["mc_dropout"]["seed"], report["mc_dropout"]["rows"]) == (0, 60)  # k-fold: every row held out
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<svg") == 2 and "Reliability diagram, before" in html and "default-src 'none'" in html
    assert "## Reliability" in (tmp_path / "report" / "report.md").read_text()
    assert read_calibration_file(tmp_path / "cal.toml").temperature == pytest.approx(report["temperature"])

    for argv, match in (
        (["--k-fold", 3, "--eval-data", data], "Choose one way to hold out data"),
        (["--mc-dropout", "0,5"], "pass counts >= 1"),
    ):
        code, out, err = _run(capsys, "calibrate", tiny_model_dir, data, *argv)
        assert code == EXIT_USAGE and match in err
    code, out, err = _run(capsys, "calibrate", "--predictions", tmp_path / "none.parquet", data, "--mc-dropout", "1")
    assert code == EXIT_USAGE and "needs MODEL" in err


def test_cli_calibrates_from_saved_predictions_and_refuses_calibrated_ones(capsys, tiny_model_dir, tmp_path):
    data = _write_data(tmp_path / "data.jsonl", 4)
    code, _, err = _run(capsys, "predict", tiny_model_dir, data, "--out", tmp_path / "raw.parquet")
    assert code == EXIT_OK, err
    code, out, err = _run(capsys, "calibrate", "--predictions", tmp_path / "raw.parquet", data, "--resamples", 100,
                          "--out", tmp_path / "cal.toml", "--format", "json")
    assert code == EXIT_OK, err
    from_file = json.loads(out)
    code, out, err = _run(capsys, "calibrate", tiny_model_dir, data, "--resamples", 100, "--out",
                          tmp_path / "cal2.toml", "--format", "json")
    assert code == EXIT_OK, err
    assert from_file["temperature"] == pytest.approx(json.loads(out)["temperature"], rel=1e-5)

    shutil.copy(tmp_path / "cal.toml", tmp_path / "spec-cal.toml")
    (tmp_path / "spec.toml").write_text(f'model = "{tiny_model_dir}"\ncalibration = "spec-cal.toml"\n')
    code, _, err = _run(capsys, "predict", tmp_path / "spec.toml", data, "--out", tmp_path / "scaled.parquet")
    assert code == EXIT_OK, err
    code, out, err = _run(capsys, "calibrate", "--predictions", tmp_path / "scaled.parquet", data)
    assert code == EXIT_USAGE and "made by the model without calibration" in err


@pytest.mark.slow
def test_report_html_lays_out_in_headless_chromium(tmp_path):
    """The reliability diagrams render in a real browser with the page's CSP (as the gate report)."""
    import subprocess

    from textgate.calibrate.report import (
        calibration_report_dict,
        render_calibration_html,
    )

    chromium = "/usr/bin/chromium"
    if shutil.which(chromium) is None:
        pytest.skip(f"{chromium} is not installed (apt-get install chromium)")
    y, p = _labelled(n=600)
    result = calibrate_temperature(y, p, label_names=NAMES, n_resamples=100)
    report = calibration_report_dict(result, model={"description": "synthetic <model>", "fingerprint": "x"},
                                     data={"path": "a.jsonl", "rows": 600, "fingerprint": "y"})
    html_path = tmp_path / "report.html"
    html_path.write_text(render_calibration_html(report), encoding="utf-8")
    assert "synthetic &lt;model&gt;" in html_path.read_text()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--enable-logging=stderr",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000", "--dump-dom"]
    dumped = subprocess.run([chromium, *flags, html_path.as_uri()], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert 'data-rendered="ok"' in dumped.stdout and dumped.stdout.count("<svg") == 2
    assert "Uncaught" not in dumped.stderr and "Content Security Policy" not in dumped.stderr
