"""`textgate predict` and `textgate eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from textgate.cli.common import (
    check_outputs,
    data_options,
    echo_json,
    emit_report,
    format_option,
    load_for_eval,
    load_model,
    model_options,
    predict_for_eval,
    read_slices,
    report_dataset,
    run_model,
    say,
    split_eval_args,
)


@click.command()
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="Where to write the Predictions Parquet file.")
@format_option("a summary of what was written")
@data_options
@model_options
def predict(model: str, data: Path, out_path: Path, output_format: str, text_col: str, label_col: str,
            **run_options: Any) -> None:
    """Run MODEL on DATA and save Predictions to --out (Parquet).

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.data import read_dataset
    from textgate.evaluation import truncated_note
    from textgate.predictions import predictions_summary, save_predictions

    check_outputs(files={"--out": out_path})
    classifier = load_model(model, run_options)
    dataset = read_dataset(data, text_col=text_col, label_col=label_col,
                           label_names=classifier.label_names, require_labels=False)
    report_dataset(dataset)
    predictions = run_model(classifier, dataset.texts, run_options)
    save_predictions(predictions, out_path)  # refuses NaN from a broken model: nothing is written
    if (note := truncated_note(predictions)) is not None:
        say(note)
    say(f"wrote {len(predictions):,} predictions to {out_path} "
        f"({predictions.total_seconds:.1f} s, {len(predictions) / max(predictions.total_seconds, 1e-9):,.0f} texts/s)")
    if output_format == "json":
        echo_json(predictions_summary(predictions, out_path))


@click.command(name="eval")
@click.argument("args", nargs=-1, metavar="[MODEL] DATA")
@click.option("--predictions", "predictions_path", type=click.Path(path_type=Path),
              help="Evaluate saved predictions instead of running a model: a textgate Parquet file, a "
                   "CSV/JSONL/Parquet file with a 'prediction' column, or a file with one label per line.")
@click.option("--slice", "slice_flags", multiple=True, metavar="NAME=REGEX",
              help="A named slice of texts matching REGEX (case-insensitive). Repeatable.")
@click.option("--slices", "slices_file", type=click.Path(path_type=Path),
              help="A TOML file of slice definitions (regex, column value, token-length buckets).")
@click.option("--out-dir", type=click.Path(path_type=Path), help="Write report.json and report.md here.")
@format_option("report.json")
@data_options
@model_options
def eval_command(args: tuple[str, ...], predictions_path: Path | None, slice_flags: tuple[str, ...],
                 slices_file: Path | None, out_dir: Path | None, output_format: str, text_col: str,
                 label_col: str, **run_options: Any) -> None:
    """Evaluate MODEL on the labeled DATA, or saved --predictions against DATA.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    Prints accuracy, per-class precision/recall/F1, the confusion matrix, slices, calibration,
    latency and invalid labels; --out-dir also writes report.json and report.md.
    """
    from textgate.evaluation import evaluate
    from textgate.evaluation.report import render_terminal, write_eval_reports

    check_outputs(dirs={"--out-dir": out_dir})
    model, data = split_eval_args(args, predictions_path)
    slices = read_slices(slice_flags, slices_file)
    if model is not None:
        dataset, predictions = predict_for_eval(model, data, text_col, label_col, run_options)
    else:
        dataset, predictions = load_for_eval(predictions_path, data, text_col, label_col)
    report = evaluate(dataset, predictions, slices=slices)
    emit_report(report, report.to_dict(), output_format=output_format, out_dir=out_dir,
                write_reports=write_eval_reports, render_terminal=render_terminal)
