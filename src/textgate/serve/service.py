"""What `textgate serve` does with a request once it has passed the edge: the pipeline of
``POST /v1/classify`` (limits, micro-batch, guard, metrics, prediction log) and the body of
``GET /v1/model``.

``Service.classify`` checks the limits (422 naming the field), submits the texts to the
batcher (a full queue or a closing server 503, past ``request_timeout_s`` 504, a text too long
for the model 422), runs the guard on the probabilities, counts the results, and logs one row
per text, hashed with the one text hash (``textgate._internal.hashing``): the model's
probabilities, tokens and truncation, the guard's verdict, and, when a shadow ran in time, the
shadow's label, probabilities, tokens and fingerprint. Under ``log_ack =
"committed"`` it answers only once those rows are committed; rows that cannot be by the
request's deadline (database locked past ``log_retry_s``, queue full, store error) make it a
503 with Retry-After, never a 200 the log does not hold. ``Service.model_info`` shows file
names, not the server's absolute paths.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import PurePath
from typing import Any

import numpy as np
from fastapi import HTTPException

from textgate._internal.hashing import TEXT_HASH_ALGORITHM, text_hash
from textgate.errors import DataError, LogQueueFull
from textgate.guard import Guard, GuardedPrediction
from textgate.model import Classifier
from textgate.predictions import Predictions
from textgate.serve.batcher import Batcher, BatcherClosed, QueueFull, ShadowOutput
from textgate.serve.config import ServeConfig
from textgate.serve.prometheus import ServeMetrics
from textgate.serve.schemas import ClassifyRequest

__all__ = ["RETRY_AFTER_S", "Service", "public_name"]

logger = logging.getLogger("textgate.serve")

# The Retry-After of every 503 and 504, in seconds: a full queue or a busy log frees quickly.
RETRY_AFTER_S = "1"


class Service:
    """What the routes do, kept out of the route functions so they stay one line each."""

    def __init__(self, classifier: Classifier, config: ServeConfig, guard: Guard, batcher: Batcher,
                 metrics: ServeMetrics, writer: Any, *, shadow: Classifier | None, hash_key: bytes | None):
        self.classifier, self.config, self.guard, self.batcher = classifier, config, guard, batcher
        self.metrics, self.writer, self.shadow, self.hash_key = metrics, writer, shadow, hash_key
        self.ready = self.stopping = False
        self.model_ref = _model_ref(classifier)

    async def warm_up(self) -> None:
        started = time.perf_counter()
        try:
            await self.batcher.submit(["warm-up"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - stays unready; /readyz tells the orchestrator
            logger.error("warm-up batch failed: %s: %s", type(exc).__name__, exc)
            return
        self.ready = True
        logger.info("ready: warm-up batch took %.3f s", time.perf_counter() - started)

    async def classify(self, body: ClassifyRequest, request_id: str) -> dict[str, Any]:
        texts = body.texts if body.texts is not None else [body.text]
        self._check_limits(texts, field="texts" if body.texts is not None else "text")
        deadline = time.monotonic() + self.config.request_timeout_s
        try:
            output = await asyncio.wait_for(self.batcher.submit(texts), timeout=self.config.request_timeout_s)
        except QueueFull as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": RETRY_AFTER_S}) from None
        except BatcherClosed as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": RETRY_AFTER_S}) from None
        except TimeoutError:
            raise HTTPException(504, f"The request took longer than request_timeout_s = "
                                     f"{self.config.request_timeout_s} s; send fewer or shorter texts.",
                                headers={"Retry-After": RETRY_AFTER_S}) from None
        except DataError as exc:  # truncation = false and a text too long for the model
            raise HTTPException(422, str(exc)) from None
        names = np.array(self.classifier.label_names, dtype=object)
        predictions = Predictions(label_names=self.classifier.label_names,
                                  predicted=names[output.probabilities.argmax(axis=1)],
                                  probabilities=output.probabilities, token_counts=output.token_counts,
                                  truncated=output.truncated)
        guarded = self.guard.check(texts, predictions)
        self.metrics.observe_results([g.label for g in guarded],
                                     [g.score for g in guarded if g.score is not None],
                                     int(np.sum(output.truncated)), Guard.counts(guarded))
        logged = await self._log(texts, guarded, output, request_id, deadline)
        return {
            "request_id": request_id,
            "model": self.model_ref,
            "results": [_result(g, all_scores=body.return_all_scores) for g in guarded],
            "logged": logged,
        }

    def _check_limits(self, texts: list[str], *, field: str) -> None:
        config = self.config
        if len(texts) > config.max_texts_per_request:
            raise HTTPException(422, f"Field 'texts' holds {len(texts)} texts; the limit is "
                                     f"max_texts_per_request = {config.max_texts_per_request}. Split the request.")
        for i, text in enumerate(texts):
            where = f"texts[{i}]" if field == "texts" else "text"
            if len(text) > config.max_chars_per_text:
                raise HTTPException(422, f"Field '{where}' has {len(text):,} characters; the limit is "
                                         f"max_chars_per_text = {config.max_chars_per_text}. Shorten the text.")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise HTTPException(422, f"Field '{where}' is not valid Unicode (it holds a lone surrogate "
                                         "escape such as \\ud800).") from None

    async def _log(self, texts: list[str], guarded: list[GuardedPrediction], output: Any,
                   request_id: str, deadline: float) -> str:
        if self.writer is None:
            return "disabled"
        from textgate.serve.store import LogRecord

        shadow = None
        if output.shadow is not None:
            try:
                shadow = await asyncio.wait_for(asyncio.shield(output.shadow),
                                                timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                shadow = None
        now = time.time()
        records = [
            LogRecord(time=now, request_id=request_id, item=g.index, model_fingerprint=self.classifier.fingerprint,
                      model_label=g.model_label, label=g.label, score=g.score, scores=g.scores, status=g.status,
                      reasons=tuple(g.reasons), text_sha256=text_hash(text, self.hash_key),
                      text=text if self.config.log_text else None,
                      tokens=int(output.token_counts[g.index]), truncated=bool(output.truncated[g.index]),
                      **self._shadow_fields(shadow, g.index))
            for g, text in zip(guarded, texts, strict=True)
        ]
        future = self.writer.submit(records)
        if self.config.log_ack == "queued":
            return "dropped" if future.done() and isinstance(future.exception(), LogQueueFull) else "queued"
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:  # still queued or retrying: it may be committed later, or counted as failed
            raise _not_logged(f"were not committed within request_timeout_s = {self.config.request_timeout_s} s "
                              "(the database is busy or locked)") from None
        except LogQueueFull as exc:
            raise _not_logged(f"could not be queued ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - the store failed; counted in log_failed_total, logged by the writer
            raise _not_logged(f"could not be written ({type(exc).__name__}; see the server log)") from None
        return "committed"

    def _shadow_fields(self, shadow: ShadowOutput | None, index: int) -> dict[str, Any]:
        """The shadow's columns of one log row: its label, probabilities (None when not finite),
        tokens and fingerprint; nothing when it did not run or failed."""
        if shadow is None or self.shadow is None:
            return {}
        row = shadow.probabilities[index]
        finite = bool(np.all(np.isfinite(row)))
        return {"shadow_label": shadow.labels[index], "shadow_fingerprint": self.shadow.fingerprint,
                "shadow_scores": {name: float(p) for name, p in zip(self.shadow.label_names, row, strict=True)}
                if finite else None,
                "shadow_tokens": int(shadow.token_counts[index]), "shadow_truncated": bool(shadow.truncated[index])}

    def model_info(self, reference: dict[str, float] | None) -> dict[str, Any]:
        config = self.config
        return {
            **self.model_ref,
            "labels": list(self.classifier.label_names),
            "spec": _public_paths(self.classifier.spec.settings()),
            "settings": _public_paths(self.classifier.settings()),
            "guard": {**config.guard.model_dump(mode="json"), "allowed_labels": list(self.guard.allowed_labels)},
            "limits": {key: getattr(config, key) for key in (
                "token_budget", "max_queue_texts", "max_texts_per_request", "max_chars_per_text",
                "max_body_bytes", "request_timeout_s", "header_timeout_s", "body_timeout_s")},
            "inference": {"workers": self.batcher.workers, "torch_threads_per_worker": self.batcher.torch_threads,
                          "worker_cores": self.batcher.worker_cores, "gather_ms": config.gather_ms,
                          "gather_texts": config.gather_texts,
                          "forward": "packed (padding-free)" if self.batcher.packed else "padded"},
            "logging": {"enabled": self.writer is not None, "log_text": config.log_text, "log_ack": config.log_ack,
                        "log_retry_s": config.log_retry_s, "text_hash": TEXT_HASH_ALGORITHM},
            "drift_reference": reference,
            "shadow": None if self.shadow is None else _model_ref(self.shadow),
        }


def _model_ref(classifier: Classifier) -> dict[str, Any]:
    return {"fingerprint": classifier.fingerprint, "revision": classifier.source.revision,
            "name": public_name(classifier.spec.model)}


def public_name(value: str) -> str:
    """A local absolute path as its last part (the folder or file name); anything else as is."""
    path = PurePath(value)
    return path.name if path.is_absolute() else value


def _public_paths(value: Any) -> Any:
    """``value`` with every absolute path string replaced by its name: the server's file layout
    is not the caller's business."""
    if isinstance(value, dict):
        return {key: _public_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_public_paths(item) for item in value]
    return public_name(value) if isinstance(value, str) else value


def _not_logged(why: str) -> HTTPException:
    return HTTPException(503, f"The predictions were not answered because their log rows {why}, and "
                              "log_ack = 'committed' answers only logged predictions. Retry after "
                              "Retry-After seconds with the same X-Request-ID.", headers={"Retry-After": RETRY_AFTER_S})


def _result(g: GuardedPrediction, *, all_scores: bool) -> dict[str, Any]:
    result = {"label": g.label, "score": g.score, "model_label": g.model_label, "status": g.status,
              "valid": g.valid, "reasons": list(g.reasons), "truncated": g.truncated}
    if all_scores:
        result["scores"] = g.scores
    return result
