"""How `textgate` ends on an exception: one table from exception type to exit code and the
line(s) printed on stderr, used by :func:`textgate.cli.main` for every command.

Exit codes are an interface: 0 success, 1 a check failed (a gate or verify failure, which the
command reports itself and ends with ``click.exceptions.Exit(1)``, or a refused license),
2 usage, config, data, model or output-path error (one line naming the fix), 3 internal error,
130 interrupted. An exception is looked up along its class's MRO, so a subclass of a listed
error gets its parent's entry until it has its own; what matches nothing is an internal error.
Click's own protocol (usage errors with their usage text, ``Exit``, ``Abort``) is handled by
``main`` before this table.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from textgate import errors
from textgate.cli.common import (
    EXIT_GATE_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
)

__all__ = ["ERROR_EXITS", "OUTPUT_ERRNOS", "ErrorExit", "error_exit"]

# File system refusals that are the user's to fix (permissions, read-only, full disk, path shape).
OUTPUT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                           errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG})


def _error_line(exc: BaseException) -> list[str]:
    return [f"error: {exc}"]  # textgate's messages name the thing, the rule, what was received and the fix


def _license_lines(exc: BaseException) -> list[str]:
    return exc.lines() if isinstance(exc, errors.LicenseRefused) else _error_line(exc)


def _cannot_write(exc: BaseException) -> list[str]:
    filename = getattr(exc, "filename", None) or "an output"
    return [f"error: cannot write {filename}: {getattr(exc, 'strerror', exc)}; choose a writable location with "
            "free space (see --help for the output options)."]


def _internal_line(exc: BaseException) -> list[str]:
    return [f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"]


def _is_output_refusal(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS


@dataclass(frozen=True)
class ErrorExit:
    """The exit code and stderr lines (each printed as ``textgate: LINE``) for one exception type."""

    code: int
    lines: Callable[[BaseException], list[str]]
    debug_traceback: bool = True  # --debug / TEXTGATE_DEBUG=1 re-raises it instead
    applies: Callable[[BaseException], bool] = lambda exc: True  # else the next class of the MRO decides


# Every class of textgate.errors has its own row (tests/cli/test_cli.py checks it).
ERROR_EXITS: dict[type[BaseException], ErrorExit] = {
    errors.LicenseRefused: ErrorExit(EXIT_GATE_FAILED, _license_lines),  # a refused check, like a failed gate
    errors.ConfigError: ErrorExit(EXIT_USAGE, _error_line),
    errors.DataError: ErrorExit(EXIT_USAGE, _error_line),
    errors.ModelLoadError: ErrorExit(EXIT_USAGE, _error_line),
    errors.OutputError: ErrorExit(EXIT_USAGE, _error_line),
    # raised inside `serve` only; should one reach the command line, it is still textgate's own
    errors.LogQueueFull: ErrorExit(EXIT_USAGE, _error_line),
    errors.QueueFull: ErrorExit(EXIT_USAGE, _error_line),
    errors.BatcherClosed: ErrorExit(EXIT_USAGE, _error_line),
    errors.TextgateError: ErrorExit(EXIT_USAGE, _error_line),
    KeyboardInterrupt: ErrorExit(EXIT_INTERRUPTED, lambda exc: ["interrupted; nothing was written"],
                                 debug_traceback=False),
    OSError: ErrorExit(EXIT_USAGE, _cannot_write, applies=_is_output_refusal),
    Exception: ErrorExit(EXIT_INTERNAL, _internal_line),  # a bug: say so, and how to see the traceback
}


def error_exit(exc: BaseException) -> ErrorExit | None:
    """The row of ERROR_EXITS for ``exc`` (the first class along its MRO whose row applies);
    None for a BaseException outside the table (SystemExit...), which is left to propagate."""
    for cls in type(exc).__mro__:
        row = ERROR_EXITS.get(cls)
        if row is not None and row.applies(exc):
            return row
    return None
