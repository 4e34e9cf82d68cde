"""`textgate drift REFERENCE CURRENT`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from textgate.cli.common import (
    EXIT_GATE_FAILED,
    MODEL_HELP,
    check_outputs,
    data_options,
    emit_report,
    load_model,
    model_options,
    read_slices,
    say,
)


@click.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@click.option("--model", help="Predict data files with MODEL first and embed them (output, unknown-token and "
                              f"embedding checks). {MODEL_HELP}")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="A drift TOML file: [thresholds], [settings] and slices.")
@click.option("--slice", "slice_flags", multiple=True, metavar="NAME=REGEX",
              help="A named slice of texts matching REGEX (case-insensitive). Repeatable.")
@click.option("--slices", "slices_file", type=click.Path(path_type=Path),
              help="A TOML file of slice definitions (regex, column value, token-length buckets).")
@click.option("--no-embeddings", is_flag=True, help="With --model, skip the embedding check (one pass fewer).")
@click.option("--out-dir", type=click.Path(path_type=Path), help="Write report.json, report.md and report.html here.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout.")
@data_options
@model_options
def drift(reference: Path, current: Path, model: str | None, config_path: Path | None, slice_flags: tuple[str, ...],
          slices_file: Path | None, no_embeddings: bool, out_dir: Path | None, output_format: str, text_col: str,
          label_col: str, **run_options: Any) -> None:
    """Is CURRENT still like REFERENCE? Exit 0: no drift; 1: drift; 2: bad input.

    REFERENCE and CURRENT are data files (CSV, TSV, JSONL, Parquet, TweetEval; labels optional)
    or `textgate predict` Parquet files. Compared: predicted and true label distributions
    (chi-squared, PSI), confidence (Kolmogorov-Smirnov, Wasserstein), truncation, text length and
    descriptors (URLs, @mentions, hashtags, emoji, elongated words, non-ASCII, empty texts) and,
    with --model, unknown tokens and embedding drift (a domain classifier's held-out AUC); overall
    and per slice. Holm's procedure keeps the chance of a false alarm anywhere in the report at
    the alpha of the drift file (default 5%).
    """
    from textgate.drift import DriftConfig, detect_drift, load_drift_config, read_window
    from textgate.drift.report import (
        drift_report_dict,
        render_drift_terminal,
        write_drift_reports,
    )
    from textgate.slices import combine_slices

    check_outputs(dirs={"--out-dir": out_dir})
    config = load_drift_config(config_path) if config_path is not None else DriftConfig()
    slices = combine_slices(config.slices, read_slices(slice_flags, slices_file),
                            where="the drift file, --slice flags and --slices")
    config = config.model_copy(update={"slices": slices})
    classifier = load_model(model, run_options) if model is not None else None
    windows = [read_window(path, classifier=classifier, text_col=text_col, label_col=label_col,
                           embeddings=not no_embeddings, token_budget=run_options.get("token_budget"),
                           progress=run_options.get("progress")) for path in (reference, current)]
    for name, window in zip(("reference", "current"), windows):
        say(f"{name}: {_describe(window)}")
    report = detect_drift(*windows, config=config)
    document = drift_report_dict(report)
    emit_report(document, document, output_format=output_format, out_dir=out_dir,
                write_reports=write_drift_reports, render_terminal=render_drift_terminal)
    if report.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


def _describe(window: Any) -> str:
    held = [what for what, present in (("texts", window.texts is not None), ("labels", window.labels is not None),
                                       ("predictions", window.predictions is not None),
                                       ("embeddings", window.embeddings is not None)) if present]
    return f"{window.rows:,} rows from {window.source} ({window.kind}: {', '.join(held)})"
