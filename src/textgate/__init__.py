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
    "BatcherClosed",
    "CalibrationResult",
    "Classifier",
    "Comparison",
    "ConfigError",
    "DataError",
    "Dataset",
    "DriftConfig",
    "DriftReport",
    "DriftThresholds",
    "DriftWindow",
    "EvalReport",
    "GateConfig",
    "GateResult",
    "GateRun",
    "Guard",
    "GuardRules",
    "LicenseRefused",
    "Lock",
    "LogQueueFull",
    "ModelLoadError",
    "ModelSpec",
    "OutputError",
    "Predictions",
    "QueueFull",
    "Runtime",
    "ServeConfig",
    "SliceSpec",
    "TextgateError",
    "Thresholds",
    "VerifyResult",
    "audit_labels",
    "build_lock",
    "calibrate_temperature",
    "check_gate",
    "compare_predictions",
    "create_app",
    "detect_drift",
    "evaluate",
    "load_classifier",
    "load_drift_config",
    "load_gate_config",
    "load_model_spec",
    "load_predictions",
    "predict",
    "read_dataset",
    "run_gate",
    "save_predictions",
    "verify_lock",
]

# Where each public name lives: one package per capability (README.md, "Layout").
_HOME = {
    "BatcherClosed": "textgate.errors",
    "ConfigError": "textgate.errors",
    "DataError": "textgate.errors",
    "LicenseRefused": "textgate.errors",
    "LogQueueFull": "textgate.errors",
    "ModelLoadError": "textgate.errors",
    "OutputError": "textgate.errors",
    "QueueFull": "textgate.errors",
    "TextgateError": "textgate.errors",
    "Dataset": "textgate.data",
    "read_dataset": "textgate.data",
    "Predictions": "textgate.predictions",
    "load_predictions": "textgate.predictions",
    "save_predictions": "textgate.predictions",
    "SliceSpec": "textgate.slices",
    "Classifier": "textgate.model",
    "ModelSpec": "textgate.model",
    "Runtime": "textgate.model",
    "load_classifier": "textgate.model",
    "load_model_spec": "textgate.model",
    "predict": "textgate.infer",
    "EvalReport": "textgate.evaluation",
    "evaluate": "textgate.evaluation",
    "Comparison": "textgate.gate.compare",
    "compare_predictions": "textgate.gate.compare",
    "GateConfig": "textgate.gate",
    "GateResult": "textgate.gate",
    "GateRun": "textgate.gate",
    "Thresholds": "textgate.gate",
    "check_gate": "textgate.gate",
    "load_gate_config": "textgate.gate",
    "run_gate": "textgate.gate",
    "DriftConfig": "textgate.drift",
    "DriftReport": "textgate.drift",
    "DriftThresholds": "textgate.drift",
    "DriftWindow": "textgate.drift",
    "detect_drift": "textgate.drift",
    "load_drift_config": "textgate.drift",
    "CalibrationResult": "textgate.calibrate",
    "calibrate_temperature": "textgate.calibrate",
    "AuditResult": "textgate.audit",
    "audit_labels": "textgate.audit",
    "Lock": "textgate.lock",
    "VerifyResult": "textgate.lock",
    "build_lock": "textgate.lock",
    "verify_lock": "textgate.lock",
    "Guard": "textgate.guard",
    "GuardRules": "textgate.guard",
    "ServeConfig": "textgate.serve",
    "create_app": "textgate.serve",
}

if TYPE_CHECKING:
    from textgate.audit import AuditResult, audit_labels
    from textgate.calibrate import CalibrationResult, calibrate_temperature
    from textgate.data import Dataset, read_dataset
    from textgate.drift import (
        DriftConfig,
        DriftReport,
        DriftThresholds,
        DriftWindow,
        detect_drift,
        load_drift_config,
    )
    from textgate.errors import (
        BatcherClosed,
        ConfigError,
        DataError,
        LicenseRefused,
        LogQueueFull,
        ModelLoadError,
        OutputError,
        QueueFull,
        TextgateError,
    )
    from textgate.evaluation import EvalReport, evaluate
    from textgate.gate import (
        GateConfig,
        GateResult,
        GateRun,
        Thresholds,
        check_gate,
        load_gate_config,
        run_gate,
    )
    from textgate.gate.compare import Comparison, compare_predictions
    from textgate.guard import Guard, GuardRules
    from textgate.infer import predict
    from textgate.lock import Lock, VerifyResult, build_lock, verify_lock
    from textgate.model import (
        Classifier,
        ModelSpec,
        Runtime,
        load_classifier,
        load_model_spec,
    )
    from textgate.predictions import Predictions, load_predictions, save_predictions
    from textgate.serve import ServeConfig, create_app
    from textgate.slices import SliceSpec


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'textgate' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
