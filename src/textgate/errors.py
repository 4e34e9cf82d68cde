"""The one exception family of textgate. Every message names the thing, the rule, what was
received and what to do, so the CLI can print it as one line.

    TextgateError
    ├── ConfigError(ValueError)      a spec or config file/argument is wrong      (field)
    ├── DataError(ValueError)        a dataset or predictions file is wrong       (field, path, row)
    ├── ModelLoadError(OSError)      a model, tokenizer or adapter cannot be loaded safely (path)
    ├── OutputError(OSError)         an output file or folder cannot be written there    (option, path)
    ├── LicenseRefused               a model-card license is not on the allowlist (CLI exit 1) (failures)
    ├── LogQueueFull(RuntimeError)   the prediction log's queue had no room; records dropped, counted
    ├── QueueFull(RuntimeError)      the server's micro-batch queue is full; retry later (HTTP 503)
    └── BatcherClosed(RuntimeError)  the server is shutting down and takes no new work (HTTP 503)

Subclassing the builtins keeps callers' ``except ValueError`` / ``except OSError`` working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BatcherClosed", "ConfigError", "DataError", "LicenseRefused", "LogQueueFull", "ModelLoadError",
           "OutputError", "QueueFull", "TextgateError"]


class TextgateError(Exception):
    """Base of every error textgate raises on purpose (CLI exit code 2, but 1 for
    LicenseRefused: the table in :mod:`textgate.cli.errors`)."""


class ConfigError(TextgateError, ValueError):
    """A ModelSpec, slice definition or other configuration value is invalid."""

    def __init__(self, message: str, *, field: str | None = None, path: Path | str | None = None):
        super().__init__(message)
        self.field = field
        self.path = path


class DataError(TextgateError, ValueError):
    """A dataset or predictions file cannot be read as asked (missing column, unknown label…)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        path: Path | str | None = None,
        row: int | None = None,
    ):
        super().__init__(message)
        self.field = field
        self.path = path
        self.row = row


class ModelLoadError(TextgateError, OSError):
    """A model, tokenizer or adapter is missing, corrupt, unsafe or inconsistent."""

    def __init__(self, message: str, *, path: Path | str | None = None):
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:  # OSError would otherwise print its errno/strerror form
        return self.args[0]


class OutputError(TextgateError, OSError):
    """An output path is not writable, or is a file where a folder is needed (or the reverse)."""

    def __init__(self, message: str, *, option: str | None = None, path: Path | str | None = None):
        super().__init__(message)
        self.option = option
        self.path = path

    def __str__(self) -> str:
        return self.args[0]


class LicenseRefused(TextgateError):
    """A model-card license is not one the caller allows, so nothing was locked or copied.
    A refused check, like a failed gate, rather than a wrong input: ``textgate`` exits 1."""

    def __init__(self, failures: tuple[str, ...], *, refused: str):
        self.failures = tuple(failures)
        self.refused = refused
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per refused license, then what was not done and the fix."""
        return [*(f"license check failed: {failure}" for failure in self.failures),
                f"{self.refused}; pass --allow-license for each accepted license ('unknown' accepts a missing one)"]


class LogQueueFull(TextgateError, RuntimeError):
    """The prediction LogWriter's queue had no room: the records were dropped (and counted)
    instead of blocking the request."""


class QueueFull(TextgateError, RuntimeError):
    """The micro-batcher's queue holds ``max_queue_texts`` texts already; retry later."""


class BatcherClosed(TextgateError, RuntimeError):
    """The server is shutting down and takes no new work."""
