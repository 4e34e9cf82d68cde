"""The edge of `textgate serve`: what happens to a request before any route runs.

``Edge`` is the outermost ASGI layer: it gives every request an id (``X-Request-ID``, the
client's if short and plain), checks the API key of a ``/v1/`` request before the body is read
(401 whatever the body), reads the body within ``max_body_bytes`` (413) and ``body_timeout_s``
(408, connection closed), and counts and times every request for the metrics.
``api_key_dependency`` is the same key check as a FastAPI dependency, for the OpenAPI schema.
Keys are compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders

from textgate.serve.prometheus import ServeMetrics

__all__ = ["AUTH_FAILED", "Edge", "api_key_dependency"]

AUTH_FAILED = "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
# Paths whose requests need an API key (when keys are configured); checked before the body is read.
_PROTECTED_PREFIX = "/v1/"
# A client's X-Request-ID is kept only if it is short and plain (it lands in logs and headers).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def api_key_dependency(keys: tuple[bytes, ...]):
    """The FastAPI dependency of the ``/v1/`` routes: 401 unless the request offers one of
    ``keys`` (none configured: every request passes). It also puts both ways of sending a key
    into the OpenAPI schema; ``Edge`` has already refused a bad key before the body was read."""
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


class Edge:
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
