"""textgate: keep Hugging Face text classifiers honest from merge to production.

    from textgate import load_classifier, load_model_spec, predict, read_dataset, evaluate

    spec = load_model_spec("examples/tweet-sentiment/model.toml")
    classifier = load_classifier(spec)
    data = read_dataset("examples/tweet-sentiment/val.jsonl", label_names=classifier.label_names)
    report = evaluate(data, predict(classifier, data.texts))
    print(report.classification.accuracy)

Heavy libraries (torch, transformers, peft) load on first use, not on import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "AuditResult",
    "Classifier",
    "Comparison",
    "ConfigError",
    "DataError",
    "Dataset",
    "EvalReport",
    "GateConfig",
    "GateResult",
    "Guard",
    "GuardRules",
    "ModelLoadError",
    "ModelSpec",
    "Predictions",
    "SliceSpec",
    "TextgateError",
    "Thresholds",
    "audit_labels",
    "check_gate",
    "compare_predictions",
    "evaluate",
    "load_classifier",
    "load_gate_config",
    "load_model_spec",
    "load_predictions",
    "predict",
    "read_dataset",
    "run_gate",
    "save_predictions",
]

_HOME = {
    "AuditResult": "textgate.audit",
    "audit_labels": "textgate.audit",
    "Classifier": "textgate.model",
    "Comparison": "textgate.compare",
    "GateConfig": "textgate.gate",
    "GateResult": "textgate.gate",
    "Guard": "textgate.guard",
    "GuardRules": "textgate.guard",
    "Thresholds": "textgate.gate",
    "check_gate": "textgate.gate",
    "compare_predictions": "textgate.compare",
    "load_gate_config": "textgate.gate",
    "run_gate": "textgate.gate",
    "ConfigError": "textgate.errors",
    "DataError": "textgate.errors",
    "Dataset": "textgate.data",
    "EvalReport": "textgate.evaluation",
    "ModelLoadError": "textgate.errors",
    "ModelSpec": "textgate.model",
    "Predictions": "textgate.predictions",
    "SliceSpec": "textgate.slices",
    "TextgateError": "textgate.errors",
    "evaluate": "textgate.evaluation",
    "load_classifier": "textgate.model",
    "load_model_spec": "textgate.model",
    "load_predictions": "textgate.predictions",
    "predict": "textgate.infer",
    "read_dataset": "textgate.data",
    "save_predictions": "textgate.predictions",
}

if TYPE_CHECKING:
    from textgate.audit import AuditResult, audit_labels
    from textgate.compare import Comparison, compare_predictions
    from textgate.data import Dataset, read_dataset
    from textgate.errors import ConfigError, DataError, ModelLoadError, TextgateError
    from textgate.evaluation import EvalReport, evaluate
    from textgate.gate import (
        GateConfig,
        GateResult,
        Thresholds,
        check_gate,
        load_gate_config,
        run_gate,
    )
    from textgate.infer import predict
    from textgate.model import Classifier, ModelSpec, load_classifier, load_model_spec
    from textgate.predictions import Predictions, load_predictions, save_predictions
    from textgate.slices import SliceSpec


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'textgate' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
