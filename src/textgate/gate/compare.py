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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from textgate._internal.bootstrap import (
    Scratch,
    bootstrap,
    check_bootstrap_settings,
    percentile_interval,
    resampled_bin_sums,
)
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
from textgate.evaluation.metrics import (
    DEFAULT_N_BINS,
    METRICS,
    calibration_from_codes,
    classification_from_codes,
    divide_or_zero,
    equal_width_index,
)
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

# The extra row/column for predictions outside label_names (flip matrix, label shift).
INVALID_LABEL = "(invalid)"
# Third word of the example-flip generators' seed, so they never share a stream with the
# bootstrap ones ([seed, 0] would: SeedSequence pads entropy with zeros).
_EXAMPLE_STREAM = 0x666C6970  # "flip"
_MCNEMAR_METHOD = ("exact McNemar test on per-example correctness: p_exact = two-sided binomial "
                   "test of the discordant pairs, p_value = mid-p (Fagerland, Lydersen & Laake 2013)")
# A term of P(X <= k) this far below the running sum no longer changes a float64.
_TAIL_CUTOFF = 1e-20
_NO_SLICES: Mapping[str, np.ndarray] = MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricDelta(Record):
    """One metric on both models; [ci_low, ci_high] is the paired bootstrap interval of delta."""

    name: str
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    ci_low: float
    ci_high: float
    higher_is_better: bool
    n: int


@dataclass(frozen=True)
class McNemar(Record):
    """Exact McNemar test of "both models are equally often right" on the discordant examples."""

    baseline_only_correct: int
    candidate_only_correct: int
    discordant: int
    p_value: float  # mid-p
    p_exact: float  # two-sided exact binomial p
    method: str


@dataclass(frozen=True, eq=False)  # eq=False: the matrix ndarray has no boolean ==
class Flips(Record):
    """Examples whose predicted label changed. Rates are fractions of all ``n`` examples.

    ``matrix[i, j]`` counts examples predicted ``matrix_labels[i]`` by the baseline and
    ``matrix_labels[j]`` by the candidate (diagonal: unchanged). ``example_rows`` are 0-based
    dataset rows of flipped examples, harmful ones first, then beneficial, then other.
    """

    n: int
    flipped: int
    flip_rate: float
    harmful: int  # baseline right, candidate wrong
    harmful_rate: float
    beneficial: int  # baseline wrong, candidate right
    beneficial_rate: float
    other: int  # changed from one wrong label to another
    matrix_labels: tuple[str, ...]
    matrix: np.ndarray
    example_rows: tuple[int, ...]


@dataclass(frozen=True)
class LabelShift(Record):
    """Share of each predicted label per model; total_variation = 0.5 * sum(|delta|)."""

    labels: tuple[str, ...]
    baseline_share: tuple[float, ...]
    candidate_share: tuple[float, ...]
    delta: tuple[float, ...]
    total_variation: float


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
# Public functions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """One model's validated predictions, encoded against label_names (private)."""

    predicted: np.ndarray  # (N,) object labels as given
    codes: np.ndarray  # (N,) index in label_names, K for an invalid prediction
    probabilities: np.ndarray | None  # (N, K) float64 in label_names column order


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

    Metrics (accuracy, macro_f1, recall:<label> per label, invalid_label_rate, and top-label ECE
    with 15 equal-width bins when both sides have probabilities) come with paired percentile
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


def mcnemar_midp(b: int, c: int) -> McNemar:
    """Exact McNemar test from ``b`` (baseline-only correct) and ``c`` (candidate-only correct).

    ``p_exact`` = min(1, 2 P(X <= min(b, c))) for X ~ Bin(b + c, 1/2), as
    ``scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue``; ``p_value`` is the mid-p of
    Fagerland, Lydersen & Laake (2013), which keeps the exact test's size with less
    conservatism: ``p_exact - P(X = min(b, c))``, and ``1 - P(X = b) / 2`` when b == c (the
    observed outcome is then the only tie, counted by half). Both are 1.0 when b + c == 0.
    """
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DataError(f"McNemar count {name} must be an integer >= 0 (examples only one model "
                            f"got right); got {value!r}. Pass counts, not rates.", field=name)
    return _mcnemar(int(b), int(c))


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_side(predictions: Any, which: str, n: int, names: tuple[str, ...]) -> _Side:
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
    return _Side(predicted, codes, probabilities)


def _check_settings(n_resamples: Any, seed: Any, confidence: Any, n_example_flips: Any) -> _Settings:
    n_resamples, seed, confidence = check_bootstrap_settings(n_resamples, seed, confidence)
    if not is_int(n_example_flips) or n_example_flips < 0:
        raise ConfigError(f"n_example_flips must be an integer >= 0; got {n_example_flips!r}. "
                          "Use 0 to list no example rows.", field="n_example_flips")
    return _Settings(n_resamples, seed, confidence, int(n_example_flips))


# ---------------------------------------------------------------------------------------------
# Comparison (inputs already checked)
# ---------------------------------------------------------------------------------------------


def _compare(true_codes: np.ndarray, base: _Side, cand: _Side, names: tuple[str, ...],
             masks: Mapping[str, np.ndarray], settings: _Settings) -> Comparison:
    notes = tuple(f"ece not compared: {which} has no probabilities"
                  for which, side in (("baseline", base), ("candidate", cand))
                  if side.probabilities is None)
    rows = np.arange(true_codes.size)
    return Comparison(
        n=int(true_codes.size),
        label_names=names,
        metrics=_overall_metrics(true_codes, base, cand, names, settings),
        mcnemar=_mcnemar_of(true_codes, base.codes, cand.codes),
        flips=_flips(true_codes, base.codes, cand.codes, rows, names, settings, stream=0),
        label_shift=_label_shift(base.codes, cand.codes, names),
        slices=tuple(_slice(position, name, mask, true_codes, base, cand, names, settings)
                     for position, (name, mask) in enumerate(masks.items())),
        bootstrap=(f"paired bootstrap, {settings.n_resamples} resamples, seed {settings.seed}, "
                   f"{settings.confidence * 100:g}% percentile interval"),
        notes=notes,
    )


def _metric_names(names: tuple[str, ...], with_ece: bool) -> list[tuple[str, bool]]:
    """(name, higher_is_better) of the overall metrics, in report order."""
    listed = [("accuracy", METRICS["accuracy"].higher_is_better),
              ("macro_f1", METRICS["macro_f1"].higher_is_better)]
    listed += [(f"recall:{name}", True) for name in names]
    listed.append(("invalid_label_rate", METRICS["invalid_label_rate"].higher_is_better))
    if with_ece:
        listed.append(("ece", METRICS["ece_equal_width"].higher_is_better))
    return listed


def _overall_metrics(true_codes: np.ndarray, base: _Side, cand: _Side, names: tuple[str, ...],
                     settings: _Settings) -> tuple[MetricDelta, ...]:
    with_ece = base.probabilities is not None and cand.probabilities is not None
    k, n = len(names), true_codes.size
    base_parts = _resample_inputs(true_codes, base, k, with_ece)
    cand_parts = _resample_inputs(true_codes, cand, k, with_ece)

    def deltas(idx: np.ndarray, scratch: Scratch) -> np.ndarray:
        return (_resampled_values(*cand_parts, idx, k, scratch)
                - _resampled_values(*base_parts, idx, k, scratch))

    rng = np.random.default_rng(settings.seed)
    low, high = percentile_interval(bootstrap(rng, n, settings.n_resamples, deltas), settings.confidence)
    base_values = _point_values(true_codes, base, names, with_ece)
    cand_values = _point_values(true_codes, cand, names, with_ece)
    return tuple(
        MetricDelta(name, base_values[i], cand_values[i], cand_values[i] - base_values[i],
                    float(low[i]), float(high[i]), higher, n)
        for i, (name, higher) in enumerate(_metric_names(names, with_ece))
    )


def _point_values(true_codes: np.ndarray, side: _Side, names: tuple[str, ...], with_ece: bool) -> list[float]:
    """The metrics on the full data, computed by textgate.evaluation.metrics itself (same numbers as eval)."""
    report = classification_from_codes(true_codes, side.predicted, names)
    values = [report.accuracy, report.macro.f1, *(c.recall for c in report.per_class), report.invalid.rate]
    if with_ece:
        values.append(calibration_from_codes(true_codes, side.probabilities, DEFAULT_N_BINS).ece_equal_width.value)
    return values


def _resample_inputs(true_codes: np.ndarray, side: _Side, k: int,
                     with_ece: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per-example keys: confusion cell true * (K + 1) + predicted, and ECE bin and gap."""
    cells = true_codes * (k + 1) + side.codes
    if not with_ece:
        return cells, None, None
    confidence = side.probabilities.max(axis=1)
    correct = side.probabilities.argmax(axis=1) == true_codes
    return cells, equal_width_index(confidence, DEFAULT_N_BINS), confidence - correct


def _resampled_values(cells: np.ndarray, bins: np.ndarray | None, gaps: np.ndarray | None,
                      idx: np.ndarray, k: int, scratch: Scratch) -> np.ndarray:
    """(rows, M) metric values of one model on each resample (row of example indices) in idx."""
    rows, n = idx.shape
    width = k * (k + 1)
    keys = scratch.take(cells, idx)
    keys += np.arange(rows)[:, None] * width
    counts = np.bincount(keys.ravel(), minlength=rows * width).reshape(rows, k, k + 1)
    tp = np.diagonal(counts, axis1=1, axis2=2)  # cell (i, i) for i < K
    support = counts.sum(axis=2)
    predicted = counts[:, :, :k].sum(axis=1)  # invalid predictions are no class's prediction
    columns = [tp.sum(axis=1) / n, divide_or_zero(2 * tp, support + predicted).mean(axis=1)]
    columns += list(divide_or_zero(tp, support).T)
    columns.append(counts[:, :, k].sum(axis=1) / n)
    if bins is not None:
        # Takes into the buffer of `keys` above (same dtype), which is no longer needed.
        _, sums = resampled_bin_sums(bins, gaps, idx, scratch, DEFAULT_N_BINS)
        columns.append(np.abs(sums).sum(axis=1) / n)
    return np.column_stack(columns)


# ---------------------------------------------------------------------------------------------
# McNemar
# ---------------------------------------------------------------------------------------------


def _mcnemar_of(true_codes: np.ndarray, base_codes: np.ndarray, cand_codes: np.ndarray) -> McNemar:
    base_ok, cand_ok = base_codes == true_codes, cand_codes == true_codes
    return _mcnemar(int(np.sum(base_ok & ~cand_ok)), int(np.sum(cand_ok & ~base_ok)))


def _mcnemar(b: int, c: int) -> McNemar:
    n, k = b + c, min(b, c)
    if n == 0:  # no discordant pairs: no evidence either way
        return McNemar(b, c, 0, 1.0, 1.0, _MCNEMAR_METHOD)
    log_pmf_k = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    pmf_k = math.exp(log_pmf_k)
    if b == c:
        # Every other outcome is more extreme and only k itself ties, so the two-sided mid-p is
        # 1 - pmf(k)/2, as in the authors' own code (R package contingencytables).
        return McNemar(b, c, n, 1.0 - 0.5 * pmf_k, 1.0, _MCNEMAR_METHOD)
    if abs(b - c) == 1:
        p_exact = 1.0  # by symmetry 2 P(X <= (n-1)/2) is exactly 1
    else:
        # log P(X <= k) = log pmf(k) + log sum_x pmf(x) / pmf(k): log-sum-exp with the largest
        # term (x = k < n/2) factored out. The ratios come from pmf(x-1)/pmf(x) = x / (n-x+1),
        # which avoids cancelling lgamma values of size n log n; they shrink geometrically.
        ratio_sum, term = 1.0, 1.0
        for x in range(k, 0, -1):
            term *= x / (n - x + 1)
            ratio_sum += term
            if term < _TAIL_CUTOFF * ratio_sum:
                break
        p_exact = min(1.0, math.exp(math.log(2) + log_pmf_k + math.log(ratio_sum)))
    # 2 P(X <= k) - P(X = k): more extreme outcomes count fully, the observed ones by half.
    return McNemar(b, c, n, max(0.0, p_exact - pmf_k), p_exact, _MCNEMAR_METHOD)


# ---------------------------------------------------------------------------------------------
# Flips, label shift, slices
# ---------------------------------------------------------------------------------------------


def _labels_with_invalid(names: tuple[str, ...], *codes: np.ndarray) -> tuple[str, ...]:
    """label_names, plus "(invalid)" when some prediction in ``codes`` is invalid (code K)."""
    k = len(names)
    return names + (INVALID_LABEL,) if any(np.any(c == k) for c in codes) else names


def _flips(true_codes: np.ndarray, base_codes: np.ndarray, cand_codes: np.ndarray, rows: np.ndarray,
           names: tuple[str, ...], settings: _Settings, *, stream: int) -> Flips:
    """Flip summary of the examples given (``rows``: their dataset rows, for example_rows)."""
    n, k = true_codes.size, len(names)
    base_ok, cand_ok = base_codes == true_codes, cand_codes == true_codes
    flipped = base_codes != cand_codes
    groups = (base_ok & ~cand_ok, ~base_ok & cand_ok, flipped & ~base_ok & ~cand_ok)
    labels = _labels_with_invalid(names, base_codes, cand_codes)
    side = len(labels)  # K, or K + 1 with the invalid row/column last
    matrix = np.bincount(base_codes * (k + 1) + cand_codes, minlength=(k + 1) ** 2)
    matrix = matrix.reshape(k + 1, k + 1)[:side, :side].astype(np.int64)
    matrix.setflags(write=False)
    harmful, beneficial, other = (int(g.sum()) for g in groups)
    return Flips(
        n=n,
        flipped=int(flipped.sum()),
        flip_rate=float(flipped.mean()),
        harmful=harmful,
        harmful_rate=harmful / n,
        beneficial=beneficial,
        beneficial_rate=beneficial / n,
        other=other,
        matrix_labels=labels,
        matrix=matrix,
        example_rows=_example_rows(groups, rows, settings, stream),
    )


def _example_rows(groups: tuple[np.ndarray, ...], rows: np.ndarray, settings: _Settings,
                  stream: int) -> tuple[int, ...]:
    rng = np.random.default_rng([settings.seed, stream, _EXAMPLE_STREAM])
    chosen: list[int] = []
    for group in groups:
        room = settings.n_example_flips - len(chosen)
        if room <= 0:
            break
        # Sorted inside each group so a reader scans the dataset top-down.
        chosen += sorted(int(r) for r in rng.permutation(rows[group])[:room])
    return tuple(chosen)


def _label_shift(base_codes: np.ndarray, cand_codes: np.ndarray, names: tuple[str, ...]) -> LabelShift:
    labels = _labels_with_invalid(names, base_codes, cand_codes)
    base_share = np.bincount(base_codes, minlength=len(names) + 1)[: len(labels)] / base_codes.size
    cand_share = np.bincount(cand_codes, minlength=len(names) + 1)[: len(labels)] / cand_codes.size
    delta = cand_share - base_share
    return LabelShift(
        labels=labels,
        baseline_share=tuple(float(v) for v in base_share),
        candidate_share=tuple(float(v) for v in cand_share),
        delta=tuple(float(v) for v in delta),
        total_variation=float(0.5 * np.abs(delta).sum()),
    )


def _slice(position: int, name: str, mask: np.ndarray, true_codes: np.ndarray, base: _Side,
           cand: _Side, names: tuple[str, ...], settings: _Settings) -> SliceComparison:
    rows = np.flatnonzero(mask)
    size = int(rows.size)
    if size == 0:
        return SliceComparison(name, 0, None, None, None,
                               note=f"slice {name!r} matched no examples; it has no comparison")
    truth, base_codes, cand_codes = true_codes[rows], base.codes[rows], cand.codes[rows]
    base_ok, cand_ok = base_codes == truth, cand_codes == truth

    def deltas(idx: np.ndarray, scratch: Scratch) -> np.ndarray:
        cand_acc = scratch.take(cand_ok, idx).sum(axis=1) / size
        return (cand_acc - scratch.take(base_ok, idx).sum(axis=1) / size)[:, None]

    rng = np.random.default_rng([settings.seed, position + 1])
    low, high = percentile_interval(bootstrap(rng, size, settings.n_resamples, deltas), settings.confidence)
    base_acc, cand_acc = float(base_ok.mean()), float(cand_ok.mean())
    accuracy = MetricDelta("accuracy", base_acc, cand_acc, cand_acc - base_acc, float(low[0]),
                           float(high[0]), True, size)
    return SliceComparison(
        name=name,
        size=size,
        accuracy=accuracy,
        flips=_flips(truth, base_codes, cand_codes, rows, names, settings, stream=position + 1),
        mcnemar=_mcnemar_of(truth, base_codes, cand_codes),
    )
