"""The JSON bodies of the HTTP API: what ``POST /v1/classify`` takes and answers, what
``GET /v1/model``, ``/healthz`` and ``/readyz`` answer, and the body of every 4xx/5xx. The
OpenAPI schema (``/openapi.json``) is generated from these pydantic models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ClassifyRequest", "ClassifyResponse", "ClassifyResult", "ModelInfo", "ModelRef", "Problem", "Status"]


class ClassifyRequest(BaseModel):
    """One text (``text``) or several (``texts``), not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["i love this"]}]})

    texts: list[str] | None = Field(None, description="texts to classify, in order")
    text: str | None = Field(None, description="a single text (instead of texts)")
    return_all_scores: bool = Field(False, description="include every label's probability")

    @model_validator(mode="after")
    def _one_of_text_or_texts(self):
        if (self.texts is None) == (self.text is None):
            raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
        if self.texts is not None and not self.texts:
            raise ValueError("'texts' must hold at least one text")
        return self


class ClassifyResult(BaseModel):
    label: str | None = Field(description="final label after the guard; null when rejected or needs review")
    score: float | None = Field(description="probability of model_label")
    model_label: str
    status: Literal["ok", "fallback", "needs_review", "rejected"]
    valid: bool
    reasons: list[str]
    truncated: bool
    scores: dict[str, float] | None = Field(None, description="every label's probability (return_all_scores)")


class ModelRef(BaseModel):
    fingerprint: str
    revision: str | None
    name: str


class ClassifyResponse(BaseModel):
    request_id: str
    model: ModelRef
    results: list[ClassifyResult]
    logged: Literal["committed", "queued", "disabled", "dropped", "failed"]


class ModelInfo(BaseModel):
    name: str
    fingerprint: str
    revision: str | None
    labels: list[str]
    spec: dict[str, Any]
    settings: dict[str, Any]
    guard: dict[str, Any]
    limits: dict[str, Any]
    inference: dict[str, Any]
    logging: dict[str, Any]
    drift_reference: dict[str, float] | None
    shadow: ModelRef | None


class Problem(BaseModel):
    detail: Any


class Status(BaseModel):
    status: str
