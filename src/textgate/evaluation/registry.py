"""The metric registry: one entry per measured quantity, read by eval, the gate and calibration.

An entry's ``name`` is its stable id: the key in report JSON, a gate check's ``metric`` and the
word a gate threshold is named after. It also records how reports show the metric
(``label``, ``unit``), which way is better (``direction``) and what one value describes
(``scope``: a text, a batch, or the whole dataset).

- Per-class entries (``per_class``) are one entry for all classes: reports name a class's value
  ``<id>:<label>`` (``recall:negative``), which :func:`metric_info` resolves.
- Paired entries (``paired``) compare two models' predictions on the same examples (the gate's
  flips and label shift); the others describe one model.
- An id that was renamed stays readable: :data:`RENAMED_METRICS` maps it to its new id, and
  :func:`metric_info` resolves it, so reports written before the rename still render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from textgate._internal.records import Record
from textgate.errors import ConfigError
from textgate.evaluation.metrics import DEFAULT_N_BINS

__all__ = ["Direction", "METRICS", "MetricInfo", "RENAMED_METRICS", "Scope", "Unit", "metric_info"]

# fraction: a share in [0, 1], shown as % (a change of one as points); number: a plain number
# (Brier, NLL); ms: milliseconds; texts/s: a rate per second.
Unit = Literal["fraction", "number", "ms", "texts/s"]
Direction = Literal["higher", "lower"]
Scope = Literal["text", "batch", "dataset"]


@dataclass(frozen=True)
class MetricInfo(Record):
    name: str  # the stable id
    label: str  # how reports name it
    unit: Unit
    direction: Direction  # which way is better
    scope: Scope  # what one value describes
    needs_probabilities: bool
    per_class: bool  # one value per class, named "<id>:<label>"
    paired: bool  # compares two models' predictions on the same examples
    description: str

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


def _entries(*infos: MetricInfo) -> Mapping[str, MetricInfo]:
    return MappingProxyType({info.name: info for info in infos})


METRICS: Mapping[str, MetricInfo] = _entries(
    # name, label, unit, direction, scope, needs_probabilities, per_class, paired, then description
    MetricInfo("accuracy", "accuracy", "fraction", "higher", "dataset", False, False, False,
               "fraction of examples whose predicted label is the true label"),
    MetricInfo("macro_precision", "macro precision", "fraction", "higher", "dataset", False, False, False,
               "unweighted mean of per-class precision"),
    MetricInfo("macro_recall", "macro recall", "fraction", "higher", "dataset", False, False, False,
               "unweighted mean of per-class recall"),
    MetricInfo("macro_f1", "macro F1", "fraction", "higher", "dataset", False, False, False,
               "unweighted mean of per-class F1"),
    MetricInfo("weighted_precision", "weighted precision", "fraction", "higher", "dataset", False, False, False,
               "mean of per-class precision weighted by support"),
    MetricInfo("weighted_recall", "weighted recall", "fraction", "higher", "dataset", False, False, False,
               "mean of per-class recall weighted by support"),
    MetricInfo("weighted_f1", "weighted F1", "fraction", "higher", "dataset", False, False, False,
               "mean of per-class F1 weighted by support"),
    MetricInfo("precision", "precision", "fraction", "higher", "dataset", False, True, False,
               "of the examples predicted a class, the fraction that truly have it"),
    MetricInfo("recall", "recall", "fraction", "higher", "dataset", False, True, False,
               "of the examples of a class, the fraction predicted as it"),
    MetricInfo("f1", "F1", "fraction", "higher", "dataset", False, True, False,
               "harmonic mean of a class's precision and recall"),
    MetricInfo("invalid_label_rate", "invalid labels", "fraction", "lower", "dataset", False, False, False,
               "fraction of predictions outside label_names"),
    MetricInfo("ece_equal_width", "ECE equal-width", "fraction", "lower", "dataset", True, False, False,
               f"top-label expected calibration error, {DEFAULT_N_BINS} equal-width bins"),
    MetricInfo("ece_equal_mass", "ECE equal-mass", "fraction", "lower", "dataset", True, False, False,
               f"top-label expected calibration error, {DEFAULT_N_BINS} equal-mass bins"),
    MetricInfo("mce", "MCE", "fraction", "lower", "dataset", True, False, False,
               f"top-label maximum calibration error over the non-empty of {DEFAULT_N_BINS} equal-width bins"),
    MetricInfo("brier", "Brier", "number", "lower", "dataset", True, False, False,
               "multiclass Brier score"),
    MetricInfo("nll", "NLL", "number", "lower", "dataset", True, False, False,
               "mean negative log-likelihood of the true class"),
    MetricInfo("latency_per_batch_p50_ms", "latency per batch, p50", "ms", "lower", "batch", False, False, False,
               "median wall time of one batch"),
    MetricInfo("latency_per_batch_p99_ms", "latency per batch, p99", "ms", "lower", "batch", False, False, False,
               "99th percentile wall time of one batch"),
    MetricInfo("latency_per_text_p50_ms", "latency per text, p50", "ms", "lower", "text", False, False, False,
               "median over texts of their batch's wall time / batch size (amortized)"),
    MetricInfo("latency_per_text_p99_ms", "latency per text, p99", "ms", "lower", "text", False, False, False,
               "99th percentile over texts of their batch's wall time / batch size (amortized)"),
    MetricInfo("latency_per_text_ms", "latency per text", "ms", "lower", "text", False, False, False,
               "cost per text timed in the gate's run: sum over batches of the median over rounds / texts"),
    MetricInfo("throughput_per_s", "throughput", "texts/s", "higher", "dataset", False, False, False,
               "examples classified per second of batch wall time"),
    MetricInfo("flip_rate", "flip rate", "fraction", "lower", "dataset", False, False, True,
               "fraction of examples whose predicted label changed"),
    MetricInfo("harmful_flip_rate", "harmful flip rate", "fraction", "lower", "dataset", False, False, True,
               "fraction of examples the baseline got right and the candidate wrong"),
    MetricInfo("label_shift", "label distribution shift", "fraction", "lower", "dataset", False, False, True,
               "total variation distance between the two models' predicted-label shares"),
)

# Old id -> its id now; gate reports before schema 3 used the old ones.
RENAMED_METRICS: Mapping[str, str] = MappingProxyType({
    "ece": "ece_equal_width",  # the gate's name for the same 15-bin equal-width ECE
    "total_variation": "label_shift",
    "slice_flip_rate": "flip_rate",  # a check's scope says it is a slice's
    "latency_p50_ms": "latency_per_batch_p50_ms",
    "latency_p99_ms": "latency_per_batch_p99_ms",
})


def metric_info(name: str) -> MetricInfo:
    """The entry of ``name``: an id, ``<per-class id>:<label>`` (its label then says which
    class), or an id from :data:`RENAMED_METRICS`."""
    base, _, label = name.partition(":")
    info = METRICS.get(RENAMED_METRICS.get(base, base))
    if info is None or (label and not info.per_class):
        known = ", ".join(f"{n}:<label>" if i.per_class else n for n, i in METRICS.items())
        raise ConfigError(f"Unknown metric {name!r}; the registry's metrics are {known}.", field="metric")
    return dataclasses.replace(info, name=name, label=f"{info.label} of {label}") if label else info
