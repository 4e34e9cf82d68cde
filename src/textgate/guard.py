"""The guard: check every prediction before it goes downstream.

The postmortem lesson: model output was passed on unchecked (raw ``LABEL_k`` names,
confident answers on empty or truncated text). A :class:`Guard` turns each prediction into a
:class:`GuardedPrediction` with a final ``label``, a ``status`` and the ids of the rules that
fired (``reasons``). Rules are read from the ``[guard]`` table of a serve config:

    [guard]
    allowed_labels = ["negative", "neutral", "positive"]   # default: the classifier's labels
    min_confidence = 0.6
    low_confidence = "needs_review"                         # or "fallback"
    fallback_label = "neutral"
    empty_text = "reject"                                   # or "fallback"
    short_text_chars = 4
    short_text_max_confidence = 0.99
    truncated = "flag"                                      # or "needs_review"

    rules = validate_table(GuardRules, raw["guard"], origin=path, prefix="guard")

Every rule that fired yields an outcome and the most cautious one wins:
rejected > needs_review > fallback > ok. An empty text (no visible character: see
:mod:`textgate.text`) is decided by ``empty_text`` alone, since the model's answer on it means
nothing. Non-finite probabilities (NaN or infinity: a broken model or export) are always
``rejected`` with rule ``non_finite``, and their scores are not passed on. ``label`` is None for rejected and
needs_review; ``valid`` is True only when the model's own answer passed every rule unchanged
(a recorded ``truncated`` flag excepted). Confidence rules are skipped for predictions
without probabilities.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from textgate.errors import ConfigError, DataError, TextgateError
from textgate.predictions import Predictions
from textgate.text import is_empty_text

if TYPE_CHECKING:
    from textgate.model import Classifier

__all__ = ["REASONS", "Guard", "GuardRules", "GuardedPrediction", "Status"]

# Stable rule ids: they are exported as metric names and stored in logs, so never rename one.
REASONS = (
    "invalid_label",
    "label_normalized",
    "low_confidence",
    "empty_text",
    "short_text_overconfident",
    "truncated",
    "non_finite",
)

Status = Literal["ok", "fallback", "needs_review", "rejected"]
_SEVERITY: dict[str, int] = {"ok": 0, "fallback": 1, "needs_review": 2, "rejected": 3}
_RAW_LABEL = re.compile(r"^LABEL_(\d+)$")


class GuardRules(BaseModel):
    """What a prediction must satisfy to pass, and what happens when it does not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_labels: tuple[str, ...] | None = Field(None, min_length=1,
                                                   description="default: the classifier's labels")
    min_confidence: float | None = Field(None, ge=0, le=1)
    low_confidence: Literal["fallback", "needs_review"] = "needs_review"
    fallback_label: str | None = None
    empty_text: Literal["reject", "fallback"] = "reject"
    short_text_chars: int | None = Field(None, ge=1, description="stripped length below which a text is short")
    short_text_max_confidence: float = Field(0.99, ge=0, le=1)
    truncated: Literal["flag", "needs_review"] = "flag"


@dataclass(frozen=True)
class GuardedPrediction:
    """One checked prediction. ``model_label`` is what the model said; ``label`` what goes on."""

    index: int
    model_label: str
    label: str | None
    score: float | None  # probability of model_label (after LABEL_k normalization)
    scores: dict[str, float] | None
    valid: bool
    status: Status
    reasons: tuple[str, ...]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}


class Guard:
    """Applies :class:`GuardRules` to a classifier's predictions.

    A ``LABEL_k`` the model emits is mapped to ``label_names[k]`` and passes with status
    ``ok`` but ``valid=False`` and reason ``label_normalized``: the answer is usable, yet it was
    not the model's clean output, which means its label map is broken. A ``LABEL_k`` with
    ``k`` out of range is an ``invalid_label``.
    """

    def __init__(self, classifier: Classifier, rules: GuardRules | None = None, *,
                 token_budget: int | None = None):
        self.classifier: Classifier | None = classifier
        self.token_budget = token_budget  # None: the inference engine's default
        self._configure(classifier.label_names, rules or GuardRules())

    @classmethod
    def for_labels(cls, label_names: Sequence[str], rules: GuardRules | None = None) -> Guard:
        """A guard for saved Predictions without loading the model: only :meth:`check` works."""
        guard = cls.__new__(cls)
        guard.classifier, guard.token_budget = None, None
        guard._configure(label_names, rules or GuardRules())
        return guard

    def _configure(self, label_names: Sequence[str], rules: GuardRules) -> None:
        self.rules = rules
        self.label_names = tuple(label_names)
        self.allowed_labels = rules.allowed_labels or self.label_names
        _check_fallback(rules, self.allowed_labels)

    def predict(self, texts: Sequence[str]) -> list[GuardedPrediction]:
        """Run the classifier on ``texts`` and check every prediction."""
        if self.classifier is None:
            raise TextgateError("This Guard was built with Guard.for_labels and has no model; "
                                "use Guard(classifier, rules) to predict, or call .check().")
        from textgate.infer import predict

        budget = {} if self.token_budget is None else {"token_budget": self.token_budget}
        return self.check(texts, predict(self.classifier, texts, progress=False, **budget))

    def check(self, texts: Sequence[str], predictions: Predictions) -> list[GuardedPrediction]:
        """Check saved or fresh ``predictions`` of ``texts`` (same order) against the rules."""
        _check_inputs(texts, predictions, self.label_names)
        return [self._check_one(i, text, predictions) for i, text in enumerate(texts)]

    @staticmethod
    def counts(results: Iterable[GuardedPrediction]) -> dict[str, int]:
        """How often each rule fired, every rule id present (zero included) for stable counters."""
        fired = Counter(reason for result in results for reason in result.reasons)
        return {reason: fired[reason] for reason in REASONS}

    def _check_one(self, index: int, text: str, predictions: Predictions) -> GuardedPrediction:
        model_label = str(predictions.predicted[index])
        label, reasons = self._resolve_label(model_label)
        scores = _scores(predictions, index)
        finite = scores is None or all(math.isfinite(p) for p in scores.values())
        if not finite:
            scores = None
        score = None if scores is None or label not in scores else scores[label]
        truncated = bool(predictions.truncated[index]) if predictions.truncated is not None else False
        if is_empty_text(text):
            outcomes: dict[str, Status] = {"empty_text": "rejected" if self.rules.empty_text == "reject" else "fallback"}
        elif not finite:
            outcomes = {"non_finite": "rejected"}
        else:
            outcomes = {reason: self._outcome(reason) for reason in reasons}
            outcomes |= {reason: self._outcome(reason) for reason in self._confidence_reasons(text, score)}
            if truncated:
                outcomes["truncated"] = self._outcome("truncated")
        status = max(outcomes.values(), key=_SEVERITY.__getitem__, default="ok")
        final = {"ok": label, "fallback": self.rules.fallback_label}.get(status)
        return GuardedPrediction(
            index=index, model_label=model_label, label=final, score=score, scores=scores,
            valid=status == "ok" and set(outcomes) <= {"truncated"}, status=status,
            reasons=tuple(outcomes), truncated=truncated,
        )

    def _resolve_label(self, model_label: str) -> tuple[str, list[str]]:
        label, reasons = model_label, []
        raw = _RAW_LABEL.match(model_label)
        if model_label not in self.label_names and raw and int(raw[1]) < len(self.label_names):
            label, reasons = self.label_names[int(raw[1])], ["label_normalized"]
        if label not in self.allowed_labels:
            reasons.append("invalid_label")
        return label, reasons

    def _confidence_reasons(self, text: str, score: float | None) -> list[str]:
        if score is None:
            return []
        rules, reasons = self.rules, []
        if rules.min_confidence is not None and score < rules.min_confidence:
            reasons.append("low_confidence")
        short = rules.short_text_chars is not None and len(text.strip()) < rules.short_text_chars
        if short and score > rules.short_text_max_confidence:
            reasons.append("short_text_overconfident")
        return reasons

    def _outcome(self, reason: str) -> Status:
        if reason == "label_normalized":
            return "ok"
        if reason == "invalid_label":
            return "fallback" if self.rules.fallback_label is not None else "rejected"
        if reason == "truncated":
            return "needs_review" if self.rules.truncated == "needs_review" else "ok"
        return self.rules.low_confidence  # low_confidence, short_text_overconfident


def _check_fallback(rules: GuardRules, allowed: tuple[str, ...]) -> None:
    uses_fallback = rules.low_confidence == "fallback" or rules.empty_text == "fallback"
    if rules.fallback_label is None:
        if uses_fallback:
            raise ConfigError("Guard rule 'fallback_label' must be set when low_confidence or "
                              "empty_text is \"fallback\"; got none. Set fallback_label to one "
                              f"of {', '.join(allowed)}.", field="fallback_label")
    elif rules.fallback_label not in allowed:
        raise ConfigError(f"Guard rule 'fallback_label' must be an allowed label "
                          f"({', '.join(allowed)}); got {rules.fallback_label!r}.",
                          field="fallback_label")


def _check_inputs(texts: Sequence[str], predictions: Predictions, label_names: tuple[str, ...]) -> None:
    if len(texts) != len(predictions):
        raise DataError(f"The guard got {len(texts)} texts but {len(predictions)} predictions; "
                        "pass the texts the predictions were made on, in the same order.",
                        field="texts")
    if tuple(predictions.label_names) != label_names:
        raise DataError(f"The predictions' label_names {list(predictions.label_names)} differ from "
                        f"the guard's {list(label_names)}; guard predictions of the same classifier.",
                        field="label_names")


def _scores(predictions: Predictions, index: int) -> dict[str, float] | None:
    if predictions.probabilities is None:
        return None
    row = predictions.probabilities[index]
    return {name: float(p) for name, p in zip(predictions.label_names, row, strict=True)}
