"""`textgate gate`."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from textgate.cli.common import (
    EXIT_GATE_FAILED,
    check_outputs,
    emit_report,
    format_option,
    quiet_transformers,
    say,
)


@click.command()
@click.argument("gate_file", type=click.Path(path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), help="Write report.json, report.md and report.html here.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Prediction cache (default $TEXTGATE_CACHE_DIR or ~/.cache/textgate).")
@click.option("--no-cache", is_flag=True, help="Recompute both sides' predictions and store nothing.")
@format_option("report.json")
@click.option("--no-latency", is_flag=True,
              help="Do not time the models: the latency check is skipped. For quick re-runs from the cache "
                   "while iterating; leave it off in CI.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def gate(gate_file: Path, out_dir: Path | None, cache_dir: Path | None, no_cache: bool, no_latency: bool,
         output_format: str, progress: bool | None) -> None:
    """Compare a candidate with a baseline as GATE_FILE describes; exit 1 if a check fails.

    Paired statistics on the same examples (bootstrap intervals, McNemar), flips, slices,
    calibration, latency measured interleaved, and the thresholds of GATE_FILE. Predictions are
    cached by model, data and settings, so a re-run recomputes only what changed.
    """
    from textgate.gate import load_gate_config, run_gate
    from textgate.gate.cache import PredictionCache, default_cache_dir
    from textgate.gate.report import (
        gate_report_dict,
        render_gate_terminal,
        write_gate_reports,
    )

    cache_dir = None if no_cache else cache_dir or default_cache_dir()
    check_outputs(dirs={"--out-dir": out_dir, "--cache-dir": cache_dir})
    with warnings.catch_warnings(record=True) as caught:  # e.g. a renamed threshold key: one line, not Python's
        warnings.simplefilter("always")
        config = load_gate_config(gate_file)
    for warning in caught:
        say(f"warning: {warning.message}")
    cache = None if cache_dir is None else PredictionCache(cache_dir)
    quiet_transformers()
    run = run_gate(config, cache=cache, progress=progress, time_latency=not no_latency, say=say)
    report = gate_report_dict(run)
    emit_report(report, report, output_format=output_format, out_dir=out_dir,
                write_reports=write_gate_reports, render_terminal=render_gate_terminal)
    if run.result.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)
