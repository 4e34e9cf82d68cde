"""`textgate serve`: guarded HTTP inference with micro-batching, Prometheus metrics and a
prediction log. Needs the ``serve`` extra (``pip install 'textgate[serve]'``); nothing heavy is
imported until an attribute is used. Start at ``app.py`` (the app and its routes); a request
passes ``edge.py`` (request id, API key, body limits), then ``service.py`` (limits, batch, guard,
log), with bodies from ``schemas.py``. ``batcher.py`` micro-batches onto the inference threads;
the prediction log is ``store.py`` (the tables, their schema migration), ``databases.py``
(SQLite and PostgreSQL specifics) and ``writer.py`` (the group-commit thread), read back by
``window.py`` (a window of served predictions as ``Predictions``) and ``sample.py`` (labeling
batches); ``prometheus.py`` and ``drift.py`` the metrics, ``config.py`` serve.toml,
``listen.py`` the socket and server.

    from textgate.serve import ServeConfig, create_app
    app = create_app(classifier, ServeConfig(log_url=""))
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["ServeConfig", "create_app", "load_serve_config", "require_serve_extra"]

INSTALL_HINT = "pip install 'textgate[serve]'"
_HOME = {
    "ServeConfig": "textgate.serve.config",
    "load_serve_config": "textgate.serve.config",
    "create_app": "textgate.serve.app",
}


def require_serve_extra() -> None:
    """Raise ImportError naming the install command when a serve dependency is missing."""
    missing = []
    for module in ("fastapi", "uvicorn", "prometheus_client", "sqlalchemy"):
        try:
            import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(f"textgate serve needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}")


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'textgate.serve' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)
