"""Running a gate: data and both sides' predictions (cached or computed, interleaved when both
must run), each side evaluated, the paired comparison, both models timed on a sample in this
run (whatever the predictions came from), and the checks. The only impure part."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from textgate.data import Dataset, read_dataset
from textgate.errors import ConfigError
from textgate.evaluation import EvalReport, check_alignment, evaluate
from textgate.gate.cache import PredictionCache
from textgate.gate.checks import GateResult, check_gate
from textgate.gate.compare import Comparison, compare_predictions
from textgate.gate.config import GateConfig
from textgate.hardware import Hardware, bf16_emulated_note, detect_hardware
from textgate.latency import LatencyComparison, compare_latency, timing_windows
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
    latency: LatencyComparison | None  # timed in this run; None when skipped
    latency_skipped: str | None  # why there is no latency measurement
    hardware: Hardware
    notes: tuple[str, ...] = ()


def run_gate(config: GateConfig, *, cache: PredictionCache | None = None, progress: bool | None = None,
             time_latency: bool = True, say: Callable[[str], None] = lambda message: None) -> GateRun:
    """Run the gate described by ``config``; ``say`` receives one-line progress messages.
    ``time_latency=False`` skips timing the models (the latency check is then skipped, with the
    reason): for quick re-runs while iterating, never for the verdict CI relies on."""
    plans = {name: _plan(config, name) for name in ("baseline", "candidate")}
    label_names = _common_labels(config, plans)
    dataset = read_dataset(config.resolve(config.data.path), text_col=config.data.text_col,
                           label_col=config.data.label_col, label_names=label_names)
    say(f"data: {dataset.summary()}")
    hardware = detect_hardware()
    say(f"machine: {hardware.summary()}")
    notes = _hardware_notes(plans, hardware)
    for note in notes:
        say(f"warning: {note}")
    sides, classifiers = _predictions(config, plans, dataset, cache, progress, say)
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
    latency, skipped = (_measure_latency(config, plans, sides, classifiers, dataset, progress, say) if time_latency
                        else (None, "not timed: --no-latency was given (time it for the verdict CI relies on)"))
    cause = notes[0] if notes and plans["candidate"].identity is not None and \
        plans["candidate"].identity.spec.dtype == "bfloat16" else None
    result = check_gate(comparison, config.thresholds, latency=latency, latency_skipped=skipped, latency_cause=cause)
    return GateRun(config, dataset, baseline, candidate, evaluations, comparison, result, latency, skipped,
                   hardware, tuple(notes))


def _hardware_notes(plans: dict[SideName, _Plan], hardware: Hardware) -> list[str]:
    bf16_sides = [name for name, plan in plans.items()
                  if plan.identity is not None and plan.identity.spec.dtype == "bfloat16"]
    if not bf16_sides or hardware.bf16 == "native":
        return []
    return [f"{' and '.join(bf16_sides)} {'runs' if len(bf16_sides) == 1 else 'run'} in bfloat16: "
            + bf16_emulated_note(hardware)]


def _token_counts(sides: dict[SideName, Side], baseline, dataset: Dataset) -> np.ndarray:
    """The baseline's tokens per text: from its predictions, else by tokenizing."""
    counts = sides["baseline"].predictions.token_counts
    if counts is not None and len(counts) == len(dataset):
        return np.asarray(counts)
    ids = baseline.tokenizer(list(dataset.texts), truncation=True, max_length=baseline.max_length)["input_ids"]
    return np.array([len(i) for i in ids])


def _measure_latency(config, plans, sides, classifiers, dataset, progress, say) -> tuple[LatencyComparison | None, str | None]:
    """Both models timed interleaved on a seeded sample of the data, in this run."""
    if config.thresholds.max_latency_increase is None:
        return None, "the latency check is off (max_latency_increase = false)"
    files = [name for name, plan in plans.items() if plan.identity is None]
    if files:
        return None, (f"the {' and '.join(files)} {'is' if len(files) == 1 else 'are'} a predictions file: only "
                      "models can be timed in this run, and timings from another run or machine are not compared")
    if len(dataset) == 0:
        return None, "the data has no rows to time"
    from textgate.infer import time_interleaved

    for name in plans:
        if name not in classifiers:
            classifiers[name] = _load(plans[name], say)
    settings = config.settings
    token_counts = _token_counts(sides, classifiers["baseline"], dataset)
    rows, groups = timing_windows(token_counts, settings.latency_texts, seed=settings.seed)
    texts = [dataset.texts[i] for i in rows]
    say(f"timing both models on {len(texts)} texts ({groups.max() + 1} windows of neighbours in length): "
        f"1 warm-up round + {settings.latency_rounds} timed rounds, batches interleaved")
    base, cand = time_interleaved([classifiers["baseline"], classifiers["candidate"]], texts,
                                  token_budget=settings.token_budget, rounds=settings.latency_rounds,
                                  groups=groups, progress=progress)
    return compare_latency(base, cand, n_resamples=settings.bootstrap_resamples, seed=settings.seed,
                           confidence=1 - config.thresholds.alpha), None


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
    """Both sides' predictions (file, cache or run) and the classifiers loaded to run them."""
    from textgate._internal.versions import library_versions

    sides: dict[SideName, Side] = {}
    versions = library_versions() if any(p.identity is not None for p in plans.values()) else {}
    machine = detect_hardware().cache_identity() if versions else {}
    keys, to_run = {}, []
    for name, plan in plans.items():
        if plan.predictions_path is not None:
            predictions = plan.saved or load_any_predictions(plan.predictions_path, label_names=dataset.label_names)
            sides[name] = Side(name, f"predictions file {plan.predictions_path}", "predictions", predictions, False)
            continue
        keys[name] = PredictionCache.key(model_fingerprint=plan.identity.fingerprint,
                                         texts_fingerprint=texts_fingerprint(dataset.texts),
                                         token_budget=config.settings.token_budget, versions=versions,
                                         hardware=machine)
        cached = cache.load(keys[name]) if cache is not None else None
        if cached is not None:
            sides[name] = Side(name, _describe(plan), "model", cached, True)
            say(f"{name}: {_describe(plan)} (predictions from cache)")
        else:
            to_run.append(plan)
    classifiers = {plan.name: _load(plan, say) for plan in to_run}
    if to_run:
        from textgate.infer import predict_interleaved

        if len(to_run) == 2:
            say("running baseline and candidate with interleaved batches")
        results = predict_interleaved([classifiers[plan.name] for plan in to_run], dataset.texts,
                                      token_budget=config.settings.token_budget, progress=progress)
        for plan, predictions in zip(to_run, results, strict=True):
            sides[plan.name] = Side(plan.name, _describe(plan), "model", predictions, False)
            if cache is not None:
                cache.save(keys[plan.name], predictions)
    return sides, classifiers


def _load(plan: _Plan, say):
    from textgate.model import load_classifier

    classifier = load_classifier(plan.identity)
    say(f"{plan.name}: {_describe(plan)}")
    return classifier


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
