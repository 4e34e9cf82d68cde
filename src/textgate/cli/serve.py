"""`textgate serve`."""

from __future__ import annotations

from pathlib import Path

import click

from textgate.cli.common import (
    load_model,
    say,
)


@click.command()
@click.argument("model")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="serve.toml: limits, API keys, prediction log, [guard] rules, [drift] reference.")
@click.option("--shadow", "shadow_model", metavar="MODELSPEC",
              help="A candidate run on the same texts after the primary; compared in /metrics, never answers.")
@click.option("--host", help="Interface to listen on (default: the config's, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: the config's, 8000).")
def serve(model: str, config_path: Path | None, shadow_model: str | None, host: str | None,
          port: int | None) -> None:
    """Serve MODEL over HTTP: POST /v1/classify, /v1/model, /healthz, /readyz, /metrics.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    Requests are micro-batched onto one inference thread, every prediction is checked by the
    guard and logged; needs the serve extra (pip install 'textgate[serve]').
    """
    from textgate.serve import require_serve_extra

    try:
        require_serve_extra()
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    from textgate.serve.app import create_app
    from textgate.serve.config import ServeConfig, load_serve_config
    from textgate.serve.listen import bind_socket, run_server

    config = load_serve_config(config_path) if config_path is not None else ServeConfig()
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if overrides:
        from textgate._internal.toml import validate_table

        config = validate_table(ServeConfig, {**config.model_dump(), **overrides}, origin="command-line options")
    sock = bind_socket(config.host, config.port)  # a port in use: exit 2 now, not after loading the model
    try:
        classifier = load_model(model, {})
        shadow = None
        if shadow_model is not None:
            say("shadow:")
            shadow = load_model(shadow_model, {})
        app = create_app(classifier, config, shadow=shadow)
        say(f"prediction log: {config.log_url or 'disabled'}"
            + (" (with raw text)" if config.log_url and config.log_text else ""))
        say(f"serving on http://{config.host}:{sock.getsockname()[1]} (docs at /docs, metrics at /metrics)")
        run_server(app, config, sock)
    finally:
        sock.close()
