"""`textgate` command line: thin adapters over the library.

Data goes to stdout, messages and progress to stderr. Exit codes: 0 success, 1 gate failed,
2 usage, config, data or model error (one line naming the fix), 3 internal error.
Set TEXTGATE_DEBUG=1 (or pass --debug) to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from textgate.errors import TextgateError

EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
_MODEL_HELP = ("MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub "
               "id, read in that order.")


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _stdout_console() -> Any:
    """Rich console for reports; CI logs (not a terminal) get a width that fits the tables."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def _say(message: str) -> None:
    click.echo(f"textgate: {message}", err=True)


def _data_options(command):
    command = click.option("--label-col", default="label", show_default=True,
                           help="Column holding the gold label (name or id).")(command)
    return click.option("--text-col", default="text", show_default=True,
                        help="Column holding the text.")(command)


def _model_options(command):
    for option in reversed([
        click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), help="Override the spec's dtype."),
        click.option("--max-length", type=int, help="Override the spec's max_length (tokens)."),
        click.option("--token-budget", type=int, default=None,
                     help="Padded tokens per batch (default 4096)."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."),
    ]):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textgate")
@click.option("--debug", is_flag=True, envvar="TEXTGATE_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep Hugging Face text classifiers honest: evaluate, predict, compare."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="Where to write the Predictions Parquet file.")
@_data_options
@_model_options
def predict(model: str, data: Path, out_path: Path, text_col: str, label_col: str, **run_options: Any) -> None:
    """Run MODEL on DATA and save Predictions to --out (Parquet).

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.data import read_dataset
    from textgate.predictions import save_predictions

    classifier = _load(model, run_options)
    dataset = read_dataset(data, text_col=text_col, label_col=label_col,
                           label_names=classifier.label_names, require_labels=False)
    _report_dataset(dataset)
    predictions = _run(classifier, dataset.texts, run_options)
    save_predictions(predictions, out_path)
    _say(f"wrote {len(predictions):,} predictions to {out_path} "
         f"({predictions.total_seconds:.1f} s, {len(predictions) / max(predictions.total_seconds, 1e-9):,.0f} texts/s)")


@cli.command(name="eval")
@click.argument("args", nargs=-1, metavar="[MODEL] DATA")
@click.option("--predictions", "predictions_path", type=click.Path(path_type=Path),
              help="Evaluate saved predictions instead of running a model: a textgate Parquet file, a "
                   "CSV/JSONL/Parquet file with a 'prediction' column, or a file with one label per line.")
@click.option("--slice", "slice_flags", multiple=True, metavar="NAME=REGEX",
              help="A named slice of texts matching REGEX (case-insensitive). Repeatable.")
@click.option("--slices", "slices_file", type=click.Path(path_type=Path),
              help="A TOML file of slice definitions (regex, column value, token-length buckets).")
@click.option("--out-dir", type=click.Path(path_type=Path), help="Write report.json and report.md here.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout.")
@_data_options
@_model_options
def eval_command(args: tuple[str, ...], predictions_path: Path | None, slice_flags: tuple[str, ...],
                 slices_file: Path | None, out_dir: Path | None, output_format: str, text_col: str,
                 label_col: str, **run_options: Any) -> None:
    """Evaluate MODEL on the labeled DATA, or saved --predictions against DATA.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    Prints accuracy, per-class precision/recall/F1, the confusion matrix, slices, calibration,
    latency and invalid labels; --out-dir also writes report.json and report.md.
    """
    from textgate.evaluation import evaluate
    from textgate.report import render_terminal, write_eval_reports

    model, data = _split_eval_args(args, predictions_path)
    slices = _read_slices(slice_flags, slices_file)
    if model is not None:
        dataset, predictions = _predict_for_eval(model, data, text_col, label_col, run_options)
    else:
        dataset, predictions = _load_for_eval(predictions_path, data, text_col, label_col)
    report = evaluate(dataset, predictions, slices=slices)
    if out_dir is not None:
        for path in write_eval_reports(report, out_dir):
            _say(f"wrote {path}")
    if output_format == "json":
        click.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        render_terminal(report, _stdout_console())


@cli.command()
@click.argument("gate_file", type=click.Path(path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), help="Write report.json, report.md and report.html here.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Prediction cache (default $TEXTGATE_CACHE_DIR or ~/.cache/textgate).")
@click.option("--no-cache", is_flag=True, help="Recompute both sides' predictions and store nothing.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def gate(gate_file: Path, out_dir: Path | None, cache_dir: Path | None, no_cache: bool, output_format: str,
         progress: bool | None) -> None:
    """Compare a candidate with a baseline as GATE_FILE describes; exit 1 if a check fails.

    Paired statistics on the same examples (bootstrap intervals, McNemar), flips, slices,
    calibration, latency measured interleaved, and the thresholds of GATE_FILE. Predictions are
    cached by model, data and settings, so a re-run recomputes only what changed.
    """
    from textgate.cache import PredictionCache, default_cache_dir
    from textgate.gate import load_gate_config, run_gate
    from textgate.gate.report import (
        gate_report_dict,
        render_gate_terminal,
        write_gate_reports,
    )

    config = load_gate_config(gate_file)
    cache = None if no_cache else PredictionCache(cache_dir or default_cache_dir())
    _quiet_transformers()
    run = run_gate(config, cache=cache, progress=progress, say=_say)
    report = gate_report_dict(run)
    if out_dir is not None:
        for path in write_gate_reports(report, out_dir):
            _say(f"wrote {path}")
    if output_format == "json":
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    else:
        render_gate_terminal(report, _stdout_console())
    if run.result.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


@cli.command()
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
    import uvicorn

    from textgate.serve.app import create_app
    from textgate.serve.config import ServeConfig, load_serve_config

    config = load_serve_config(config_path) if config_path is not None else ServeConfig()
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if overrides:
        from textgate.config import validate_table

        config = validate_table(ServeConfig, {**config.model_dump(), **overrides}, origin="command-line options")
    classifier = _load(model, {})
    shadow = None
    if shadow_model is not None:
        _say("shadow:")
        shadow = _load(shadow_model, {})
    app = create_app(classifier, config, shadow=shadow)
    _say(f"prediction log: {config.log_url or 'disabled'}"
         + (" (with raw text)" if config.log_url and config.log_text else ""))
    _say(f"serving on http://{config.host}:{config.port} (docs at /docs, metrics at /metrics)")
    # One worker: the batcher owns the model; more processes would each load their own copy.
    uvicorn.run(app, host=config.host, port=config.port, workers=1, log_level="info",
                timeout_graceful_shutdown=int(config.request_timeout_s) + 5)


def _split_eval_args(args: tuple[str, ...], predictions_path: Path | None) -> tuple[str | None, Path]:
    if predictions_path is not None:
        if len(args) != 1:
            raise click.UsageError(f"With --predictions, pass only DATA (got {len(args)} arguments: "
                                   f"{' '.join(args) or 'none'}).")
        return None, Path(args[0])
    if len(args) != 2:
        raise click.UsageError(f"Pass MODEL and DATA, or --predictions FILE and DATA (got {len(args)} "
                               f"arguments: {' '.join(args) or 'none'}). {_MODEL_HELP}")
    return args[0], Path(args[1])


def _read_slices(flags: tuple[str, ...], slices_file: Path | None) -> tuple:
    from textgate.slices import combine_slices, load_slices_toml, parse_slice_flag

    from_file = load_slices_toml(slices_file) if slices_file is not None else ()
    return combine_slices([parse_slice_flag(flag) for flag in flags], from_file,
                          where="--slice flags and --slices")


def _predict_for_eval(model: str, data: Path, text_col: str, label_col: str, run_options: dict):
    from textgate.data import read_dataset

    classifier = _load(model, run_options)
    dataset = read_dataset(data, text_col=text_col, label_col=label_col, label_names=classifier.label_names)
    _report_dataset(dataset)
    return dataset, _run(classifier, dataset.texts, run_options)


def _load_for_eval(predictions_path: Path, data: Path, text_col: str, label_col: str):
    from textgate.data import read_dataset
    from textgate.predictions import (
        is_textgate_predictions,
        load_any_predictions,
        load_predictions,
    )

    saved = load_predictions(predictions_path) if is_textgate_predictions(predictions_path) else None
    dataset = read_dataset(data, text_col=text_col, label_col=label_col,
                           label_names=saved.label_names if saved else None)
    _report_dataset(dataset)
    if saved is not None:
        _say(f"predictions: textgate file {predictions_path} (model fingerprint {saved.model_fingerprint})")
        return dataset, saved
    predictions = load_any_predictions(predictions_path, label_names=dataset.label_names)
    _say(f"predictions: {len(predictions):,} labels from {predictions_path} (no probabilities or timings)")
    return dataset, predictions


def _load(model: str, run_options: dict):
    from textgate.model import load_classifier, resolve_model_argument

    spec, reading = resolve_model_argument(model, dtype=run_options.get("dtype"),
                                           max_length=run_options.get("max_length"))
    _quiet_transformers()
    classifier = load_classifier(spec)
    _say(f"model: {reading} -> {classifier.source.describe()}"
         + (f" + adapter {spec.adapter}" if spec.adapter else ""))
    _say(f"labels: {', '.join(classifier.label_names)}; dtype {spec.dtype}, max_length "
         f"{classifier.max_length}, padding {spec.padding}, truncation {spec.truncation}")
    return classifier


def _run(classifier, texts, run_options: dict):
    from textgate.infer import DEFAULT_TOKEN_BUDGET, predict

    budget = run_options.get("token_budget") or DEFAULT_TOKEN_BUDGET
    return predict(classifier, texts, token_budget=budget, progress=run_options.get("progress"))


def _report_dataset(dataset) -> None:
    _say(f"data: {dataset.summary()}")


def _quiet_transformers() -> None:
    """transformers' own progress bars and load reports would interleave with ours. Set
    through the environment, read when transformers is first imported (if it is at all)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


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
    except click.exceptions.Abort:
        _say("aborted")
        return EXIT_USAGE
    except TextgateError as exc:
        if debug:
            raise
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:  # an internal bug: say so, and how to see the traceback
        if debug:
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_INTERNAL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
