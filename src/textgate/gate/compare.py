"""Paired comparison of a baseline and a candidate classifier on the same labeled examples.

Both models predicted the same N examples, so every question is asked *per example*: which
examples changed prediction (flips), which got fixed or broken (McNemar), how each metric moved
(paired bootstrap of the delta), and whether the predicted-label mix shifted.

Glossary (as in :mod:`textgate.evaluation.metrics`): ``N`` examples, ``K`` classes, ``label_names`` the K
class names in display order. A prediction outside ``label_names`` (e.g. a raw ``LABEL_2``) is
*invalid*: wrong, a prediction of no class, and shown as one extra label ``"(invalid)"`` in the
flip matrix and the label shift (only when some prediction on either side is invalid).

Point values equal :func:`textgate.evaluation.metrics.classification_metrics` and
:func:`~textgate.evaluation.metrics.calibration_metrics` on the full data. ``delta`` is always
candidate - baseline; ``higher_is_better`` says which sign is an improvement.

The pieces live beside this module: :mod:`textgate.gate.deltas` (metric deltas and their
paired bootstrap), :mod:`textgate.gate.mcnemar` (the exact test) and :mod:`textgate.gate.flips`
(flips and label shift); this module checks the inputs once, draws the random streams and
assembles the :class:`Comparison`.

Random draws, in this fixed order, so anyone can reproduce an interval with a naive loop:

1. Overall: ``rng = np.random.default_rng(seed)``; resample ``b`` is row ``b`` of
   ``rng.integers(0, N, size=(n_resamples, N))``. The same rows index baseline and candidate
   (a paired bootstrap). The rows are drawn in row-chunks to bound memory; numpy's generator
   yields the very same numbers as one big call.
2. Slices, in ``slice_masks`` order: the slice at 0-based position ``i`` with ``S > 0``
   examples uses ``np.random.default_rng([seed, i + 1]).integers(0, S, size=(n_resamples, S))``,
   indexing the slice's examples in row order (``np.flatnonzero(mask)``). Empty slices draw
   nothing.
3. Example flips: ``np.random.default_rng([seed, stream, 0x666C6970])`` with ``stream`` 0 for
   the overall flips and ``i + 1`` for slice ``i``; it shuffles harmful, then beneficial, then
   other flips (``rng.permutation`` of each group's rows), keeping the first rows of each until
   n_example_flips are chosen (groups after that draw nothing).

The interval of each delta is ``np.quantile(deltas, [(1 - confidence) / 2,
1 - (1 - confidence) / 2])`` (numpy's default linear method) over the n_resamples deltas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from textgate._internal.bootstrap import check_bootstrap_settings
from textgate._internal.labels import encode_labels, encode_true
from textgate._internal.records import Record
from textgate._internal.validation import (
    as_labels,
    check_label_names,
    check_mask,
    check_probabilities,
    check_same_length,
    is_int,
)
from textgate.errors import ConfigError, DataError
from textgate.gate.deltas import (
    EncodedSide,
    MetricDelta,
    accuracy_delta,
    overall_deltas,
)
from textgate.gate.flips import Flips, LabelShift, flip_summary, label_shift
from textgate.gate.mcnemar import McNemar, mcnemar_from_codes, mcnemar_midp
from textgate.predictions import Predictions

__all__ = [
    "Comparison",
    "Flips",
    "LabelShift",
    "McNemar",
    "MetricDelta",
    "SliceComparison",
    "compare_predictions",
    "mcnemar_midp",
]

# Third word of the example-flip generators' seed, so they never share a stream with the
# bootstrap ones ([seed, 0] would: SeedSequence pads entropy with zeros).
_EXAMPLE_STREAM = 0x666C6970  # "flip"
_NO_SLICES: Mapping[str, np.ndarray] = MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SliceComparison(Record):
    """Accuracy delta, flips and McNemar inside one slice; all None when it has no examples."""

    name: str
    size: int
    accuracy: MetricDelta | None
    flips: Flips | None
    mcnemar: McNemar | None
    note: str = ""


@dataclass(frozen=True, eq=False)
class Comparison(Record):
    """Everything :func:`compare_predictions` found; ``bootstrap`` says how intervals were made."""

    n: int
    label_names: tuple[str, ...]
    metrics: tuple[MetricDelta, ...]
    mcnemar: McNemar
    flips: Flips
    label_shift: LabelShift
    slices: tuple[SliceComparison, ...]
    bootstrap: str
    notes: tuple[str, ...] = ()  # why a metric was left out (e.g. no probabilities for ECE)


# ---------------------------------------------------------------------------------------------
# Public function
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    n_resamples: int
    seed: int
    confidence: float
    n_example_flips: int


def compare_predictions(
    y_true: Any,
    baseline: Predictions,
    candidate: Predictions,
    *,
    label_names: Sequence[str],
    slice_masks: Mapping[str, np.ndarray] = _NO_SLICES,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    n_example_flips: int = 10,
) -> Comparison:
    """Compare ``candidate`` with ``baseline`` on the same labeled examples, example by example.

    Metrics (registry ids: accuracy, macro_f1, recall:<label> per label, invalid_label_rate, and
    ece_equal_width, 15 bins, when both sides have probabilities) come with paired percentile
    bootstrap intervals of candidate - baseline; see the module docstring for the exact order
    of random draws. ``slice_masks`` maps a slice name to a bool (N,) mask.
    """
    names = check_label_names(label_names)
    true_codes = encode_true(y_true, names)
    n = true_codes.size
    base = _check_side(baseline, "baseline", n, names)
    cand = _check_side(candidate, "candidate", n, names)
    masks = {str(name): check_mask(str(name), mask, n) for name, mask in slice_masks.items()}
    settings = _check_settings(n_resamples, seed, confidence, n_example_flips)
    return _compare(true_codes, base, cand, names, masks, settings)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_side(predictions: Any, which: str, n: int, names: tuple[str, ...]) -> EncodedSide:
    if not isinstance(predictions, Predictions):
        raise DataError(f"{which} must be a textgate Predictions record; got "
                        f"{type(predictions).__name__}. Load it with load_predictions(path).",
                        field=which)
    predicted = as_labels(predictions.predicted, f"{which}.predicted")
    check_same_length(n, predicted.size, which)
    codes = encode_labels(predicted, names)
    codes[codes < 0] = len(names)
    probabilities = None
    if predictions.probabilities is not None:
        own = tuple(str(name) for name in predictions.label_names)
        if set(own) != set(names) or len(own) != len(names):
            raise ConfigError(f"{which}.label_names {sorted(own)} must be the same set as "
                              f"label_names {sorted(names)} so its probability columns can be "
                              "matched to labels; compare models of the same label set, or pass "
                              "label-only predictions.", field=f"{which}.label_names")
        try:
            p = check_probabilities(predictions.probabilities, n, len(names))
        except DataError as exc:  # say which model's outputs are wrong
            raise DataError(f"{which} {exc}", field=f"{which}.probabilities") from exc
        probabilities = p[:, [own.index(name) for name in names]]
    return EncodedSide(predicted, codes, probabilities)


def _check_settings(n_resamples: Any, seed: Any, confidence: Any, n_example_flips: Any) -> _Settings:
    n_resamples, seed, confidence = check_bootstrap_settings(n_resamples, seed, confidence)
    if not is_int(n_example_flips) or n_example_flips < 0:
        raise ConfigError(f"n_example_flips must be an integer >= 0; got {n_example_flips!r}. "
                          "Use 0 to list no example rows.", field="n_example_flips")
    return _Settings(n_resamples, seed, confidence, int(n_example_flips))


# ---------------------------------------------------------------------------------------------
# Comparison (inputs already checked)
# ---------------------------------------------------------------------------------------------


def _compare(true_codes: np.ndarray, base: EncodedSide, cand: EncodedSide, names: tuple[str, ...],
             masks: Mapping[str, np.ndarray], settings: _Settings) -> Comparison:
    notes = tuple(f"ece_equal_width not compared: {which} has no probabilities"
                  for which, side in (("baseline", base), ("candidate", cand))
                  if side.probabilities is None)
    rows = np.arange(true_codes.size)
    return Comparison(
        n=int(true_codes.size),
        label_names=names,
        metrics=overall_deltas(true_codes, base, cand, names, rng=np.random.default_rng(settings.seed),
                               n_resamples=settings.n_resamples, confidence=settings.confidence),
        mcnemar=mcnemar_from_codes(true_codes, base.codes, cand.codes),
        flips=_flips(true_codes, base.codes, cand.codes, rows, names, settings, stream=0),
        label_shift=label_shift(base.codes, cand.codes, names),
        slices=tuple(_slice(position, name, mask, true_codes, base, cand, names, settings)
                     for position, (name, mask) in enumerate(masks.items())),
        bootstrap=(f"paired bootstrap, {settings.n_resamples} resamples, seed {settings.seed}, "
                   f"{settings.confidence * 100:g}% percentile interval"),
        notes=notes,
    )


def _flips(true_codes: np.ndarray, base_codes: np.ndarray, cand_codes: np.ndarray, rows: np.ndarray,
           names: tuple[str, ...], settings: _Settings, *, stream: int) -> Flips:
    rng = np.random.default_rng([settings.seed, stream, _EXAMPLE_STREAM])
    return flip_summary(true_codes, base_codes, cand_codes, rows, names, rng=rng,
                        n_example_flips=settings.n_example_flips)


def _slice(position: int, name: str, mask: np.ndarray, true_codes: np.ndarray, base: EncodedSide,
           cand: EncodedSide, names: tuple[str, ...], settings: _Settings) -> SliceComparison:
    rows = np.flatnonzero(mask)
    size = int(rows.size)
    if size == 0:
        return SliceComparison(name, 0, None, None, None,
                               note=f"slice {name!r} matched no examples; it has no comparison")
    truth, base_codes, cand_codes = true_codes[rows], base.codes[rows], cand.codes[rows]
    accuracy = accuracy_delta(base_codes == truth, cand_codes == truth,
                              rng=np.random.default_rng([settings.seed, position + 1]),
                              n_resamples=settings.n_resamples, confidence=settings.confidence)
    return SliceComparison(
        name=name,
        size=size,
        accuracy=accuracy,
        flips=_flips(truth, base_codes, cand_codes, rows, names, settings, stream=position + 1),
        mcnemar=mcnemar_from_codes(truth, base_codes, cand_codes),
    )
