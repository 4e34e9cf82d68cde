"""`detect_drift`: a reference window against a current one -> `DriftReport` (pure: no files,
no models; the windows carry whatever a model produced).

Checks, overall and in every slice, each run when both windows have what it needs:

    predicted_labels   predictions        chi-squared test of homogeneity; PSI, counts
    true_labels        labels             the same on the true labels
    confidence         probabilities      Kolmogorov-Smirnov; KS distance, Wasserstein, mean difference
    truncation         truncation flags   two-proportion test (Fisher's exact); difference, Newcombe interval
    length             token counts, else texts (words)   as confidence
    characters         texts              as confidence
    url ... empty      texts              two-proportion test per descriptor (textgate.drift.descriptors)
    unknown_tokens     a model's tokenizer  two-proportion test of texts holding an unknown token
    embedding          a model's embeddings domain classifier, held-out AUC (Mann-Whitney, DeLong interval)
    slice_share        slices             two-proportion test of the share of texts in the slice

The false-alarm rate is controlled for the report as a whole: Holm's step-down procedure over
every check that was run (the "family"), at ``thresholds.alpha``, so that with two windows from
one population the chance that *any* check reports drift is at most alpha, whatever the
dependence between the checks. A check whose pooled values do not vary (no URL on either side)
cannot reach any p-value below 1 and is left out of the family (Tarone's argument). A check
drifts when its adjusted p-value is <= alpha and its effect reaches the threshold's minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from textgate._internal.records import Record, to_plain
from textgate.drift import stats
from textgate.drift.config import CHECK_IDS, DriftConfig
from textgate.drift.descriptors import RATE_DESCRIPTORS
from textgate.drift.domain import MIN_DOMAIN_ROWS, DomainScores, domain_scores
from textgate.drift.window import DriftWindow
from textgate.errors import DataError
from textgate.slices import SliceSpec, slice_masks

__all__ = ["CategoryCount", "DriftCheck", "DriftReport", "Histogram", "SliceSummary", "detect_drift"]

Status = Literal["drift", "pass", "skip"]
OVERALL = "overall"
# Which drifted check the verdict names first: label distributions, then the model's other
# outputs, then the inputs as the model sees them, then descriptors, then the slices.
_TIER = {"predicted_labels": 0, "true_labels": 0, "confidence": 1, "truncation": 1, "embedding": 2,
         "unknown_tokens": 3, "length": 3, "characters": 3, **dict.fromkeys(RATE_DESCRIPTORS, 3),
         "slice_share": 4}
_SLICE_TIER = 5


@dataclass(frozen=True)
class CategoryCount(Record):
    """Rows of one category (a label name) on each side, and their shares of the side."""

    category: str
    reference: int
    current: int
    reference_share: float
    current_share: float


# The test result's fields a report shows for every check (null for a skipped one).
_RESULT_FIELDS = ("test", "statistic", "p_value", "effect_name", "effect", "ci_low", "ci_high", "reference",
                  "current", "shift")


@dataclass(frozen=True)
class DriftCheck(Record):
    """One check on one scope: the test (``result``, textgate.drift.stats.StatResult; None when
    skipped), its Holm-adjusted p-value, and the minimum effect (``threshold``) that drift needs.
    ``in_family``: counted in the Holm family (run, and able to reach a p-value below 1).
    ``to_dict`` flattens ``result`` into the check (report.json's ``checks``)."""

    id: str
    name: str
    scope: str
    status: Status
    reason: str
    reference_n: int
    current_n: int
    result: stats.StatResult | None = None
    p_adjusted: float | None = None
    threshold: float | None = None
    unit: str = ""
    counts: tuple[CategoryCount, ...] = ()
    in_family: bool = False
    change: str = ""  # the change in words, e.g. "negative 15.6% → 32.3%"

    @property
    def p_value(self) -> float | None:
        return None if self.result is None else self.result.p_value

    @property
    def effect(self) -> float | None:
        return None if self.result is None else self.result.effect

    @property
    def effect_name(self) -> str | None:
        return None if self.result is None else self.result.effect_name

    @property
    def shift(self) -> float:
        return 0.0 if self.result is None else self.result.shift

    def to_dict(self) -> dict[str, Any]:
        plain = to_plain({f.name: getattr(self, f.name) for f in fields(self) if f.name != "result"})
        r = self.result
        values = {name: None if r is None else getattr(r, name) for name in _RESULT_FIELDS}
        values["wasserstein"] = None if r is None else dict(r.extra).get("wasserstein")
        return {**plain, **to_plain(values)}


@dataclass(frozen=True)
class Histogram(Record):
    id: str
    scope: str
    edges: tuple[float, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]


@dataclass(frozen=True)
class SliceSummary(Record):
    name: str
    reference_rows: int | None
    current_rows: int | None
    skipped: str | None = None


@dataclass(frozen=True)
class DriftReport(Record):
    verdict: Literal["drift", "no drift"]
    summary: str
    checks: tuple[DriftCheck, ...]
    family_size: int
    reference: dict[str, Any]
    current: dict[str, Any]
    slices: tuple[SliceSummary, ...]
    histograms: tuple[Histogram, ...]
    config: dict[str, Any]
    notes: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "drift" else 0

    @property
    def drifted(self) -> tuple[DriftCheck, ...]:
        return tuple(c for c in self.checks if c.status == "drift")

    def to_dict(self) -> dict[str, Any]:
        return {**to_plain({f.name: getattr(self, f.name) for f in fields(self) if f.name != "checks"}),
                "checks": [c.to_dict() for c in self.checks]}


def detect_drift(reference: DriftWindow, current: DriftWindow, *, config: DriftConfig | None = None,
                 slices: tuple[SliceSpec, ...] = ()) -> DriftReport:
    """Compare the windows (module docstring); ``slices`` come on top of the config's."""
    config = config or DriftConfig()
    specs = (*config.slices, *slices)
    settings, skip = config.settings, set(config.settings.skip)
    domain = None
    if reference.embeddings is not None and current.embeddings is not None and "embedding" not in skip:
        domain = domain_scores(reference.embeddings, current.embeddings, holdout=settings.domain_holdout,
                               max_rows=settings.domain_max_rows, seed=settings.seed)
    scope = _Scope(reference, current, config, domain, skip)
    drafts = scope.checks(OVERALL, None, None)
    summaries = []
    for spec, masks in _slice_masks(specs, reference, current):
        if isinstance(masks, str):
            summaries.append(SliceSummary(spec.name, None, None, skipped=masks))
            continue
        ref_mask, cur_mask = masks
        summaries.append(SliceSummary(spec.name, int(ref_mask.sum()), int(cur_mask.sum())))
        drafts += scope.slice_checks(spec.name, ref_mask, cur_mask)
    checks = _decide(drafts, config)
    family = sum(c.in_family for c in checks)
    if not any(c.status != "skip" for c in checks):
        raise DataError(f"Nothing to compare between {reference.source} and {current.source}: every check "
                        "needs something neither window has in common (texts, labels, predictions). Give "
                        "both sides as data files, or pass --model to predict them.", field="windows")
    order = {"drift": 0, "pass": 1, "skip": 2}
    checks = sorted(checks, key=lambda c: (order[c.status], c.scope != OVERALL, -c.shift))
    verdict: Literal["drift", "no drift"] = "drift" if any(c.status == "drift" for c in checks) else "no drift"
    return DriftReport(verdict, _summary(checks, family, config), tuple(checks), family, reference.describe(),
                       current.describe(), tuple(summaries), _histograms(reference, current, config),
                       config.to_dict(), tuple(_notes(reference, current)))


class _Scope:
    """The checks of one scope (overall, or a slice given by a mask per side)."""

    def __init__(self, reference: DriftWindow, current: DriftWindow, config: DriftConfig,
                 domain: DomainScores | None, skip: set[str]):
        self.ref, self.cur, self.t, self.domain, self.skip = reference, current, config.thresholds, domain, skip
        self.both_tokens = all(w.predictions is not None and w.predictions.token_counts is not None
                               for w in (reference, current))

    def slice_checks(self, name: str, ref_mask: np.ndarray, cur_mask: np.ndarray) -> list[DriftCheck]:
        share = self._proportion("slice_share", name, ref_mask, cur_mask)
        share = replace(share, change=f"{share.change} of texts")
        n_ref, n_cur = int(ref_mask.sum()), int(cur_mask.sum())
        if min(n_ref, n_cur) < self.t.min_slice_size:
            reason = (f"slice has {n_ref:,} reference and {n_cur:,} current rows (< min_slice_size "
                      f"{self.t.min_slice_size} on a side)")
            return [share, *[_skipped(i, name, reason, n_ref, n_cur) for i in CHECK_IDS
                             if i not in ("slice_share",) and i not in self.skip]]
        return [share, *self.checks(name, ref_mask, cur_mask)]

    def checks(self, scope: str, ref_mask: np.ndarray | None, cur_mask: np.ndarray | None) -> list[DriftCheck]:
        ref, cur = self.ref, self.cur
        n_ref = ref.rows if ref_mask is None else int(ref_mask.sum())
        n_cur = cur.rows if cur_mask is None else int(cur_mask.sum())
        texts = "texts (a Predictions file has none)"
        length = ((_output("token_counts"), "tokens") if self.both_tokens else (_descriptor("words"), "words"))
        plan = [
            ("predicted_labels", _output("predicted"), "categories", "", "predictions"),
            ("true_labels", lambda w: w.labels, "categories", "", "true labels"),
            ("confidence", _output("confidence"), "distribution", "", "probabilities (textgate predictions)"),
            ("truncation", _output("truncated"), "proportion", "", "truncation flags (textgate predictions)"),
            ("length", length[0], "distribution", length[1], "texts or token counts"),
            ("characters", _descriptor("characters"), "distribution", "characters", texts),
            *[(key, _descriptor(key), "proportion", "", texts) for key in RATE_DESCRIPTORS],
            ("unknown_tokens", lambda w: w.unknown_tokens, "proportion", "", "texts and a model (--model)"),
            ("embedding", lambda w: w.embeddings, "embedding", "", "texts and a model (--model)"),
        ]
        out: list[DriftCheck] = []
        for check_id, get, kind, unit, needs in plan:
            if check_id in self.skip:
                continue
            a, b = get(ref), get(cur)
            if a is None or b is None:
                out.append(_skipped(check_id, scope, f"needs {needs} on both sides", n_ref, n_cur))
            elif kind == "embedding":
                out.append(self._embedding(scope, ref_mask, cur_mask, n_ref, n_cur))
            else:
                a = a if ref_mask is None else np.asarray(a)[ref_mask]
                b = b if cur_mask is None else np.asarray(b)[cur_mask]
                if kind == "categories":
                    out.append(self._categories(check_id, scope, a, b))
                elif kind == "distribution":
                    out.append(self._distribution(check_id, scope, a, b, unit))
                else:
                    out.append(self._proportion(check_id, scope, a, b))
        return out

    # --- the kinds of check ----------------------------------------------------------------

    def _categories(self, check_id: str, scope: str, ref: np.ndarray, cur: np.ndarray) -> DriftCheck:
        seen = [str(v) for v in (*ref, *cur)]
        names = list(dict.fromkeys([*self.ref.label_names, *self.cur.label_names]))
        names += sorted(set(seen) - set(names))
        ref_counts = np.array([np.sum(ref == n) for n in names]) if len(ref) else np.zeros(len(names), int)
        cur_counts = np.array([np.sum(cur == n) for n in names]) if len(cur) else np.zeros(len(names), int)
        keep = (ref_counts + cur_counts) > 0
        names = [n for n, k in zip(names, keep) if k]
        ref_counts, cur_counts = ref_counts[keep], cur_counts[keep]
        result = stats.categorical_test(ref_counts, cur_counts)
        counts = tuple(CategoryCount(n, int(r), int(c), r / max(len(ref), 1), c / max(len(cur), 1))
                       for n, r, c in zip(names, ref_counts, cur_counts))
        moved = sorted(counts, key=lambda c: -abs(c.current_share - c.reference_share))[:2]
        change = ", ".join(f"{c.category} {_pct(c.reference_share)} → {_pct(c.current_share)}"
                           for c in counts if c in moved)
        return _tested(check_id, scope, result, self.t.min_psi, len(ref), len(cur),
                       constant=len(names) < 2, counts=counts, change=change)

    def _distribution(self, check_id: str, scope: str, ref: np.ndarray, cur: np.ndarray, unit: str) -> DriftCheck:
        result = stats.distribution_test(ref, cur)
        digits = 3 if check_id == "confidence" else 1
        change = f"mean {result.reference:.{digits}f} → {result.current:.{digits}f}" + (f" {unit}" if unit else "")
        return _tested(check_id, scope, result, self.t.min_ks, len(ref), len(cur), unit=unit,
                       constant=np.ptp(np.concatenate([ref, cur]).astype(float)) == 0, change=change,
                       name=f"length ({unit})" if check_id == "length" else None)

    def _proportion(self, check_id: str, scope: str, ref: np.ndarray, cur: np.ndarray) -> DriftCheck:
        hits_ref, hits_cur = int(np.sum(ref)), int(np.sum(cur))
        result = stats.proportion_test(hits_ref, len(ref), hits_cur, len(cur))
        constant = (hits_ref + hits_cur) in (0, len(ref) + len(cur))
        return _tested(check_id, scope, result, self.t.min_rate_change, len(ref), len(cur), constant=constant,
                       change=f"{_pct(result.reference)} → {_pct(result.current)}")

    def _embedding(self, scope: str, ref_mask: np.ndarray | None, cur_mask: np.ndarray | None,
                   n_ref: int, n_cur: int) -> DriftCheck:
        d = self.domain
        if d is None:
            return _skipped("embedding", scope, f"too few rows for a held-out domain classifier (each side needs "
                            f"{2 * MIN_DOMAIN_ROWS} or more)", n_ref, n_cur)
        ref_scores, cur_scores = d.reference_scores, d.current_scores
        if ref_mask is not None and cur_mask is not None:
            ref_scores, cur_scores = ref_scores[ref_mask[d.reference_rows]], cur_scores[cur_mask[d.current_rows]]
        if min(len(ref_scores), len(cur_scores)) < MIN_DOMAIN_ROWS:
            return _skipped("embedding", scope, f"{len(ref_scores)} reference and {len(cur_scores)} current "
                            "held-out rows, too few for an AUC", n_ref, n_cur)
        result = stats.auc_test(ref_scores, cur_scores)
        return _tested("embedding", scope, result, self.t.min_domain_auc, len(ref_scores), len(cur_scores), constant=False,
                       change=f"domain classifier AUC {result.effect:.3f} "
                              f"[{result.ci_low:.3f}, {result.ci_high:.3f}] on held-out rows")


def _output(name: str):
    """A window's Predictions attribute ``name``, or None without predictions."""
    return lambda w: None if w.predictions is None else getattr(w.predictions, name)


def _descriptor(name: str):
    """A window's text descriptor ``name``, or None without texts."""
    return lambda w: None if w.descriptors is None else getattr(w.descriptors, name)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%" if math.isfinite(value) else "n/a"


def _tested(check_id: str, scope: str, result: stats.StatResult, threshold: float, n_ref: int, n_cur: int, *,
            constant: bool, change: str, counts: tuple[CategoryCount, ...] = (), unit: str = "",
            name: str | None = None) -> DriftCheck:
    return DriftCheck(id=check_id, name=name or CHECK_IDS[check_id], scope=scope, status="pass", reason="",
                      reference_n=n_ref, current_n=n_cur, result=result, threshold=threshold, unit=unit,
                      counts=counts, in_family=not constant, change=change)


def _skipped(check_id: str, scope: str, reason: str, n_ref: int, n_cur: int) -> DriftCheck:
    return DriftCheck(id=check_id, name=CHECK_IDS[check_id], scope=scope, status="skip", reason=reason,
                      reference_n=n_ref, current_n=n_cur)


def _decide(drafts: list[DriftCheck], config: DriftConfig) -> list[DriftCheck]:
    """Holm over the family, then each check's status and reason."""
    alpha = config.thresholds.alpha
    family = [i for i, c in enumerate(drafts) if c.in_family]
    adjusted = stats.holm_adjust([drafts[i].p_value for i in family]) if family else []
    out = list(drafts)
    for i, p_adj in zip(family, adjusted):
        c = drafts[i]
        big = abs(c.effect) >= c.threshold if c.effect_name != "AUC" else c.effect >= c.threshold
        size = f"{c.effect_name} {_effect(c)}"
        if p_adj <= alpha and big:
            status, reason = "drift", f"{c.change} ({size}, adjusted p {_p(p_adj)})"
        elif p_adj <= alpha:
            status, reason = "pass", (f"significant (adjusted p {_p(p_adj)}) but {size} is below the minimum "
                                      f"{c.threshold:g}: {c.change}")
        else:
            status, reason = "pass", f"no significant change (adjusted p {_p(p_adj)}): {c.change}"
        out[i] = replace(c, p_adjusted=float(p_adj), status=status, reason=reason)
    for i, c in enumerate(out):
        if c.status != "skip" and not c.in_family:
            out[i] = replace(c, reason=f"the same single value on both sides, nothing can differ: {c.change}")
    return out


def _effect(check: DriftCheck) -> str:
    value = check.effect or 0.0
    if check.effect_name == "difference":
        return f"{100 * value:+.1f} pts"
    return f"{value:.3f}"


def _p(value: float) -> str:
    if value < 1e-300:
        return "< 1e-300"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def _describe(check: DriftCheck, *, effect: bool = False) -> str:
    where = "" if check.scope == OVERALL else f" in slice '{check.scope}'"
    verb = "changed" if check.id == "embedding" else "shifted"
    size = f" ({check.effect_name} {_effect(check)})" if effect and check.effect_name != "difference" else ""
    return f"{check.name}{where} {verb}: {check.change}{size}"


def _summary(checks: list[DriftCheck], family: int, config: DriftConfig) -> str:
    control = f"Holm, family-wise false-alarm rate {config.thresholds.alpha:.0%}"
    drifted = [c for c in checks if c.status == "drift"]
    if not drifted:
        tested = [c for c in checks if c.in_family]
        largest = max(tested, key=lambda c: c.shift, default=None)
        tail = "" if largest is None else (f"; largest change: {largest.name}"
                                           + ("" if largest.scope == OVERALL else f" in slice '{largest.scope}'")
                                           + f" {largest.change} (adjusted p {_p(largest.p_adjusted or 1.0)})")
        return f"NO DRIFT: none of {family} checks drifted ({control}){tail}"

    def rank(c: DriftCheck) -> tuple[int, float]:
        tier = _TIER[c.id] if c.scope == OVERALL or c.id == "slice_share" else _SLICE_TIER
        return tier, -c.shift

    lead = min(drifted, key=rank)
    others = sorted((c for c in drifted if c is not lead), key=lambda c: (c.scope != OVERALL, -c.shift))
    also = f"; also {_describe(others[0])}" if others else ""
    return f"DRIFT: {_describe(lead, effect=True)}{also}; {len(drifted)} of {family} checks drifted ({control})"


def _slice_masks(specs: tuple[SliceSpec, ...], ref: DriftWindow, cur: DriftWindow):
    """(spec, (reference mask, current mask)) per slice, or (spec, why it cannot be computed)."""
    tokens = all(w.predictions is not None and w.predictions.token_counts is not None for w in (ref, cur))
    for spec in specs:
        if spec.kind != "length" and not (ref.has_texts and cur.has_texts):
            yield spec, "a side has no texts (a Predictions file), so a regex or column slice cannot be taken"
            continue
        if spec.kind == "length" and not tokens and not (ref.has_texts and cur.has_texts):
            yield spec, "a side has neither texts nor token counts"
            continue
        masks = []
        for w in (ref, cur):
            texts = w.texts if w.texts is not None else ("",) * w.rows
            counts = w.predictions.token_counts if tokens else None
            masks.append(slice_masks([spec], texts=texts, columns=w.columns, token_counts=counts).masks[spec.name])
        yield spec, (masks[0], masks[1])


def _histograms(ref: DriftWindow, cur: DriftWindow, config: DriftConfig) -> tuple[Histogram, ...]:
    out = []
    sides = [None if w.predictions is None else w.predictions.confidence for w in (ref, cur)]
    if sides[0] is not None and sides[1] is not None:
        edges = np.linspace(0.0, 1.0, config.settings.confidence_bins + 1)
        counts = [np.histogram(np.clip(s, 0.0, 1.0), bins=edges)[0] for s in sides]
        out.append(Histogram("confidence", OVERALL, tuple(float(e) for e in edges),
                             tuple(int(c) for c in counts[0]), tuple(int(c) for c in counts[1])))
    return tuple(out)


def _notes(ref: DriftWindow, cur: DriftWindow) -> list[str]:
    notes = []
    rp, cp = ref.predictions, cur.predictions
    if rp is not None and cp is not None:
        if rp.model_fingerprint and cp.model_fingerprint and rp.model_fingerprint != cp.model_fingerprint:
            notes.append(f"the windows were predicted by different models (fingerprints {rp.model_fingerprint[:12]} "
                         f"and {cp.model_fingerprint[:12]}): a change in the outputs may be the model's, not the data's")
        if rp.label_names != cp.label_names:
            notes.append(f"the two predictions name different label sets ({', '.join(rp.label_names)} vs "
                         f"{', '.join(cp.label_names)}); labels are compared by name")
    if (rp is None) != (cp is None):
        notes.append("only one side has predictions: the output checks are skipped; pass --model to predict both")
    if (rp is not None and rp.token_counts is not None) != (cp is not None and cp.token_counts is not None):
        notes.append("only one side has token counts, so length is compared in words")
    return notes
