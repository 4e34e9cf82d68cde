"""The HTTP API of `textgate serve`: ``create_app`` builds the FastAPI app over the batcher,
guard and log, and holds its routes (one line each).

    POST /v1/classify   {"texts": [...]} or {"text": "..."}, "return_all_scores": false
    GET  /v1/model      spec, labels, settings, guard rules, limits
    GET  /healthz       the process is up
    GET  /readyz        the model is loaded and warmed up (503 until then, and while stopping)
    GET  /metrics       Prometheus text format (see textgate.serve.prometheus)
    GET  /openapi.json  the schema of all of the above

A request passes ``edge.py`` first (request id, the API key before the body is read, body size
and time limits), then the route, whose work is in ``service.py`` (limits, batch, guard, log);
the bodies are the pydantic models of ``schemas.py``. Every prediction goes through the Guard
and is logged (textgate's one text hash, a keyed HMAC-SHA256 of the text; the text itself only
with ``log_text``). Limits answer 4xx, never 5xx: an unauthenticated caller 401 whatever it
sends, body size 413, a body slower than ``body_timeout_s`` 408 (and the connection is closed),
too many texts or characters 422 (naming the field and the limit), bad JSON/types/UTF-8
400/422. Every 503 and 504 carries Retry-After: a full queue 503, a request over
``request_timeout_s`` 504, and under ``log_ack = "committed"`` a prediction whose log rows are
not durable by the request's deadline (database locked past ``log_retry_s``, queue full, store
error) 503 — never a 200 that the log does not hold. Such a 503 may still be logged later:
retry with the same X-Request-ID. Server logs never hold raw text; ``/v1/model`` shows file
names, not the server's absolute paths.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from textgate.guard import REASONS, Guard
from textgate.model import Classifier
from textgate.serve.batcher import Batcher, split_threads, worker_cores
from textgate.serve.config import ServeConfig, reference_shares
from textgate.serve.drift import LabelDrift, ShadowTracker
from textgate.serve.edge import Edge, api_key_dependency
from textgate.serve.prometheus import NO_LABEL, ServeMetrics
from textgate.serve.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ModelInfo,
    Problem,
    Status,
)
from textgate.serve.service import RETRY_AFTER_S, Service, public_name

__all__ = ["create_app"]

# Prediction log writer: room for a few seconds of heavy traffic; group commits of up to 512
# rows. No gathering window: the writer commits what is queued as soon as it is free, and the
# rows that arrive during one commit's fsync form the next group. A 5 ms window cost a lone
# client 4 ms per request (p50 17.8 -> 13.4 ms) and bought nothing at 32 clients.
LOG_MAX_QUEUE = 20_000
LOG_MAX_BATCH = 512
LOG_FLUSH_INTERVAL_S = 0.0


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
        from textgate.serve.store import LoggedModel, log_hash_key, open_store
        from textgate.serve.writer import LogWriter

        hash_key = log_hash_key(config.log_url if owns_store else store.engine.url.render_as_string(),
                                key=config.log_hash_key, key_file=config.log_hash_key_file)
        if owns_store:
            store = open_store(config.log_url)
        # The label order of every model that writes rows: what `textgate log export` reads back.
        for model in (classifier, shadow):
            if model is not None:
                store.register_model(LoggedModel(model.fingerprint, tuple(model.label_names),
                                                 public_name(model.spec.model), model.source.revision),
                                     now=time.time())
        writer = LogWriter(store, max_queue=LOG_MAX_QUEUE, max_batch=LOG_MAX_BATCH,
                           flush_interval_s=LOG_FLUSH_INTERVAL_S, retry_s=config.log_retry_s)
    window = config.drift.window
    metrics = ServeMetrics(
        model_name=public_name(classifier.spec.model), fingerprint=classifier.fingerprint,
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
    service = Service(classifier, config, guard, batcher, metrics, writer, shadow=shadow, hash_key=hash_key)

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
    app.add_middleware(Edge, max_body_bytes=config.max_body_bytes, body_timeout_s=config.body_timeout_s,
                       api_keys=api_keys, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    authorized = Depends(api_key_dependency(api_keys))
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
