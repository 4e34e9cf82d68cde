"""`textgate` command line: thin adapters over the library.

Data goes to stdout, messages and progress to stderr. Exit codes: 0 success, 1 gate failed,
2 usage, config, data, model or output-path error (one line naming the fix), 3 internal
error, 130 interrupted (Ctrl-C; outputs are written atomically, so nothing is half-written).
Output paths are checked before any model is loaded.
Set TEXTGATE_DEBUG=1 (or pass --debug) to see tracebacks.

Commands live one group per module (``evaluate``, ``gate``, ``calibrate``, ``serve``, ``audit``,
``lock``); ``common`` holds what they share (``--format human|json`` included); ``errors`` is the
one table from exception to exit code and message, which ``main`` applies. The rules live in the
capabilities; a command parses, calls and prints.
"""

from textgate.cli.common import (
    EXIT_GATE_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from textgate.cli.main import cli, main

__all__ = ["EXIT_GATE_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "cli", "main"]
