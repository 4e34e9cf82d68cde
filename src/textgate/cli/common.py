"""What every command shares: the exit codes, messages on stderr, ``--format human|json`` and
the JSON it prints, loading and running a MODEL, the common options, and checking output paths
before any work starts. How errors end a command: ``errors.py``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

__all__ = [
    "EXIT_GATE_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MODEL_HELP",
    "OUTPUT_FORMATS",
    "DefaultGroup",
    "check_outputs",
    "data_options",
    "echo_json",
    "emit_report",
    "format_option",
    "label_name_list",
    "load_for_eval",
    "load_model",
    "model_options",
    "predict_for_eval",
    "quiet_transformers",
    "read_slices",
    "report_dataset",
    "run_model",
    "say",
    "say_hardware",
    "split_eval_args",
    "stdout_console",
]

EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell expects after Ctrl-C
MODEL_HELP = ("MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub "
              "id, read in that order.")
OUTPUT_FORMATS = ("human", "json")  # json: one object with schema_version and kind ("textgate.<command>")


def format_option(json_is: str | None = None):
    """``--format human|json`` (as ``output_format``) of every command that reports a result;
    ``json_is`` says what the JSON is, when more than the command's report."""
    return click.option("--format", "output_format", type=click.Choice(OUTPUT_FORMATS), default="human",
                        show_default=True,
                        help="What to print on stdout" + (f" (json: {json_is})." if json_is else "."))


def echo_json(payload: Any) -> None:
    """A ``--format json`` result on stdout: strict JSON (no NaN), paths and the like as strings."""
    click.echo(json.dumps(payload, indent=2, allow_nan=False, default=str))


def emit_report(report: Any, as_json: Any, *, output_format: str, out_dir: Path | None,
                write_reports: Any, render_terminal: Any) -> None:
    """Write the report's files to ``out_dir`` (when given), then print it as JSON or for the terminal."""
    if out_dir is not None:
        for path in write_reports(report, out_dir):
            say(f"wrote {path}")
    if output_format == "json":
        echo_json(as_json)
    else:
        render_terminal(report, stdout_console())


def stdout_console() -> Any:
    """Rich console for reports; CI logs (not a terminal) get a width that fits the tables."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def say(message: str) -> None:
    click.echo(f"textgate: {message}", err=True)


def data_options(command):
    command = click.option("--label-col", default="label", show_default=True,
                           help="Column holding the gold label (name or id).")(command)
    return click.option("--text-col", default="text", show_default=True,
                        help="Column holding the text.")(command)


def model_options(command):
    for option in reversed([
        click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), help="Override the spec's dtype."),
        click.option("--max-length", type=click.IntRange(min=1), help="Override the spec's max_length (tokens)."),
        click.option("--token-budget", type=click.IntRange(min=1), default=None,
                     help="Padded tokens per batch (default 4096)."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."),
    ]):
        command = option(command)
    return command


class DefaultGroup(click.Group):
    """A group that runs ``default_command`` when the first argument names no subcommand, so
    ``textgate audit MODEL DATA`` and ``textgate audit apply FILE`` can share one name."""

    def __init__(self, *args: Any, default_command: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def split_eval_args(args: tuple[str, ...], predictions_path: Path | None) -> tuple[str | None, Path]:
    if predictions_path is not None:
        if len(args) != 1:
            raise click.UsageError(f"With --predictions, pass only DATA (got {len(args)} arguments: "
                                   f"{' '.join(args) or 'none'}).")
        return None, Path(args[0])
    if len(args) != 2:
        raise click.UsageError(f"Pass MODEL and DATA, or --predictions FILE and DATA (got {len(args)} "
                               f"arguments: {' '.join(args) or 'none'}). {MODEL_HELP}")
    return args[0], Path(args[1])


def read_slices(flags: tuple[str, ...], slices_file: Path | None) -> tuple:
    from textgate.slices import combine_slices, load_slices_toml, parse_slice_flag

    from_file = load_slices_toml(slices_file) if slices_file is not None else ()
    return combine_slices([parse_slice_flag(flag) for flag in flags], from_file,
                          where="--slice flags and --slices")


def predict_for_eval(model: str, data: Path, text_col: str, label_col: str, run_options: dict, classifier=None):
    from textgate.data import read_dataset

    classifier = classifier or load_model(model, run_options)
    dataset = read_dataset(data, text_col=text_col, label_col=label_col, label_names=classifier.label_names)
    report_dataset(dataset)
    return dataset, run_model(classifier, dataset.texts, run_options)


def load_for_eval(predictions_path: Path, data: Path, text_col: str, label_col: str):
    from textgate.data import read_dataset
    from textgate.predictions import (
        is_textgate_predictions,
        load_any_predictions,
        load_predictions,
    )

    saved = load_predictions(predictions_path) if is_textgate_predictions(predictions_path) else None
    dataset = read_dataset(data, text_col=text_col, label_col=label_col,
                           label_names=saved.label_names if saved else None)
    report_dataset(dataset)
    if saved is not None:
        say(f"predictions: textgate file {predictions_path} (model fingerprint {saved.model_fingerprint})")
        return dataset, saved
    predictions = load_any_predictions(predictions_path, label_names=dataset.label_names)
    say(f"predictions: {len(predictions):,} labels from {predictions_path} (no probabilities or timings)")
    return dataset, predictions


def load_model(model: str, run_options: dict, *, uncalibrated: bool = False):
    from textgate.model import load_classifier, resolve_model_argument

    spec, reading = resolve_model_argument(model, dtype=run_options.get("dtype"),
                                           max_length=run_options.get("max_length"))
    if uncalibrated:
        from textgate.calibrate import uncalibrated_spec

        spec, note = uncalibrated_spec(spec)
        if note is not None:
            say(note)
    quiet_transformers()
    classifier = load_classifier(spec)
    say(f"model: {reading} -> {classifier.source.describe()}"
        + (f" + adapter {spec.adapter}" if spec.adapter else ""))
    say(f"labels: {', '.join(classifier.label_names)}; dtype {spec.dtype}, max_length "
        f"{classifier.max_length}, padding {spec.padding}, truncation {spec.truncation}")
    say_hardware(spec.dtype)
    return classifier


def check_outputs(*, files: dict[str, Path | None] | None = None, dirs: dict[str, Path | None] | None = None) -> None:
    """Refuse unwritable output paths before any model is loaded or run (OutputError, exit 2)."""
    from textgate.outputs import check_output_dir, check_output_file

    for option, path in (files or {}).items():
        if path is not None:
            check_output_file(path, option=option)
    for option, path in (dirs or {}).items():
        if path is not None:
            check_output_dir(path, option=option)


def say_hardware(*dtypes: str) -> None:
    """The machine line, and the one warning a bfloat16 model on a CPU without native bf16 gets."""
    from textgate.hardware import bf16_emulated_note, detect_hardware

    hardware = detect_hardware()
    say(f"machine: {hardware.summary()}")
    if "bfloat16" in dtypes and hardware.bf16 == "emulated":
        say(f"warning: {bf16_emulated_note(hardware)}")


def run_model(classifier, texts, run_options: dict):
    from textgate.infer import DEFAULT_TOKEN_BUDGET, predict

    budget = run_options.get("token_budget") or DEFAULT_TOKEN_BUDGET
    return predict(classifier, texts, token_budget=budget, progress=run_options.get("progress"))


def report_dataset(dataset) -> None:
    say(f"data: {dataset.summary()}")


def quiet_transformers() -> None:
    """transformers' own progress bars and load reports would interleave with ours. Set
    through the environment, read when transformers is first imported (if it is at all)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def label_name_list(value: str | None) -> tuple[str, ...] | None:
    """--label-names "a, b,c" -> ("a", "b", "c"); None when not given (or empty)."""
    return tuple(n.strip() for n in value.split(",")) if value else None
