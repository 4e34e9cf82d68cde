"""Listening for `textgate serve`: the port is bound before the model loads, and slow clients
are dropped.

    sock = bind_socket(config.host, config.port)   # ConfigError (exit 2) when the port is taken
    ...load the model, build the app...
    run_server(app, config, sock)

uvicorn closes a kept-alive connection after ``timeout_keep_alive`` but has no read timeout for
a request's head: a client that connects and sends nothing, or trickles a header byte at a
time, holds its connection forever. ``header_timeout_protocol`` wraps uvicorn's HTTP protocol
(httptools or h11, whichever uvicorn picks) with one: the head must be complete within
``header_timeout_s`` of the connection (or of the first byte after a response), else the
connection is closed. The body has its own deadline, ``body_timeout_s``, in the app's edge
middleware (a 408 answer).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from textgate.errors import ConfigError
from textgate.serve.config import ServeConfig

__all__ = ["bind_socket", "header_timeout_protocol", "run_server"]

logger = logging.getLogger("textgate.serve")

# Seconds an idle kept-alive connection stays open after a response (uvicorn's default).
KEEP_ALIVE_S = 5
# Extra seconds of graceful shutdown beyond request_timeout_s, for the last answers to go out.
SHUTDOWN_GRACE_S = 5


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), so that a port in use is
    reported before minutes of model loading; hand it to ``run_server``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"Port {port} on {host} is already in use: choose another 'port' in the serve "
                              "config (or --port), or stop the process listening on it.", field="port") from None
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}): set 'host' in the serve "
                          "config (or --host) to an address of this machine, and 'port' to a free port "
                          "(below 1024 needs privileges).", field="host") from None
    return sock


def header_timeout_protocol(base: type[asyncio.Protocol], timeout_s: float) -> type[asyncio.Protocol]:
    """``base`` (a uvicorn HTTP protocol) closing connections whose request head takes longer
    than ``timeout_s`` seconds: from the connection, or from the first byte after a response."""

    class HeaderTimeoutProtocol(base):  # type: ignore[valid-type, misc]
        header_timeout_s = timeout_s

        def connection_made(self, transport: Any) -> None:
            self.head_timer: asyncio.TimerHandle | None = None
            self.seen_cycle: Any = None
            super().connection_made(transport)
            self.arm_head_timer()

        def data_received(self, data: bytes) -> None:
            if self.head_timer is None and self.between_requests():
                self.arm_head_timer()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            cycle = getattr(self, "cycle", None)
            if cycle is not self.seen_cycle:  # a request head was parsed: the app's deadlines take over
                self.seen_cycle = cycle
                self.cancel_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self.cancel_head_timer()
            super().connection_lost(exc)

        def between_requests(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or cycle.response_complete

        def arm_head_timer(self) -> None:
            self.cancel_head_timer()
            self.head_timer = self.loop.call_later(self.header_timeout_s, self.head_timed_out)

        def cancel_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def head_timed_out(self) -> None:
            self.head_timer = None
            if not self.transport.is_closing():
                logger.debug("closed a connection whose request head took over %s s", self.header_timeout_s)
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = HeaderTimeoutProtocol.__qualname__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol


def run_server(app: Any, config: ServeConfig, sock: socket.socket) -> None:
    """Serve ``app`` with uvicorn on ``sock`` (from ``bind_socket``) until stopped."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    # One worker: the batcher owns the model; more processes would each load their own copy.
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=sock.getsockname()[1], workers=1, log_level="info",
        http=header_timeout_protocol(AutoHTTPProtocol, config.header_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(config.request_timeout_s) + SHUTDOWN_GRACE_S))
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)  # uvicorn already logged why the app did not start
