"""Prometheus metrics of one `textgate serve` app, in a private registry.

Names (all prefixed ``textgate_``):

    requests_total{route,status}          counter    HTTP requests by route template and status code
    request_latency_seconds{route}        histogram  wall time of a request
    batch_size                            histogram  rows per forward pass
    queue_depth                           gauge      texts waiting for the model
    inference_seconds                     histogram  wall time of a forward pass
    predictions_total{label}              counter    final (guarded) labels
    confidence                            histogram  score of the final label (finite scores only)
    guard_failures_total{rule}            counter    guard reasons (low_confidence, empty_text, non_finite, ...)
    truncations_total                     counter    texts cut by truncation
    log_queue_depth, log_written_total,   from the prediction LogWriter, read at scrape time
    log_dropped_total, log_failed_total,
    log_retries_total
    label_drift_psi                       gauge      PSI of the last `window` final labels vs the reference
    label_drift_chi2_pvalue               gauge      chi-squared goodness-of-fit p-value, same window
    label_drift_window_size               gauge      labels in the window
    model_info{fingerprint,revision,model} gauge     always 1
    shadow_*                              agreement/flip rates, label pairs and deltas, errors

A NaN or infinite score (a broken model; the guard rejects it as ``non_finite``) is never
added to ``confidence`` or the drift window, so their sums stay finite for good. The drift and
shadow gauges read NaN only while their window is empty.

The drift statistics are pure functions here (`population_stability_index`,
`chi2_goodness_of_fit`, `chi2_sf`) so they can be tested against scipy without a server;
scipy is not needed at run time.
"""

from __future__ import annotations

import math
import threading
from collections import Counter as _Tally
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "LabelDrift",
    "ServeMetrics",
    "ShadowTracker",
    "chi2_goodness_of_fit",
    "chi2_sf",
    "population_stability_index",
]

PREFIX = "textgate"
# predictions_total's label value for results without a final label (rejected, needs_review).
NO_LABEL = "none"
# Share given to a category absent on one side, so that PSI and chi2 stay finite (a common choice).
DRIFT_EPSILON = 1e-4
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


# --- drift statistics ------------------------------------------------------------------------


def _smoothed(shares: Sequence[float]) -> list[float]:
    floored = [max(float(s), DRIFT_EPSILON) for s in shares]
    total = sum(floored)
    return [s / total for s in floored]


def population_stability_index(observed_counts: Sequence[float], expected_shares: Sequence[float]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over categories, shares floored at DRIFT_EPSILON.

    Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift. NaN without data."""
    n = float(sum(observed_counts))
    if n <= 0 or len(observed_counts) != len(expected_shares):
        return math.nan
    actual = _smoothed([c / n for c in observed_counts])
    expected = _smoothed(expected_shares)
    return float(sum((a - e) * math.log(a / e) for a, e in zip(actual, expected)))


def chi2_goodness_of_fit(observed_counts: Sequence[float], expected_shares: Sequence[float]) -> tuple[float, float]:
    """Pearson's chi-squared statistic of the counts against the shares, and its p-value
    (K - 1 degrees of freedom). Expected shares are floored at DRIFT_EPSILON. NaNs without data."""
    n = float(sum(observed_counts))
    k = len(observed_counts)
    if n <= 0 or k < 2 or k != len(expected_shares):
        return math.nan, math.nan
    expected = [n * e for e in _smoothed(expected_shares)]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed_counts, expected))
    return float(statistic), chi2_sf(statistic, k - 1)


def chi2_sf(x: float, dof: float) -> float:
    """Survival function of the chi-squared distribution, P(X > x) = Q(dof/2, x/2), the
    regularized upper incomplete gamma function (series below a+1, continued fraction above,
    as in Numerical Recipes' gammq)."""
    if dof <= 0:
        raise ValueError(f"dof must be > 0; got {dof}.")
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    a, z = dof / 2.0, x / 2.0
    if z < a + 1.0:
        return max(0.0, min(1.0, 1.0 - _lower_gamma_series(a, z)))
    return max(0.0, min(1.0, _upper_gamma_continued_fraction(a, z)))


def _lower_gamma_series(a: float, z: float) -> float:
    """P(a, z) by its power series (converges fast for z < a + 1)."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(10_000):
        denominator += 1.0
        term *= z / denominator
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-z + a * math.log(z) - math.lgamma(a))


def _upper_gamma_continued_fraction(a: float, z: float) -> float:
    """Q(a, z) by Lentz's continued fraction (converges fast for z >= a + 1)."""
    tiny = 1e-300
    b = z + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(-z + a * math.log(z) - math.lgamma(a)) * h


class LabelDrift:
    """The last ``window`` final labels against a reference distribution (thread-safe)."""

    def __init__(self, reference: Mapping[str, float], *, window: int):
        self.reference = dict(reference)
        self._labels: deque[str] = deque(maxlen=window)
        self._lock = threading.Lock()

    def observe(self, labels: Iterable[str]) -> None:
        with self._lock:
            self._labels.extend(labels)

    def __len__(self) -> int:
        return len(self._labels)

    def _counts_and_shares(self) -> tuple[list[int], list[float]]:
        with self._lock:
            tally = _Tally(self._labels)
        # Labels outside the reference (a fallback label, say) are categories with share 0.
        categories = list(self.reference) + sorted(set(tally) - set(self.reference))
        return [tally.get(c, 0) for c in categories], [self.reference.get(c, 0.0) for c in categories]

    def psi(self) -> float:
        return population_stability_index(*self._counts_and_shares())

    def chi2_pvalue(self) -> float:
        return chi2_goodness_of_fit(*self._counts_and_shares())[1]


class ShadowTracker:
    """Primary vs shadow labels over the last ``window`` texts (thread-safe)."""

    def __init__(self, label_names: Sequence[str], *, window: int):
        self._pairs: deque[tuple[str, str]] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.label_names = tuple(label_names)

    def observe(self, primary: Sequence[str], shadow: Sequence[str]) -> None:
        with self._lock:
            self._pairs.extend(zip(primary, shadow))

    def agreement_rate(self) -> float:
        with self._lock:
            pairs = list(self._pairs)
        return sum(p == s for p, s in pairs) / len(pairs) if pairs else math.nan

    def flip_rate(self) -> float:
        rate = self.agreement_rate()
        return math.nan if math.isnan(rate) else 1.0 - rate

    def label_delta(self, label: str) -> float:
        """Shadow count minus primary count of ``label`` in the window, as a share of the window."""
        with self._lock:
            pairs = list(self._pairs)
        if not pairs:
            return math.nan
        return (sum(s == label for _, s in pairs) - sum(p == label for p, _ in pairs)) / len(pairs)


# --- the registry --------------------------------------------------------------------------


class _LogWriterCollector:
    """Reads the LogWriter's counters at scrape time (they live in the writer's thread)."""

    def __init__(self, writer: Any):
        self.writer = writer

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily(f"{PREFIX}_log_queue_depth", "prediction log records waiting to be written",
                                value=self.writer.queue_depth)
        yield CounterMetricFamily(f"{PREFIX}_log_written", "prediction log records committed",
                                  value=self.writer.written)
        yield CounterMetricFamily(f"{PREFIX}_log_dropped", "prediction log records dropped (queue full)",
                                  value=self.writer.dropped)
        yield CounterMetricFamily(f"{PREFIX}_log_failed", "prediction log records whose write failed",
                                  value=self.writer.failed)
        yield CounterMetricFamily(f"{PREFIX}_log_retries", "prediction log commits retried (database busy)",
                                  value=self.writer.retries)


class ServeMetrics:
    """Every metric of one app, registered in its own CollectorRegistry."""

    def __init__(self, *, model_name: str, fingerprint: str, revision: str | None,
                 drift: LabelDrift | None = None, shadow: ShadowTracker | None = None,
                 log_writer: Any = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        p = PREFIX
        self.requests = Counter(f"{p}_requests", "HTTP requests", ["route", "status"], registry=registry)
        self.request_latency = Histogram(f"{p}_request_latency_seconds", "HTTP request latency", ["route"],
                                         buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram(f"{p}_batch_size", "rows per forward pass", buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.queue_depth = Gauge(f"{p}_queue_depth", "texts waiting for the model", registry=registry)
        self.inference_seconds = Histogram(f"{p}_inference_seconds", "wall time of one forward pass",
                                           buckets=LATENCY_BUCKETS, registry=registry)
        self.predictions = Counter(f"{p}_predictions", "final labels returned", ["label"], registry=registry)
        self.confidence = Histogram(f"{p}_confidence", "score of the final label", buckets=CONFIDENCE_BUCKETS,
                                    registry=registry)
        self.guard_failures = Counter(f"{p}_guard_failures", "guard reasons by rule", ["rule"], registry=registry)
        self.truncations = Counter(f"{p}_truncations", "texts cut by truncation", registry=registry)
        info = Gauge(f"{p}_model_info", "the served model", ["fingerprint", "revision", "model"], registry=registry)
        info.labels(fingerprint=fingerprint, revision=revision or "", model=model_name).set(1)
        self.drift = drift
        if drift is not None:
            Gauge(f"{p}_label_drift_psi", "PSI of the recent final labels vs the reference",
                  registry=registry).set_function(drift.psi)
            Gauge(f"{p}_label_drift_chi2_pvalue", "chi-squared goodness-of-fit p-value of the recent final "
                  "labels vs the reference", registry=registry).set_function(drift.chi2_pvalue)
            Gauge(f"{p}_label_drift_window_size", "final labels in the drift window",
                  registry=registry).set_function(lambda: len(drift))
        self.shadow = shadow
        if shadow is not None:
            self.shadow_comparisons = Counter(f"{p}_shadow_comparisons", "texts run by primary and shadow",
                                              registry=registry)
            self.shadow_flips = Counter(f"{p}_shadow_flips", "texts where the shadow's label differs",
                                        registry=registry)
            self.shadow_errors = Counter(f"{p}_shadow_errors", "shadow batches that failed", registry=registry)
            self.shadow_pairs = Counter(f"{p}_shadow_label_pairs", "texts by primary label and shadow label",
                                        ["primary_label", "shadow_label"], registry=registry)
            Gauge(f"{p}_shadow_agreement_rate", "share of recent texts where primary and shadow agree",
                  registry=registry).set_function(shadow.agreement_rate)
            Gauge(f"{p}_shadow_flip_rate", "share of recent texts where the shadow's label differs",
                  registry=registry).set_function(shadow.flip_rate)
            delta = Gauge(f"{p}_shadow_label_delta", "recent share of a label: shadow minus primary", ["label"],
                          registry=registry)
            for label in shadow.label_names:
                delta.labels(label=label).set_function(lambda label=label: shadow.label_delta(label))
        if log_writer is not None:
            registry.register(_LogWriterCollector(log_writer))

    # Called from the batcher's worker thread (prometheus_client metrics are thread-safe).
    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.inference_seconds.observe(seconds)

    def observe_shadow(self, primary: Sequence[str], shadow: Sequence[str]) -> None:
        if self.shadow is None:
            return
        self.shadow.observe(primary, shadow)
        self.shadow_comparisons.inc(len(primary))
        self.shadow_flips.inc(sum(p != s for p, s in zip(primary, shadow)))
        for (p, s), count in _Tally(zip(primary, shadow)).items():
            self.shadow_pairs.labels(primary_label=p, shadow_label=s).inc(count)

    def observe_shadow_error(self) -> None:
        if self.shadow is not None:
            self.shadow_errors.inc()

    def observe_results(self, labels: Sequence[str | None], scores: Sequence[float], truncated: int,
                        reason_counts: Mapping[str, int]) -> None:
        """``labels``: final labels, None where the guard gave none (rejected, needs_review).
        Non-finite ``scores`` are skipped: one NaN would make the confidence sum NaN for good."""
        for label, count in _Tally(labels).items():
            self.predictions.labels(label=NO_LABEL if label is None else label).inc(count)
        for score in scores:
            if math.isfinite(score):
                self.confidence.observe(score)
        if truncated:
            self.truncations.inc(truncated)
        for rule, count in reason_counts.items():
            if count:
                self.guard_failures.labels(rule=rule).inc(count)
        if self.drift is not None:
            self.drift.observe(label for label in labels if label is not None)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
