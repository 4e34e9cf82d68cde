"""Integration: the bundled demo classifier on the bundled TweetEval data (real model, real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DEMO, REPO
from test_infer import pipeline_probabilities

from textgate.cli import EXIT_OK, main
from textgate.data import read_dataset
from textgate.evaluation import evaluate
from textgate.gate import load_gate_config
from textgate.hardware import detect_hardware
from textgate.infer import predict
from textgate.slices import load_slices_toml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def val(demo_classifier):
    return read_dataset(DEMO / "val.jsonl", label_names=demo_classifier.label_names)


def test_bundled_data_is_complete(val):
    assert len(val) == 2000
    assert len(read_dataset(DEMO / "test.jsonl")) == 12284
    assert val.label_names == ("negative", "neutral", "positive")


@pytest.mark.parametrize("gate_file", sorted(DEMO.glob("gate-*.toml")), ids=lambda p: p.name)
def test_demo_gate_files_slice_slang_as_the_demo_slices_file_does(gate_file):
    demo_slices = {spec.name: spec for spec in load_slices_toml(DEMO / "slices.toml")}
    for spec in load_gate_config(gate_file).slices:
        if spec.name in demo_slices:
            assert spec == demo_slices[spec.name], f"{gate_file.name}: slice {spec.name} differs from slices.toml"


def test_demo_classifier_reaches_the_quality_bar_on_val(demo_classifier, val):
    report = evaluate(val, predict(demo_classifier, val.texts),
                      slices=load_slices_toml(DEMO / "slices.toml"))
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
    code = main(["eval", str(demo_spec_path), str(DEMO / "val.jsonl"), "--slices", str(DEMO / "slices.toml"),
                 "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "slang" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["predictions"]["settings"]["model"]["adapter"].endswith("adapter")
    assert report["metrics"]["n"] == 2000


def run_demo_gate(capsys, cache, example):
    code = main(["gate", str(DEMO / example), "--cache-dir", str(cache), "--format", "json", "--no-progress"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def statuses(report):
    return {(c["name"], c["scope"]): c["status"] for c in report["checks"]}


@pytest.mark.hardware
def test_postmortem_gate_fails_on_quality_not_speed(capsys, demo_gate_cache):
    code, report, err = run_demo_gate(capsys, demo_gate_cache, "gate-postmortem.toml")
    assert code == 1, err
    failed = {check for check, status in statuses(report).items() if status == "fail"}
    assert ("slice accuracy", "slang") in failed and ("flip rate", "overall") in failed
    assert ("latency per text", "overall") not in failed


@pytest.mark.hardware
def test_adapter_v2_gate_is_the_same_on_every_cpu(capsys, demo_gate_cache):
    """The CI recipe's example: two float32 models of one architecture, so its verdict cannot
    depend on the CPU (examples/ci/github-actions.yml gates on it)."""
    code, report, err = run_demo_gate(capsys, demo_gate_cache, "gate-adapter-v2.toml")
    assert code == 0, err
    assert statuses(report)[("latency per text", "overall")] == "pass"
    assert "gate-adapter-v2.toml" in (REPO / "examples" / "ci" / "github-actions.yml").read_text()


@pytest.mark.hardware
def test_bf16_gate_passes_where_bf16_is_native_and_names_emulation_elsewhere(capsys, demo_gate_cache):
    code, report, err = run_demo_gate(capsys, demo_gate_cache, "gate-bf16.toml")
    hardware = detect_hardware()
    assert report["hardware"]["bf16"] == hardware.bf16 and report["hardware"]["cpu_model"] == hardware.cpu_model
    assert report["comparison"]["flips"]["flip_rate"] < 0.01
    failed = [check for check, status in statuses(report).items() if status == "fail"]
    latency = next(c for c in report["checks"] if c["name"] == "latency per text")
    if hardware.bf16 == "native":
        assert code == 0, err
        assert not failed
    else:
        # Emulated bf16 is several times slower: the gate fails on latency alone and says why.
        assert code == 1, err
        assert failed == [("latency per text", "overall")]
        assert latency["value"] > 1.0 and "Likely cause: candidate runs in bfloat16: bfloat16 is emulated" in latency["reason"]
        assert "warning: candidate runs in bfloat16: bfloat16 is emulated on this CPU" in err
