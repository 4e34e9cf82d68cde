"""Pins textgate.evaluation.registry: every entry is complete, directions are right, per-class
and renamed ids resolve, and the records' metric fields use the registry's ids."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

import textgate.evaluation.registry as registry_module
from textgate.errors import ConfigError
from textgate.evaluation.metrics import CalibrationMetrics
from textgate.evaluation.registry import (
    METRICS,
    RENAMED_METRICS,
    MetricInfo,
    metric_info,
)


def test_every_entry_has_a_label_unit_direction_and_scope():
    for name, info in METRICS.items():
        assert name == info.name and info.label and info.description
        assert info.unit in typing.get_args(registry_module.Unit)
        assert info.direction in typing.get_args(registry_module.Direction)
        assert info.scope in typing.get_args(registry_module.Scope)
        assert json.loads(json.dumps(info.to_dict(), allow_nan=False)) == info.to_dict()
    labels = [info.label for info in METRICS.values()]
    assert len(labels) == len(set(labels))  # reports name each metric unambiguously


def test_directions_units_and_probabilities():
    higher = {name for name, info in METRICS.items() if info.higher_is_better}
    assert {"accuracy", "macro_f1", "weighted_f1", "recall", "throughput_per_s"} <= higher
    assert not higher & {"ece_equal_width", "ece_equal_mass", "mce", "brier", "nll", "invalid_label_rate",
                         "latency_per_batch_p99_ms", "latency_per_text_ms", "flip_rate", "label_shift"}
    needs_p = {name for name, info in METRICS.items() if info.needs_probabilities}
    assert needs_p == {"ece_equal_width", "ece_equal_mass", "mce", "brier", "nll"}
    assert {name for name, info in METRICS.items() if info.unit == "ms"} == {
        "latency_per_batch_p50_ms", "latency_per_batch_p99_ms", "latency_per_text_p50_ms",
        "latency_per_text_p99_ms", "latency_per_text_ms"}
    # Latency ids say what one value describes: a batch's wall time or a text's share of it.
    assert all(info.scope == name.split("_")[2] for name, info in METRICS.items() if info.unit == "ms")


def test_per_class_and_renamed_ids_resolve():
    recall = metric_info("recall:negative")
    assert (recall.name, recall.label, recall.direction) == ("recall:negative", "recall of negative", "higher")
    assert metric_info("recall") == METRICS["recall"]
    assert metric_info("ece") == METRICS["ece_equal_width"]
    assert metric_info("total_variation") == METRICS["label_shift"]
    assert metric_info("latency_p99_ms").scope == "batch"
    assert all(new in METRICS and old not in METRICS for old, new in RENAMED_METRICS.items())


@pytest.mark.parametrize("name", ["colour", "accuracy:negative", "ece_equal_width:negative", ""])
def test_an_unknown_id_is_a_config_error_listing_the_known_ones(name):
    with pytest.raises(ConfigError, match=r"Unknown metric.*accuracy, .*recall:<label>"):
        metric_info(name)


def test_the_calibration_record_names_its_metrics_by_registry_id():
    estimates = {f.name for f in dataclasses.fields(CalibrationMetrics)} - {"n", "reliability"}
    assert estimates <= METRICS.keys()


def test_all_is_sorted_and_importable():
    assert registry_module.__all__ == sorted(registry_module.__all__)
    assert all(hasattr(registry_module, name) for name in registry_module.__all__)
    assert isinstance(METRICS["accuracy"], MetricInfo)
