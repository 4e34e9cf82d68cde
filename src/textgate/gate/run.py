"""Running a gate: data and both sides' predictions (cached or computed, interleaved when both
must run), each side evaluated, the paired comparison, and the checks. The only impure part."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from textgate.cache import PredictionCache
from textgate.compare import Comparison, compare_predictions
from textgate.data import Dataset, read_dataset
from textgate.errors import ConfigError
from textgate.evaluation import EvalReport, check_alignment, evaluate
from textgate.gate.checks import GateResult, check_gate
from textgate.gate.config import GateConfig
from textgate.predictions import Predictions, load_any_predictions, texts_fingerprint
from textgate.slices import slice_masks

if TYPE_CHECKING:
    from textgate.model import ModelIdentity

__all__ = ["GateRun", "Side", "run_gate"]

SideName = Literal["baseline", "candidate"]


@dataclass(frozen=True, eq=False)
class Side:
    name: SideName
    description: str
    source: Literal["model", "predictions"]
    predictions: Predictions
    cached: bool


@dataclass(frozen=True, eq=False)
class GateRun:
    config: GateConfig
    dataset: Dataset
    baseline: Side
    candidate: Side
    evaluations: dict[SideName, EvalReport]
    comparison: Comparison
    result: GateResult
    latency_measurement: Literal["interleaved", "separate"]


def run_gate(config: GateConfig, *, cache: PredictionCache | None = None, progress: bool | None = None,
             say: Callable[[str], None] = lambda message: None) -> GateRun:
    """Run the gate described by ``config``; ``say`` receives one-line progress messages."""
    plans = {name: _plan(config, name) for name in ("baseline", "candidate")}
    label_names = _common_labels(config, plans)
    dataset = read_dataset(config.resolve(config.data.path), text_col=config.data.text_col,
                           label_col=config.data.label_col, label_names=label_names)
    say(f"data: {dataset.summary()}")
    sides, interleaved = _predictions(config, plans, dataset, cache, progress, say)
    for side in sides.values():
        check_alignment(dataset, side.predictions, what=f"{side.name} predictions")
    baseline, candidate = sides["baseline"], sides["candidate"]
    token_counts = baseline.predictions.token_counts
    if token_counts is None:
        token_counts = candidate.predictions.token_counts
    masks = slice_masks(config.slices, texts=dataset.texts, columns=dataset.columns, token_counts=token_counts)
    evaluations = {name: evaluate(dataset, side.predictions, slices=config.slices) for name, side in sides.items()}
    comparison = compare_predictions(
        dataset.labels, baseline.predictions, candidate.predictions, label_names=dataset.label_names,
        slice_masks=masks.masks, n_resamples=config.settings.bootstrap_resamples, seed=config.settings.seed,
        confidence=1 - config.thresholds.alpha, n_example_flips=config.settings.example_flips,
    )
    result = check_gate(comparison, evaluations["baseline"], evaluations["candidate"], config.thresholds)
    return GateRun(config, dataset, baseline, candidate, evaluations, comparison, result,
                   "interleaved" if interleaved else "separate")


@dataclass(frozen=True)
class _Plan:
    """What one side needs before the data is read: a model identity or a predictions file."""

    name: SideName
    identity: ModelIdentity | None
    labels: tuple[str, ...] | None
    predictions_path: Path | None
    saved: Predictions | None = None  # a textgate predictions file, read once


def _plan(config: GateConfig, name: SideName) -> _Plan:
    side = getattr(config, name)
    if side.predictions is not None:
        from textgate.predictions import is_textgate_predictions, load_predictions

        path = config.resolve(side.predictions)
        saved = load_predictions(path) if is_textgate_predictions(path) else None
        return _Plan(name, None, saved.label_names if saved else None, path, saved)
    from textgate.model import identify_model, model_label_names

    identity = identify_model(config.model_spec(name))
    return _Plan(name, identity, model_label_names(identity), None)


def _common_labels(config: GateConfig, plans: dict[SideName, _Plan]) -> tuple[str, ...] | None:
    base, cand = plans["baseline"].labels, plans["candidate"].labels
    if base is not None and cand is not None and set(base) != set(cand):
        raise ConfigError(
            f"Field 'candidate' in {config.path}: the candidate's labels ({', '.join(cand)}) differ from the "
            f"baseline's ({', '.join(base)}). A label-mapping change is exactly what a gate must not "
            "hide: fix the candidate's id2label or label_map, or compare models with the same label set.",
            field="candidate", path=config.path)
    return base or cand


def _predictions(config, plans, dataset, cache, progress, say):
    from textgate.model import library_versions

    sides: dict[SideName, Side] = {}
    versions = library_versions() if any(p.identity is not None for p in plans.values()) else {}
    keys, to_run = {}, []
    for name, plan in plans.items():
        if plan.predictions_path is not None:
            predictions = plan.saved or load_any_predictions(plan.predictions_path, label_names=dataset.label_names)
            sides[name] = Side(name, f"predictions file {plan.predictions_path}", "predictions", predictions, False)
            continue
        keys[name] = PredictionCache.key(model_fingerprint=plan.identity.fingerprint,
                                         texts_fingerprint=texts_fingerprint(dataset.texts),
                                         token_budget=config.settings.token_budget, versions=versions)
        cached = cache.load(keys[name]) if cache is not None else None
        if cached is not None:
            sides[name] = Side(name, _describe(plan), "model", cached, True)
            say(f"{name}: {_describe(plan)} (predictions from cache)")
        else:
            to_run.append(plan)
    if to_run:
        for plan, predictions in zip(to_run, _run_models(to_run, dataset, config, progress, say), strict=True):
            sides[plan.name] = Side(plan.name, _describe(plan), "model", predictions, False)
            if cache is not None:
                cache.save(keys[plan.name], predictions)
    return sides, len(to_run) == 2


def _run_models(plans, dataset, config, progress, say) -> list[Predictions]:
    from textgate.infer import predict_interleaved
    from textgate.model import load_classifier

    classifiers = []
    for plan in plans:
        classifiers.append(load_classifier(plan.identity))
        say(f"{plan.name}: {_describe(plan)}")
    if len(classifiers) == 2:
        say("running baseline and candidate with interleaved batches")
    return predict_interleaved(classifiers, dataset.texts, token_budget=config.settings.token_budget,
                               progress=progress)


def _describe(plan: _Plan) -> str:
    spec = plan.identity.spec
    parts = [_short_path(spec.model) + (f" + adapter {_short_path(spec.adapter)}" if spec.adapter else ""),
             spec.dtype]
    if spec.max_length is not None:
        parts.append(f"max_length {spec.max_length}")
    if spec.padding != "longest":
        parts.append(f"padding {spec.padding}")
    if not spec.truncation:
        parts.append("no truncation")
    return ", ".join(parts)


def _short_path(location: str) -> str:
    """Relative to the working directory when inside it: reports are read by people."""
    try:
        return str(Path(location).relative_to(Path.cwd()))
    except ValueError:
        return location
