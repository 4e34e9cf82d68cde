"""Gate checks: thresholds applied to a paired Comparison (pure; no models, no files).

Every check records the measured value, its interval, the threshold, the rule and a status:
``fail`` blocks the merge, ``warn`` is shown but does not (a slice smaller than
``min_slice_size``), ``pass``, or ``skip`` (nothing to measure, e.g. no timings).

A check is named after its metric's registry label (``slice`` before it on a slice), and
``value_is`` says what its value is: ``change`` (candidate - baseline), ``ratio`` (candidate /
baseline - 1, latency) or ``level`` (the candidate's own rate).

Drop checks (a metric got worse) follow ``thresholds.mode``:
- ``threshold``: fail when the drop exceeds the threshold; with ``require_significance`` only
  when it is also significant at ``alpha`` (McNemar mid-p for accuracy, otherwise the
  (1 - alpha) paired-bootstrap interval excluding zero);
- ``non-inferiority``: fail unless the upper bound of the drop's interval is below the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textgate._internal.records import Record
from textgate.evaluation.metrics import wilson_interval
from textgate.evaluation.registry import metric_info
from textgate.gate.compare import Comparison
from textgate.gate.config import THRESHOLD_METRICS, Thresholds
from textgate.gate.deltas import MetricDelta
from textgate.latency import LatencyComparison

__all__ = ["Check", "GateResult", "check_gate"]

Status = Literal["pass", "warn", "fail", "skip"]
ValueIs = Literal["change", "ratio", "level"]
# A drop of exactly the threshold passes ("drop <= 2 pts"); differences of float accuracies
# carry rounding error (0.7185 - 0.6985 = 0.020000000000000018), so compare with this slack.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Check(Record):
    name: str
    scope: str  # "overall" or a slice name
    metric: str  # a registry id (textgate.evaluation.registry), "recall:<label>" for a class
    baseline: float | None
    candidate: float | None
    value: float | None  # what the threshold is compared with
    value_is: ValueIs
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    threshold: float | None
    rule: str
    status: Status
    reason: str


@dataclass(frozen=True)
class GateResult(Record):
    verdict: Literal["pass", "fail"]
    summary: str
    checks: tuple[Check, ...]
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "pass" else 1


def check_gate(comparison: Comparison, thresholds: Thresholds, *, latency: LatencyComparison | None = None,
               latency_skipped: str | None = None, latency_cause: str | None = None) -> GateResult:
    """Apply ``thresholds`` to the comparison and the latency measurement; the verdict fails if
    any check fails. ``latency_skipped`` says why there is no measurement; ``latency_cause`` is
    named in a failed latency check (e.g. the candidate runs emulated bfloat16)."""
    checks = [*_overall_checks(comparison, thresholds),
              *_latency_checks(latency, thresholds, latency_skipped, latency_cause),
              *_slice_checks(comparison, thresholds)]
    warnings = [f"slice '{s.name}' has {s.size} examples (< min_slice_size {thresholds.min_slice_size}): "
                "its checks warn instead of fail" for s in comparison.slices
                if 0 < s.size < thresholds.min_slice_size]
    failed = [c for c in checks if c.status == "fail"]
    verdict = "fail" if failed else "pass"
    if failed:
        names = ", ".join(f"{c.name}" + ("" if c.scope == "overall" else f" on '{c.scope}'") for c in failed)
        summary = f"FAIL: {len(failed)} of {len(checks)} checks failed ({names})"
    else:
        summary = f"PASS: {len(checks)} checks passed" + (f", {sum(c.status == 'warn' for c in checks)} warnings"
                                                        if any(c.status == "warn" for c in checks) else "")
    order = {"fail": 0, "warn": 1, "pass": 2, "skip": 3}
    return GateResult(verdict, summary, tuple(sorted(checks, key=lambda c: order[c.status])), tuple(warnings))


def _name(metric: str, scope: str) -> str:
    label = metric_info(metric).label
    return label if scope == "overall" else f"slice {label}"


# Thresholds on how far a metric of the comparison may move the wrong way, in report order.
_DROP_KEYS = ("max_accuracy_drop", "max_macro_f1_drop", "max_recall_drop", "max_ece_equal_width_increase")


def _overall_checks(comparison: Comparison, t: Thresholds) -> list[Check]:
    checks = []
    for key in _DROP_KEYS:
        threshold, metric = getattr(t, key), THRESHOLD_METRICS[key]
        if threshold is None:
            continue
        deltas = [d for d in comparison.metrics if d.name.partition(":")[0] == metric]
        p_value = comparison.mcnemar.p_value if metric == "accuracy" else None
        checks += [_drop_check(d, "overall", threshold, t, p_value=p_value) for d in deltas]
        if not deltas and metric_info(metric).needs_probabilities:
            checks.append(_skipped(metric, "overall", "a side has no probabilities"))
    if t.max_invalid_label_rate is not None:
        delta = next(d for d in comparison.metrics if d.name == THRESHOLD_METRICS["max_invalid_label_rate"])
        checks.append(_invalid_check(delta, t.max_invalid_label_rate))
    flips = comparison.flips
    for key, count, what in (("max_flip_rate", flips.flipped, "predictions changed label"),
                             ("max_harmful_flip_rate", flips.harmful, "predictions went from correct to wrong")):
        if getattr(t, key) is not None:
            checks.append(_rate_check(THRESHOLD_METRICS[key], "overall", count, flips.n, getattr(t, key), what))
    if t.max_label_shift is not None:
        shift, metric = comparison.label_shift.total_variation, THRESHOLD_METRICS["max_label_shift"]
        status: Status = "fail" if shift > t.max_label_shift else "pass"
        checks.append(Check(_name(metric, "overall"), "overall", metric, None, None, shift, "level", None, None,
                            None, t.max_label_shift, f"total variation <= {100 * t.max_label_shift:g}%", status,
                            f"predicted-label distribution moved by {100 * shift:.1f}% (total variation)"))
    return checks


def _slice_checks(comparison: Comparison, t: Thresholds) -> list[Check]:
    checks = []
    accuracy, flip_rate = THRESHOLD_METRICS["max_slice_accuracy_drop"], THRESHOLD_METRICS["max_slice_flip_rate"]
    for s in comparison.slices:
        if s.size == 0 or s.accuracy is None:
            checks.append(_skipped(accuracy, s.name, "the slice matched no examples"))
            continue
        small = s.size < t.min_slice_size
        if t.max_slice_accuracy_drop is not None:
            checks.append(_drop_check(s.accuracy, s.name, t.max_slice_accuracy_drop, t, p_value=s.mcnemar.p_value,
                                      small=small))
        if t.max_slice_flip_rate is not None:
            checks.append(_rate_check(flip_rate, s.name, s.flips.flipped, s.flips.n, t.max_slice_flip_rate,
                                      "predictions changed label", small=small))
    return checks


def _drop_check(delta: MetricDelta, scope: str, threshold: float, t: Thresholds, *,
                p_value: float | None = None, small: bool = False) -> Check:
    sign = 1 if delta.higher_is_better else -1
    harm = -sign * delta.delta
    harm_low, harm_high = sorted((-sign * delta.ci_low, -sign * delta.ci_high))
    word = "drop" if delta.higher_is_better else "increase"
    unit, scale, digits = (" pts", 100, 1) if metric_info(delta.name).unit == "fraction" else ("", 1, 4)
    if t.mode == "non-inferiority":
        failed = harm_high >= threshold - _TOLERANCE
        rule = f"upper bound of {word} < {scale * threshold:g}{unit}"
        why = (f"the interval's worst case, a {word} of {scale * harm_high:.{digits}f}{unit}, "
               f"{'reaches' if failed else 'stays below'} the {scale * threshold:g}{unit} margin")
    else:
        exceeded = harm > threshold + _TOLERANCE
        significant = (p_value < t.alpha) if p_value is not None else harm_low > 0
        failed = exceeded and (significant or not t.require_significance)
        rule = f"{word} <= {scale * threshold:g}{unit}" + (f", fails only if significant at {t.alpha:g}"
                                                           if t.require_significance else "")
        verb = {True: "more than", False: "within"}[exceeded]
        why = (f"{metric_info(delta.name).label} {'fell' if harm > 0 and delta.higher_is_better else 'rose' if harm > 0 else 'changed'} "
               f"{scale * abs(delta.delta):.{digits}f}{unit} (95% interval of the {word}: "
               f"{scale * harm_low:.{digits}f} to {scale * harm_high:.{digits}f}), {verb} the "
               f"{scale * threshold:g}{unit} allowed")
        if exceeded and t.require_significance and not significant:
            why += ", but not significant"
    status: Status = "fail" if failed else "pass"
    if failed and small:
        status, why = "warn", why + f" (small slice: {delta.n} examples)"
    return Check(_name(delta.name, scope), scope, delta.name, delta.baseline, delta.candidate, delta.delta, "change",
                 delta.ci_low, delta.ci_high, p_value, threshold, rule, status, why)


def _rate_check(metric: str, scope: str, count: int, n: int, threshold: float, what: str, *,
                small: bool = False) -> Check:
    rate = count / n if n else 0.0
    low, high = wilson_interval(count, n)
    over = rate > threshold + _TOLERANCE
    status: Status = "fail" if over else "pass"
    reason = f"{count:,} of {n:,} {what} ({100 * rate:.2f}%), {'more than' if over else 'within'} " \
             f"the {100 * threshold:g}% allowed"
    if status == "fail" and small:
        status, reason = "warn", reason + f" (small slice: {n} examples)"
    return Check(_name(metric, scope), scope, metric, None, None, rate, "level", low, high, None, threshold,
                 f"rate <= {100 * threshold:g}%", status, reason)


def _invalid_check(delta: MetricDelta, threshold: float) -> Check:
    status: Status = "fail" if delta.candidate > threshold + _TOLERANCE else "pass"
    reason = (f"{100 * delta.candidate:.2f}% of the candidate's predictions are outside the label set "
              f"(baseline {100 * delta.baseline:.2f}%)")
    return Check(_name(delta.name, "overall"), "overall", delta.name, delta.baseline, delta.candidate,
                 delta.candidate, "level", None, None, None, threshold, f"rate <= {100 * threshold:g}%", status,
                 reason)


def _latency_checks(latency: LatencyComparison | None, t: Thresholds, skipped: str | None,
                    likely_cause: str | None) -> list[Check]:
    """The candidate's cost per text against the baseline's, both timed in this run. Threshold
    mode fails when the increase exceeds the threshold (and, with require_significance, its
    interval excludes zero); non-inferiority mode unless the interval's upper bound is below it."""
    if t.max_latency_increase is None:
        return []
    metric = THRESHOLD_METRICS["max_latency_increase"]
    if latency is None:
        return [_skipped(metric, "overall", skipped or "no timings")]
    threshold, increase = t.max_latency_increase, latency.increase
    if t.mode == "non-inferiority":
        failed = latency.ci_high >= threshold - _TOLERANCE
        rule = f"upper bound of the increase < {100 * threshold:g}%"
    else:
        failed = increase > threshold + _TOLERANCE and (latency.ci_low > 0 or not t.require_significance)
        rule = f"relative increase <= {100 * threshold:g}%" + (
            f", fails only if significant at {t.alpha:g}" if t.require_significance else "")
    reason = (f"cost per text {latency.baseline_ms_per_text:.2f} ms -> {latency.candidate_ms_per_text:.2f} ms "
              f"({100 * increase:+.1f}%, {100 * latency.confidence:g}% interval {100 * latency.ci_low:+.1f}% to "
              f"{100 * latency.ci_high:+.1f}%; {latency.texts} texts x {latency.rounds} rounds timed in this run), "
              f"{'more than' if increase > threshold else 'within'} the {100 * threshold:g}% allowed")
    if failed and likely_cause:
        reason += f". Likely cause: {likely_cause}"
    return [Check(_name(metric, "overall"), "overall", metric, latency.baseline_ms_per_text,
                  latency.candidate_ms_per_text, increase, "ratio", latency.ci_low, latency.ci_high, None, threshold,
                  rule, "fail" if failed else "pass", reason)]


def _skipped(metric: str, scope: str, why: str) -> Check:
    value_is: ValueIs = "ratio" if metric_info(metric).unit == "ms" else "change"
    return Check(_name(metric, scope), scope, metric, None, None, None, value_is, None, None, None, None, "-", "skip",
                 why)
