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

The drift statistics and windows are :mod:`textgate.serve.drift`.
"""

from __future__ import annotations

import math
from collections import Counter as _Tally
from collections.abc import Mapping, Sequence
from typing import Any

from textgate.serve.drift import LabelDrift, ShadowTracker

__all__ = ["NO_LABEL", "PREFIX", "ServeMetrics"]

PREFIX = "textgate"
# predictions_total's label value for results without a final label (rejected, needs_review).
NO_LABEL = "none"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


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
