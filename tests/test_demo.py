"""Integration: the bundled demo classifier on the bundled TweetEval data (real model, real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DEMO
from test_infer import pipeline_probabilities

from textgate.cli import EXIT_OK, main
from textgate.data import read_dataset
from textgate.evaluation import evaluate
from textgate.infer import predict
from textgate.model import load_classifier, load_model_spec
from textgate.slices import DEMO_SLANG_PATTERN, parse_slice_flag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_classifier(demo_spec_path):
    return load_classifier(load_model_spec(demo_spec_path))


@pytest.fixture(scope="module")
def val(demo_classifier):
    return read_dataset(DEMO / "val.jsonl", label_names=demo_classifier.label_names)


def test_bundled_data_is_complete(val):
    assert len(val) == 2000
    assert len(read_dataset(DEMO / "test.jsonl")) == 12284
    assert val.label_names == ("negative", "neutral", "positive")


def test_demo_classifier_reaches_the_quality_bar_on_val(demo_classifier, val):
    report = evaluate(val, predict(demo_classifier, val.texts),
                      slices=[parse_slice_flag(f"slang={DEMO_SLANG_PATTERN}")])
    assert report.classification.macro.recall >= 0.60
    assert report.classification.invalid.count == 0
    assert report.slices[0].size > 30


def test_demo_classifier_equals_the_pipeline_on_200_texts(demo_classifier, val):
    texts = list(val.texts[:200])
    ours = predict(demo_classifier, texts).probabilities
    reference = pipeline_probabilities(demo_classifier, texts)
    np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_demo_command_runs_the_main_job(capsys, demo_spec_path, tmp_path):
    code = main(["eval", str(demo_spec_path), str(DEMO / "val.jsonl"), "--slice", f"slang={DEMO_SLANG_PATTERN}",
                 "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "slang" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["predictions"]["settings"]["model"]["adapter"].endswith("adapter")
    assert report["metrics"]["n"] == 2000


@pytest.mark.parametrize(("example", "expected"), [("gate-bf16.toml", EXIT_OK), ("gate-postmortem.toml", 1)])
def test_gate_examples_give_their_documented_exit_codes(capsys, tmp_path, example, expected):
    code = main(["gate", str(DEMO / example), "--cache-dir", str(tmp_path / "cache"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == expected, err
    report = json.loads(out)
    if expected:
        failed = {(c["name"], c["scope"]) for c in report["checks"] if c["status"] == "fail"}
        assert ("slice accuracy", "slang") in failed and ("flip rate", "overall") in failed
    else:
        assert report["comparison"]["flips"]["flip_rate"] < 0.01
