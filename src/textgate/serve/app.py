"""The HTTP API of `textgate serve`: a thin FastAPI adapter over the batcher, guard and log.

    POST /v1/classify   {"texts": [...]} or {"text": "..."}, "return_all_scores": false
    GET  /v1/model      spec, labels, settings, guard rules, limits
    GET  /healthz       the process is up
    GET  /readyz        the model is loaded and warmed up (503 until then, and while stopping)
    GET  /metrics       Prometheus text format (see textgate.serve.prometheus)
    GET  /openapi.json  the schema of all of the above

Every prediction goes through the Guard and is logged (textgate's one text hash, a keyed
HMAC-SHA256 of the text, ``textgate._internal.hashing``; the text itself only with
``log_text``). The API key is checked first, before the body is read, so an unauthenticated
caller gets 401 whatever it sends. Limits answer 4xx, never 5xx: body size
413, a body slower than ``body_timeout_s`` 408 (and the connection is closed), too many texts
or characters 422 (naming the field and the limit), bad JSON/types/UTF-8 400/422. Every 503 and
504 carries Retry-After: a full queue 503, a request over ``request_timeout_s`` 504, and under
``log_ack = "committed"`` a prediction whose log rows are not durable by the request's deadline
(database locked past ``log_retry_s``, queue full, store error) 503 — never a 200 that the log
does not hold. Such a 503 may still be logged later: retry with the same X-Request-ID. Server
logs never hold raw text; ``/v1/model`` shows file names, not the server's absolute paths.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import PurePath
from typing import Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import MutableHeaders

from textgate._internal.hashing import TEXT_HASH_ALGORITHM, text_hash
from textgate.errors import DataError
from textgate.guard import REASONS, Guard, GuardedPrediction
from textgate.model import Classifier
from textgate.predictions import Predictions
from textgate.serve.batcher import (
    Batcher,
    BatcherClosed,
    QueueFull,
    split_threads,
    worker_cores,
)
from textgate.serve.config import ServeConfig, reference_shares
from textgate.serve.drift import LabelDrift, ShadowTracker
from textgate.serve.prometheus import NO_LABEL, ServeMetrics

__all__ = ["ClassifyRequest", "ClassifyResponse", "create_app"]

logger = logging.getLogger("textgate.serve")

# Prediction log writer: room for a few seconds of heavy traffic; group commits of up to 512
# rows. No gathering window: the writer commits what is queued as soon as it is free, and the
# rows that arrive during one commit's fsync form the next group. A 5 ms window cost a lone
# client 4 ms per request (p50 17.8 -> 13.4 ms) and bought nothing at 32 clients.
LOG_MAX_QUEUE = 20_000
LOG_MAX_BATCH = 512
LOG_FLUSH_INTERVAL_S = 0.0
RETRY_AFTER_S = "1"
AUTH_FAILED = "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
# Paths whose requests need an API key (when keys are configured); checked before the body is read.
_PROTECTED_PREFIX = "/v1/"
# A client's X-Request-ID is kept only if it is short and plain (it lands in logs and headers).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


# --- request and response records ------------------------------------------------------------


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


# --- the app -----------------------------------------------------------------------------------


def create_app(classifier: Classifier, config: ServeConfig, *, shadow: Classifier | None = None,
               store: Any = None) -> FastAPI:
    """Build the app. ``store``: a PredictionStore to log to (default: ``open_store(config.log_url)``
    unless ``log_url`` is ""). API keys and the drift reference are resolved here, at start-up."""
    guard = Guard(classifier, config.guard, token_budget=config.token_budget)
    api_keys = tuple(key.encode() for key in config.resolved_api_keys())
    reference = reference_shares(config.drift, classifier.label_names)
    owns_store = store is None and bool(config.log_url)
    writer = hash_key = None
    if store is not None or owns_store:
        from textgate.serve.store import LogWriter, log_hash_key, open_store

        hash_key = log_hash_key(config.log_url if owns_store else store.engine.url.render_as_string(),
                                key=config.log_hash_key, key_file=config.log_hash_key_file)
        if owns_store:
            store = open_store(config.log_url)
        writer = LogWriter(store, max_queue=LOG_MAX_QUEUE, max_batch=LOG_MAX_BATCH,
                           flush_interval_s=LOG_FLUSH_INTERVAL_S, retry_s=config.log_retry_s)
    window = config.drift.window
    metrics = ServeMetrics(
        model_name=_public_name(classifier.spec.model), fingerprint=classifier.fingerprint,
        revision=classifier.source.revision,
        drift=LabelDrift(reference, window=window) if reference else None,
        shadow=ShadowTracker(classifier.label_names, window=window) if shadow is not None else None,
        log_writer=writer,
    )
    for rule in REASONS:  # every series present from the start, so rate() sees the first failure
        metrics.guard_failures.labels(rule=rule)
    for label in (*guard.allowed_labels, NO_LABEL):
        metrics.predictions.labels(label=label)
    workers, torch_threads = split_threads(config.inference_workers)
    batcher = Batcher(classifier, token_budget=config.token_budget, max_queue_texts=config.max_queue_texts,
                      workers=workers, torch_threads=torch_threads,
                      worker_cores=worker_cores(workers, torch_threads) if config.pin_workers else None,
                      gather_ms=config.gather_ms, gather_texts=config.gather_texts,
                      shadow=shadow, on_batch=metrics.observe_batch, on_queue_depth=metrics.queue_depth.set,
                      on_shadow=metrics.observe_shadow, on_shadow_error=metrics.observe_shadow_error)
    service = _Service(classifier, config, guard, batcher, metrics, writer, shadow=shadow, hash_key=hash_key)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        warm_up = asyncio.create_task(service.warm_up())
        try:
            yield
        finally:
            service.ready = False
            warm_up.cancel()
            await batcher.close()
            if writer is not None:  # drains the queue, retrying a busy database for up to log_retry_s
                await asyncio.to_thread(writer.close)
            if owns_store:
                store.close()

    app = FastAPI(title="textgate", version=_version(), lifespan=lifespan,
                  description="Guarded text classification with micro-batching, metrics and a prediction log.")
    app.state.service = service
    app.add_middleware(_Edge, max_body_bytes=config.max_body_bytes, body_timeout_s=config.body_timeout_s,
                       api_keys=api_keys, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    authorized = Depends(_auth_dependency(api_keys))
    problems = {code: {"model": Problem} for code in (400, 401, 408, 413, 422, 503, 504)}

    @app.post("/v1/classify", response_model=ClassifyResponse, response_model_exclude_unset=True,
              dependencies=[authorized], responses=problems, tags=["classify"])
    async def classify(body: ClassifyRequest, request: Request) -> Any:
        """Classify texts; every result is checked by the guard and logged."""
        return await service.classify(body, request.scope["state"]["request_id"])

    @app.get("/v1/model", response_model=ModelInfo, dependencies=[authorized],
             responses={401: {"model": Problem}}, tags=["model"])
    async def model_info() -> Any:
        """The served model: spec, labels, settings, guard rules and limits."""
        return service.model_info(reference)

    @app.get("/healthz", response_model=Status, tags=["ops"])
    async def healthz() -> Any:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Status, responses={503: {"model": Status}}, tags=["ops"])
    async def readyz() -> Any:
        """Ready when the model is loaded and has run one warm-up batch."""
        if not service.ready:
            return JSONResponse({"status": "starting" if not service.stopping else "stopping"}, status_code=503,
                                headers={"Retry-After": RETRY_AFTER_S})
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response, tags=["ops"],
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus_metrics() -> Response:
        """Prometheus metrics."""
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return app


class _Service:
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
        logged = await self._log(texts, guarded, output.shadow, request_id, deadline)
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

    async def _log(self, texts: list[str], guarded: list[GuardedPrediction], shadow_future: Any,
                   request_id: str, deadline: float) -> str:
        if self.writer is None:
            return "disabled"
        from textgate.serve.store import LogQueueFull, LogRecord

        shadow_labels = None
        if shadow_future is not None:
            try:
                shadow_labels = await asyncio.wait_for(asyncio.shield(shadow_future),
                                                       timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                shadow_labels = None
        now = time.time()
        records = [
            LogRecord(time=now, request_id=request_id, item=g.index, model_fingerprint=self.classifier.fingerprint,
                      model_label=g.model_label, label=g.label, score=g.score, scores=g.scores, status=g.status,
                      reasons=tuple(g.reasons), text_sha256=text_hash(text, self.hash_key),
                      text=text if self.config.log_text else None,
                      shadow_label=None if shadow_labels is None else shadow_labels[g.index])
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
            "name": _public_name(classifier.spec.model)}


def _public_name(value: str) -> str:
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
    return _public_name(value) if isinstance(value, str) else value


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


def _auth_dependency(keys: tuple[bytes, ...]):
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")

    async def require_key(x_api_key: str | None = Security(api_key_header),
                          credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:  # noqa: B008 - FastAPI's dependency idiom
        if not keys:
            return
        offered = x_api_key or (credentials.credentials if credentials is not None else None)
        if not _authorized(offered, keys):
            raise HTTPException(401, AUTH_FAILED, headers={"WWW-Authenticate": "Bearer"})

    return require_key


def _authorized(offered: str | None, keys: tuple[bytes, ...]) -> bool:
    if not keys:
        return True
    if not offered:
        return False
    return _key_matches(offered.encode("utf-8", "surrogateescape"), keys)


def _offered_key(headers: dict[str, str]) -> str | None:
    """The key in X-API-Key or 'Authorization: Bearer <key>', read as FastAPI's security schemes do."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return headers.get("x-api-key") or (credentials if scheme.lower() == "bearer" and credentials else None)


def _key_matches(offered: bytes, keys: tuple[bytes, ...]) -> bool:
    """Constant-time comparison against every key (no early exit that would time which one)."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(offered, key)
    return matched


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without echoing the input back (it may be a 100k-character text)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("textgate")
    except PackageNotFoundError:
        return "unknown"


class _Edge:
    """Outermost ASGI layer: request id, API key, body size and time limits, request metrics
    and access timing.

    The API key of a ``/v1/`` request is checked before anything else (401 whatever the body).
    The body is then read here, up to ``max_body_bytes`` (Content-Length is checked first, then
    the bytes as they arrive, for chunked uploads) and within ``body_timeout_s`` (else 408 and
    the connection is closed), and replayed to the app."""

    def __init__(self, app: Any, *, max_body_bytes: int, body_timeout_s: float, api_keys: tuple[bytes, ...],
                 metrics: ServeMetrics):
        self.app, self.max_body_bytes, self.body_timeout_s = app, max_body_bytes, body_timeout_s
        self.api_keys, self.metrics = api_keys, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        offered = headers.get("x-request-id", "")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            if scope["path"].startswith(_PROTECTED_PREFIX) and not _authorized(_offered_key(headers), self.api_keys):
                denied = JSONResponse({"detail": AUTH_FAILED}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await denied(scope, receive, send_with_id)
                return
            if scope["method"] in _BODY_METHODS:
                body = await self._read_body(headers, receive)
                if isinstance(body, JSONResponse):
                    await body(scope, receive, send_with_id)
                    return
                if body is None:  # the client went away
                    status[0] = 499
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(route=path, status=str(status[0])).inc()
            self.metrics.request_latency.labels(route=path).observe(time.perf_counter() - started)

    async def _read_body(self, headers: dict[str, str], receive: Any) -> bytes | JSONResponse | None:
        limit = self.max_body_bytes
        too_large = JSONResponse({"detail": f"The request body is larger than max_body_bytes = {limit}; "
                                            "send fewer or shorter texts."}, status_code=413)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return JSONResponse({"detail": "The Content-Length header is not a number."}, status_code=400)
            if int(declared) > limit:
                return too_large
        try:
            async with asyncio.timeout(self.body_timeout_s):
                return await _receive_body(receive, limit, too_large)
        except TimeoutError:
            return JSONResponse({"detail": f"The request body did not arrive within body_timeout_s = "
                                           f"{self.body_timeout_s} s; send it faster or make it smaller."},
                                status_code=408, headers={"Connection": "close"})


async def _receive_body(receive: Any, limit: int, too_large: JSONResponse) -> bytes | JSONResponse | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any):
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
