"""The `textgate` group and its entry point, which ends on an error as ``errors.py`` says."""

from __future__ import annotations

import os
import sys

import click

from textgate.cli.audit import audit
from textgate.cli.calibrate import calibrate
from textgate.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    say,
)
from textgate.cli.drift import drift
from textgate.cli.errors import error_exit
from textgate.cli.evaluate import eval_command, predict
from textgate.cli.gate import gate
from textgate.cli.lock import lock_command, pull, verify
from textgate.cli.log import log_group
from textgate.cli.serve import serve

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textgate")
@click.option("--debug", is_flag=True, envvar="TEXTGATE_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep Hugging Face text classifiers honest: evaluate, predict, compare."""
    ctx.obj = {"debug": debug}


for _command in (predict, eval_command, gate, calibrate, serve, audit, lock_command, verify, pull, log_group,
                 drift):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; an error ends it as the table in :mod:`textgate.cli.errors` says."""
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
            return _end(exc.__cause__, debug)
        say("aborted")
        return EXIT_USAGE
    except BaseException as exc:
        return _end(exc, debug)
    return EXIT_OK


def _end(exc: BaseException, debug: bool) -> int:
    row = error_exit(exc)
    if row is None or (debug and row.debug_traceback):
        raise exc
    for line in row.lines(exc):
        say(line)
    return row.code
