"""The `textgate` group and its entry point, which maps errors to exit codes."""

from __future__ import annotations

import errno
import os
import sys

import click

from textgate.cli.audit import audit
from textgate.cli.calibrate import calibrate
from textgate.cli.common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    say,
)
from textgate.cli.drift import drift
from textgate.cli.evaluate import eval_command, predict
from textgate.cli.gate import gate
from textgate.cli.lock import lock_command, pull, verify
from textgate.cli.serve import serve
from textgate.errors import TextgateError

__all__ = ["cli", "main"]

# File system refusals that are the user's to fix (permissions, read-only, full disk, path shape).
_OUTPUT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                            errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textgate")
@click.option("--debug", is_flag=True, envvar="TEXTGATE_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep Hugging Face text classifiers honest: evaluate, predict, compare."""
    ctx.obj = {"debug": debug}


for _command in (predict, eval_command, gate, calibrate, serve, audit, lock_command, verify, pull, drift):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to exit codes."""
    debug = os.environ.get("TEXTGATE_DEBUG") == "1" or "--debug" in (argv or sys.argv[1:])
    try:
        # Without standalone mode click returns the code of a ctx.exit()/Exit instead of raising.
        code = cli.main(args=argv, prog_name="textgate", standalone_mode=False)
        if isinstance(code, int):
            return code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            say("interrupted; nothing was written")
            return EXIT_INTERRUPTED
        say("aborted")
        return EXIT_USAGE
    except TextgateError as exc:
        if debug:
            raise
        say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted; nothing was written")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
            say(f"error: cannot write {exc.filename or 'an output'}: {exc.strerror}; choose a writable "
                "location with free space (see --help for the output options).")
            return EXIT_USAGE
        # an internal bug: say so, and how to see the traceback
        say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_INTERNAL
    return EXIT_OK
