"""evaluate() + renderers: report.json is strict JSON with a schema version, and the Markdown
and terminal tables show the same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textgate.data import read_dataset
from textgate.errors import DataError
from textgate.evaluation import EVAL_REPORT_SCHEMA_VERSION, evaluate
from textgate.evaluation.report import (
    eval_tables,
    render_markdown,
    render_terminal,
    write_eval_reports,
)
from textgate.predictions import Predictions, texts_fingerprint
from textgate.slices import parse_slice_flag

NAMES = ("negative", "neutral", "positive")


@pytest.fixture
def dataset(tmp_path):
    rows = [("lol great", "positive"), ("bad", "negative"), ("", "neutral"), ("meh ok", "neutral"),
            ("omg awful", "negative"), ("fine", "positive")]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    return read_dataset(path)


def predictions_for(dataset, predicted, *, with_probabilities=True):
    probabilities = None
    if with_probabilities:
        probabilities = np.full((len(predicted), 3), 0.1, dtype=np.float32)
        for row, label in enumerate(predicted):
            probabilities[row, NAMES.index(label) if label in NAMES else 0] = 0.8
    return Predictions(label_names=NAMES, predicted=np.array(predicted, dtype=object),
                       probabilities=probabilities, token_counts=np.array([4, 3, 2, 4, 4, 3]),
                       batch_seconds=np.array([0.1, 0.2]), batch_sizes=np.array([4, 2]),
                       data_fingerprint=texts_fingerprint(dataset.texts))


def test_report_json_and_markdown(dataset, tmp_path):
    predicted = ["positive", "negative", "neutral", "positive", "LABEL_0", "positive"]
    report = evaluate(dataset, predictions_for(dataset, predicted), slices=[parse_slice_flag("slang=lol|omg")])
    json_path, md_path = write_eval_reports(report, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["schema_version"] == EVAL_REPORT_SCHEMA_VERSION
    assert data["metrics"]["accuracy"] == pytest.approx(4 / 6)
    assert data["metrics"]["invalid"]["values"] == [["LABEL_0", 1]]
    assert data["slices"][0] | {"metrics": None} == {
        "name": "slang", "size": 2, "fraction": pytest.approx(1 / 3), "metrics": None, "note": "",
        "definition": {"name": "slang", "kind": "regex", "pattern": "lol|omg", "case_sensitive": False},
        "accuracy_ci95": [pytest.approx(0.0945, abs=1e-4), pytest.approx(0.9055, abs=1e-4)]}
    assert data["data"]["empty_text_rows"] == [2]
    assert any("no visible text" in note for note in data["notes"])
    markdown = md_path.read_text()
    assert "**Accuracy 66.67%" in markdown
    assert "| slang | 2 | 33.33% | 50.00% | [9.5, 90.5] | -16.67 pts |" in markdown
    assert "1 invalid predictions are not shown" in markdown
    assert "LABEL_0 x1" in markdown


def test_terminal_shows_every_table(dataset):
    from rich.console import Console

    report = evaluate(dataset, predictions_for(dataset, list(dataset.labels)))
    console = Console(record=True, width=160)
    render_terminal(report, console)
    text = console.export_text()
    for table in eval_tables(report):
        assert table.title in text
    assert "100.00%" in text


def test_label_only_predictions_skip_calibration_with_a_note(dataset):
    predicted = list(dataset.labels)
    report = evaluate(dataset, Predictions(label_names=NAMES, predicted=np.array(predicted, dtype=object)))
    assert report.calibration is None and report.latency is None
    assert "Calibration" not in [t.title for t in eval_tables(report)]
    assert any("no probabilities" in n for n in report.notes)
    assert "## Notes" in render_markdown(report)


def test_unlabeled_data_cannot_be_evaluated(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps({"text": "hi"}) + "\n")
    unlabeled = read_dataset(path, require_labels=False, label_names=NAMES)
    with pytest.raises(DataError, match="has no labels.*--label-col"):
        evaluate(unlabeled, Predictions(label_names=NAMES, predicted=np.array(["neutral"], dtype=object)))


def test_truncated_texts_are_counted_in_the_report(dataset, tmp_path):
    from dataclasses import replace

    predicted = ["positive", "negative", "neutral", "neutral", "negative", "positive"]
    cut = replace(predictions_for(dataset, predicted), truncated=np.array([1, 0, 0, 1, 0, 0], dtype=bool),
                  settings={"model": {"effective_max_length": 128}})
    data = evaluate(dataset, cut).to_dict()
    assert data["predictions"]["truncated"] == 2
    assert "2 of 6 texts (33.3%) were longer than max_length (128 tokens) and were truncated" in " ".join(data["notes"])
    _, md_path = write_eval_reports(evaluate(dataset, cut), tmp_path / "out")
    assert "were truncated" in md_path.read_text()
    untouched = evaluate(dataset, predictions_for(dataset, predicted)).to_dict()
    assert not any("truncated" in note for note in untouched["notes"])
