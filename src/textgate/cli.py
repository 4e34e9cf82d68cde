"""`textgate` command line: thin adapters over the library.

Data goes to stdout, messages and progress to stderr. Exit codes: 0 success, 1 gate failed,
2 usage, config, data, model or output-path error (one line naming the fix), 3 internal
error, 130 interrupted (Ctrl-C; outputs are written atomically, so nothing is half-written).
Output paths are checked before any model is loaded.
Set TEXTGATE_DEBUG=1 (or pass --debug) to see tracebacks.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from textgate.errors import TextgateError

EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell expects after Ctrl-C
# File system refusals that are the user's to fix (permissions, read-only, full disk, path shape).
_OUTPUT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                            errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG})
_MODEL_HELP = ("MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub "
               "id, read in that order.")


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _emit_report(report: Any, as_json: Any, *, output_format: str, out_dir: Path | None,
                 write_reports: Any, render_terminal: Any) -> None:
    """Write the report's files to ``out_dir`` (when given), then print it as JSON or for the terminal."""
    if out_dir is not None:
        for path in write_reports(report, out_dir):
            _say(f"wrote {path}")
    if output_format == "json":
        click.echo(json.dumps(as_json, indent=2, allow_nan=False))
    else:
        render_terminal(report, _stdout_console())


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
        click.option("--max-length", type=click.IntRange(min=1), help="Override the spec's max_length (tokens)."),
        click.option("--token-budget", type=click.IntRange(min=1), default=None,
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
    from textgate.evaluation import truncated_note
    from textgate.metrics import check_probabilities
    from textgate.outputs import check_output_file
    from textgate.predictions import save_predictions

    check_output_file(out_path, option="--out")
    classifier = _load(model, run_options)
    dataset = read_dataset(data, text_col=text_col, label_col=label_col,
                           label_names=classifier.label_names, require_labels=False)
    _report_dataset(dataset)
    predictions = _run(classifier, dataset.texts, run_options)
    if predictions.probabilities is not None:  # NaN from a broken model must not be saved as a label
        check_probabilities(predictions.probabilities, len(predictions), len(predictions.label_names))
    save_predictions(predictions, out_path)
    if (note := truncated_note(predictions)) is not None:
        _say(note)
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

    _check_outputs(dirs={"--out-dir": out_dir})
    model, data = _split_eval_args(args, predictions_path)
    slices = _read_slices(slice_flags, slices_file)
    if model is not None:
        dataset, predictions = _predict_for_eval(model, data, text_col, label_col, run_options)
    else:
        dataset, predictions = _load_for_eval(predictions_path, data, text_col, label_col)
    report = evaluate(dataset, predictions, slices=slices)
    _emit_report(report, report.to_dict(), output_format=output_format, out_dir=out_dir,
                 write_reports=write_eval_reports, render_terminal=render_terminal)


@cli.command()
@click.argument("gate_file", type=click.Path(path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), help="Write report.json, report.md and report.html here.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Prediction cache (default $TEXTGATE_CACHE_DIR or ~/.cache/textgate).")
@click.option("--no-cache", is_flag=True, help="Recompute both sides' predictions and store nothing.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout.")
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
    from textgate.cache import PredictionCache, default_cache_dir
    from textgate.gate import load_gate_config, run_gate
    from textgate.gate.report import (
        gate_report_dict,
        render_gate_terminal,
        write_gate_reports,
    )

    cache_dir = None if no_cache else cache_dir or default_cache_dir()
    _check_outputs(dirs={"--out-dir": out_dir, "--cache-dir": cache_dir})
    config = load_gate_config(gate_file)
    cache = None if cache_dir is None else PredictionCache(cache_dir)
    _quiet_transformers()
    run = run_gate(config, cache=cache, progress=progress, time_latency=not no_latency, say=_say)
    report = gate_report_dict(run)
    _emit_report(report, report, output_format=output_format, out_dir=out_dir,
                 write_reports=write_gate_reports, render_terminal=render_gate_terminal)
    if run.result.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


@cli.command()
@click.argument("args", nargs=-1, metavar="[MODEL] DATA")
@click.option("--predictions", "predictions_path", type=click.Path(path_type=Path),
              help="Fit on saved predictions (a 'textgate predict' Parquet file) instead of running a model.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("calibration.toml"),
              show_default=True, help="Where to write the calibration file a ModelSpec references.")
@click.option("--eval-data", type=click.Path(path_type=Path),
              help="Evaluate on this labeled file; T is then fitted on all of DATA.")
@click.option("--fit-split", type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Share of DATA that T is fitted on, the rest held out "
              "(seeded, stratified). Default when neither --eval-data nor --k-fold: 0.5.")
@click.option("--k-fold", type=click.IntRange(min=2), help="Stratified K-fold cross-validation on DATA; the saved T is fitted on all of it.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, folds, bootstrap and dropout.")
@click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--mc-dropout", metavar="N,N,...",
              help="Also run MC dropout on the held-out rows with these pass counts, e.g. 1,5,10,20,40.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path),
              help="Write report.json, report.md and report.html (reliability diagrams) here.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout (json: report.json).")
@_data_options
@_model_options
def calibrate(args: tuple[str, ...], predictions_path: Path | None, out_path: Path, eval_data: Path | None,
              fit_split: float | None, k_fold: int | None, seed: int, resamples: int, mc_dropout: str | None,
              report_dir: Path | None, output_format: str, text_col: str, label_col: str, **run_options: Any) -> None:
    """Fit temperature scaling for MODEL on the labeled DATA and save it to --out.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    Prints ECE (equal-width and equal-mass), MCE, Brier, NLL and accuracy before and after on
    held-out rows, with paired bootstrap intervals. Add calibration = "FILE" to a ModelSpec to
    make predict, eval, gate and serve apply the temperature.
    """
    from textgate.calibration import (
        calibrate_temperature,
        mc_dropout_curve,
        write_calibration_file,
    )
    from textgate.calibration_report import (
        calibration_report_dict,
        render_calibration_terminal,
        write_calibration_reports,
    )

    _check_outputs(files={"--out": out_path}, dirs={"--report": report_dir})
    model, data = _split_eval_args(args, predictions_path)
    passes = _calibrate_checks(model, eval_data, fit_split, k_fold, mc_dropout)
    inputs = _calibration_inputs(model, data, predictions_path, eval_data, text_col, label_col, run_options)
    dataset, predictions, evaluation = inputs["dataset"], inputs["predictions"], inputs["evaluation"]
    result = calibrate_temperature(
        dataset.labels, predictions.probabilities, label_names=predictions.label_names,
        eval_y_true=None if evaluation is None else evaluation[0].labels,
        eval_probabilities=None if evaluation is None else evaluation[1].probabilities,
        fit_fraction=fit_split, k_folds=k_fold, seed=seed, n_resamples=resamples)
    mc = None
    if passes:
        texts, labels = ((evaluation[0].texts, evaluation[0].labels) if evaluation is not None else
                         ([dataset.texts[i] for i in result.eval_rows], dataset.labels[list(result.eval_rows)]))
        _say(f"MC dropout: {max(passes)} stochastic passes over {len(texts):,} held-out texts")
        mc = mc_dropout_curve(inputs["classifier"], texts, labels, passes=passes, seed=seed,
                              token_budget=run_options.get("token_budget"))
    write_calibration_file(out_path, result, model_fingerprint=predictions.model_fingerprint,
                           label_names=predictions.label_names, data_path=str(data),
                           data_fingerprint=dataset.fingerprint)
    report = calibration_report_dict(result, model=inputs["model"], data=inputs["data"], mc_dropout=mc,
                                     calibration_file=str(out_path),
                                     hardware=(predictions.settings or {}).get("hardware"))
    _emit_report(report, report, output_format=output_format, out_dir=report_dir,
                 write_reports=write_calibration_reports, render_terminal=render_calibration_terminal)
    _say(f"wrote {out_path} (T = {result.temperature:.4f}); apply it with calibration = \"{out_path.name}\" "
         "in a ModelSpec (the path is relative to the ModelSpec file)")


def _calibrate_checks(model: str | None, eval_data: Path | None, fit_split: float | None, k_fold: int | None,
                      mc_dropout: str | None) -> tuple[int, ...]:
    """Usage rules of `calibrate`; returns the MC dropout pass counts (empty: none)."""
    chosen = [flag for flag, value in (("--eval-data", eval_data), ("--fit-split", fit_split),
                                       ("--k-fold", k_fold)) if value is not None]
    if len(chosen) > 1:
        raise click.UsageError(f"Choose one way to hold out data; got {' and '.join(chosen)}.")
    if model is None and eval_data is not None:
        raise click.UsageError("--eval-data needs MODEL; with --predictions use --fit-split or --k-fold.")
    if mc_dropout is None:
        return ()
    if model is None:
        raise click.UsageError("--mc-dropout runs the model, so it needs MODEL, not --predictions.")
    try:
        passes = tuple(int(part) for part in mc_dropout.split(","))
    except ValueError:
        passes = ()
    if not passes or min(passes) < 1:
        raise click.UsageError(f"--mc-dropout takes pass counts >= 1 separated by commas, e.g. 1,5,10,20,40; "
                               f"got {mc_dropout!r}.")
    return passes


def _calibration_inputs(model: str | None, data: Path, predictions_path: Path | None, eval_data: Path | None,
                        text_col: str, label_col: str, run_options: dict) -> dict[str, Any]:
    """Labeled DATA and the uncalibrated model's predictions on it (and on --eval-data)."""
    from textgate.data import read_dataset
    from textgate.errors import DataError

    classifier, evaluation = None, None
    if model is None:
        dataset, predictions = _load_for_eval(predictions_path, data, text_col, label_col)
        temperature = ((predictions.settings or {}).get("model") or {}).get("temperature", 1.0)
        if predictions.probabilities is None or not predictions.model_fingerprint or temperature != 1.0:
            raise DataError(f"--predictions {predictions_path} must be a 'textgate predict' file with "
                            "probabilities, made by the model without calibration (found "
                            f"{'no probabilities' if predictions.probabilities is None else f'temperature {temperature}'}"
                            "). Predict again with a ModelSpec that has no calibration field.",
                            field="predictions", path=predictions_path)
        description = f"predictions file {predictions_path}"
    else:
        classifier = _load(model, run_options, uncalibrated=True)
        dataset, predictions = _predict_for_eval(model, data, text_col, label_col, run_options, classifier)
        if eval_data is not None:
            eval_set = read_dataset(eval_data, text_col=text_col, label_col=label_col,
                                    label_names=classifier.label_names)
            _say(f"evaluation data: {eval_set.summary()}")
            evaluation = (eval_set, _run(classifier, eval_set.texts, run_options))
        description = f"{model} -> {classifier.source.describe()}"
    data_info = {"path": str(data), "rows": len(dataset), "fingerprint": dataset.fingerprint}
    if evaluation is not None:
        data_info.update(eval_path=str(eval_data), eval_rows=len(evaluation[0]),
                         eval_fingerprint=evaluation[0].fingerprint)
    return {"classifier": classifier, "dataset": dataset, "predictions": predictions, "evaluation": evaluation,
            "data": data_info, "model": {"description": description, "fingerprint": predictions.model_fingerprint,
                                         "label_names": list(predictions.label_names),
                                         "settings": (predictions.settings or {}).get("model")}}


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
    from textgate.serve.app import create_app
    from textgate.serve.config import ServeConfig, load_serve_config
    from textgate.serve.listen import bind_socket, run_server

    config = load_serve_config(config_path) if config_path is not None else ServeConfig()
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if overrides:
        from textgate.config import validate_table

        config = validate_table(ServeConfig, {**config.model_dump(), **overrides}, origin="command-line options")
    sock = bind_socket(config.host, config.port)  # a port in use: exit 2 now, not after loading the model
    try:
        classifier = _load(model, {})
        shadow = None
        if shadow_model is not None:
            _say("shadow:")
            shadow = _load(shadow_model, {})
        app = create_app(classifier, config, shadow=shadow)
        _say(f"prediction log: {config.log_url or 'disabled'}"
             + (" (with raw text)" if config.log_url and config.log_text else ""))
        _say(f"serving on http://{config.host}:{sock.getsockname()[1]} (docs at /docs, metrics at /metrics)")
        run_server(app, config, sock)
    finally:
        sock.close()


class _DefaultGroup(click.Group):
    """A group that runs ``default_command`` when the first argument names no subcommand, so
    ``textgate audit MODEL DATA`` and ``textgate audit apply FILE`` can share one name."""

    def __init__(self, *args: Any, default_command: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_DefaultGroup, default_command="find")
def audit() -> None:
    """Find likely label errors in DATA, and apply reviewed corrections.

    \b
    textgate audit [find] (MODEL | --pred-probs FILE) DATA --out DIR
        rank likely label errors (confident learning or loss ranking) from out-of-sample
        probabilities: saved --pred-probs, MODEL run on DATA (it must not have trained on
        DATA), or MODEL --k-fold (logistic regression on MODEL's frozen embeddings).
        Writes issues.csv/.jsonl, summary.json, review.html and argilla.jsonl.
    textgate audit apply CORRECTIONS.csv --data DATA --out CORRECTED
        write DATA with the labels a reviewer set in issues.csv (corrected_label or
        accept) and a changelog; stale or invalid corrections are refused.

    See 'textgate audit find --help' and 'textgate audit apply --help'.
    """


@audit.command("find")
@click.argument("args", nargs=-1, metavar="[MODEL] DATA")
@click.option("--pred-probs", "pred_probs", type=click.Path(path_type=Path),
              help="Out-of-sample probabilities: a 'textgate predict' Parquet file or an (N, K) .npy array.")
@click.option("--k-fold", "k_fold", is_flag=True,
              help="Probabilities by stratified k-fold logistic regression on MODEL's frozen embeddings.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Folds for --k-fold.")
@click.option("--seed", default=0, show_default=True, help="Seed of the --k-fold split.")
@click.option("--kfold-c", "kfold_c", type=click.FloatRange(min=0, min_open=True),
              help="Inverse L2 strength of the --k-fold head (default: the C of textgate.audit.KFOLD_C_GRID "
                   "with the lowest out-of-fold NLL; docs/audit.md).")
@click.option("--method", type=click.Choice(["confident-learning", "loss"]), default="confident-learning",
              show_default=True, help="How to rank and how many to flag.")
@click.option("--ranked-by", type=click.Choice(["normalized_margin", "self_confidence"]),
              default="normalized_margin", show_default=True, help="Confident learning's ranking score.")
@click.option("--top", type=click.IntRange(min=1), help="Flag at most this many (default: confident learning's estimate).")
@click.option("--label-names", help="Comma-separated names of the .npy columns of --pred-probs (default: DATA's "
                                   "labels, sorted).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Directory for the outputs.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout (json: summary.json).")
@_data_options
@_model_options
def audit_find(args: tuple[str, ...], pred_probs: Path | None, k_fold: bool, folds: int, seed: int,
               kfold_c: float | None, method: str, ranked_by: str, top: int | None, label_names: str | None, out_dir: Path, output_format: str,
               text_col: str, label_col: str, **run_options: Any) -> None:
    """Rank likely label errors in DATA; write them to --out.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.audit import audit_labels
    from textgate.audit_export import audit_summary, write_audit_outputs

    _check_outputs(dirs={"--out": out_dir})
    if len(args) != (1 if pred_probs else 2):
        raise click.UsageError(f"Pass MODEL and DATA, or --pred-probs FILE and DATA (got {len(args)} arguments: "
                               f"{' '.join(args) or 'none'}). {_MODEL_HELP}")
    model, data = (None, Path(args[0])) if pred_probs else (args[0], Path(args[1]))
    if k_fold and model is None:
        raise click.UsageError("--k-fold needs MODEL (its encoder makes the embeddings), not --pred-probs.")
    if not k_fold:  # options of the k-fold head given without it would be silently ignored
        source_of = click.get_current_context().get_parameter_source
        for flag, name, part in (("--kfold-c", "kfold_c", "head"), ("--folds", "folds", "split"),
                                 ("--seed", "seed", "split")):
            if source_of(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"{flag} sets the --k-fold {part}; add --k-fold or leave {flag} out.")
    if label_names is not None and (pred_probs is None or pred_probs.suffix != ".npy"):
        raise click.UsageError("--label-names names the columns of a .npy --pred-probs; MODEL and 'textgate "
                               "predict' files carry their own label names. Leave --label-names out.")
    dataset, ids, texts_fingerprint, probabilities, names, source = _audit_probabilities(
        model, data, pred_probs, _label_name_list(label_names), k_fold=k_fold, folds=folds, seed=seed,
        kfold_c=kfold_c, text_col=text_col, label_col=label_col, run_options=run_options)
    result = audit_labels(ids, probabilities, label_names=names, method=method.replace("-", "_"),
                          ranked_by=ranked_by, top=top)
    summary = audit_summary(result, probabilities=source, data={
        "path": str(data), "fingerprint": dataset.fingerprint, "texts_fingerprint": texts_fingerprint})
    for path in write_audit_outputs(result, dataset.texts, out_dir, summary):
        _say(f"wrote {path}")
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2, allow_nan=False))
    else:
        click.echo(_audit_text(summary, result))


@audit.command("apply")
@click.argument("corrections", type=click.Path(path_type=Path))
@click.option("--data", "data", type=click.Path(path_type=Path), required=True, help="The audited dataset.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="The corrected copy (same format as --data; a TweetEval pair becomes .jsonl).")
@click.option("--changelog", type=click.Path(path_type=Path), help="Default: OUT's name + .changelog.csv.")
@click.option("--label-names", help="Comma-separated label names in id order (default: summary.json beside "
                                   "CORRECTIONS, else DATA's labels).")
@_data_options
def audit_apply(corrections: Path, data: Path, out_path: Path, changelog: Path | None, label_names: str | None,
                text_col: str, label_col: str) -> None:
    """Write DATA with the labels set in CORRECTIONS (an edited issues.csv) to --out.

    Fill in corrected_label (a label name or id), or mark accept (yes/x/1) to take
    suggested_label; leave both empty to keep the label. Every line is checked first (row in
    range, text_sha256 still matching, label known, one line per row) and nothing is written
    if any fails. Rows not corrected are copied unchanged.
    """
    from textgate.audit_apply import apply_corrections

    _check_outputs(files={"--out": out_path, "--changelog": changelog})
    result = apply_corrections(corrections, data, out_path, label_names=_label_name_list(label_names),
                               text_col=text_col, label_col=label_col, changelog_path=changelog)
    _say(f"wrote {result.out_path} ({result.n_rows:,} rows, {len(result.changes):,} labels changed, "
         f"{result.unchanged:,} confirmed unchanged) and {result.changelog_path}")


def _audit_probabilities(model: str | None, data: Path, pred_probs: Path | None,
                         label_names: tuple[str, ...] | None, *, k_fold: bool, folds: int, seed: int,
                         kfold_c: float | None, text_col: str, label_col: str, run_options: dict):
    """(dataset, label ids, texts fingerprint, probabilities, label names, where the probabilities
    came from). DATA is read once, with the label names of the probabilities' source: MODEL's, the
    'textgate predict' file's, or ``label_names`` for a .npy (None: DATA's labels, sorted)."""
    import numpy as np

    from textgate.audit import label_ids
    from textgate.data import read_dataset
    from textgate.errors import DataError
    from textgate.predictions import (
        is_textgate_predictions,
        load_predictions,
        texts_fingerprint,
    )

    classifier = saved = None
    names_for_data = label_names
    if model is not None:
        classifier = _load(model, run_options)
        names_for_data = classifier.label_names
    elif is_textgate_predictions(pred_probs):
        saved = load_predictions(pred_probs)
        if saved.probabilities is None:
            raise DataError(f"{pred_probs} holds labels without probabilities; audit needs probabilities.",
                            field="pred_probs", path=pred_probs)
        names_for_data = saved.label_names
    elif pred_probs.suffix != ".npy":
        raise DataError(f"--pred-probs {pred_probs} is neither a 'textgate predict' Parquet file nor a .npy "
                        "array of shape (N, K).", field="pred_probs", path=pred_probs)
    dataset = read_dataset(data, text_col=text_col, label_col=label_col, label_names=names_for_data)
    _report_dataset(dataset)
    names = dataset.label_names
    ids = label_ids(dataset.labels, names, field=label_col)
    fingerprint = texts_fingerprint(dataset.texts)
    if classifier is not None and not k_fold:
        _say("probabilities: MODEL run on DATA (valid only if MODEL did not train on DATA)")
        probabilities = _run(classifier, dataset.texts, run_options).probabilities
        source = {"source": "model", "model_fingerprint": classifier.fingerprint}
    elif classifier is not None:
        from textgate.audit import kfold_probabilities, validate_kfold_labels
        from textgate.infer import DEFAULT_TOKEN_BUDGET, embed

        validate_kfold_labels(ids, n_classes=len(names), folds=folds)  # before the embedding, which is slow
        _say(f"embedding {len(dataset):,} texts (masked mean of the last hidden state) ...")
        vectors = embed(classifier, dataset.texts, token_budget=run_options.get("token_budget") or DEFAULT_TOKEN_BUDGET,
                        progress=run_options.get("progress"))
        probabilities, settings = kfold_probabilities(vectors, ids, n_classes=len(names), folds=folds, seed=seed,
                                                      C=kfold_c, say=_say)
        source = {"source": "k-fold", "model_fingerprint": classifier.fingerprint,
                  "embedding": "attention-masked mean of the last hidden state", **settings}
    elif saved is not None:
        if saved.data_fingerprint and saved.data_fingerprint != fingerprint:
            raise DataError(f"{pred_probs} was computed on other texts than {data} (data fingerprint "
                            f"{saved.data_fingerprint} vs {fingerprint}); predict on this DATA again.",
                            field="pred_probs", path=pred_probs)
        _say(f"probabilities: textgate file {pred_probs} (model fingerprint {saved.model_fingerprint})")
        probabilities = saved.probabilities
        source = {"source": str(pred_probs), "model_fingerprint": saved.model_fingerprint}
    else:
        try:
            probabilities = np.load(pred_probs, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"--pred-probs {pred_probs} is not a readable .npy array ({exc}).", field="pred_probs",
                            path=pred_probs) from exc
        _say(f"probabilities: {pred_probs}, columns read as {', '.join(names)}"
             + ("" if label_names else " (DATA's labels, sorted; pass --label-names if the columns differ)"))
        source = {"source": str(pred_probs)}
    return dataset, ids, fingerprint, probabilities, names, source


def _label_name_list(value: str | None) -> tuple[str, ...] | None:
    """--label-names "a, b,c" -> ("a", "b", "c"); None when not given (or empty)."""
    return tuple(n.strip() for n in value.split(",")) if value else None


def _audit_text(summary: dict, result) -> str:
    estimated = summary["estimated_issues"]
    lines = [(f"{summary['flagged']:,} likely label errors flagged ({summary['method']}) among "
              f"{summary['n_examples']:,} examples; confident learning estimates "
              f"{'n/a' if estimated is None else f'{estimated:,}'} mislabeled.")]
    lines += [f"  {p['given']} -> {p['likely']}: estimated {p['estimated']}, flagged {p['flagged']}"
              for p in summary["pairs"][:6]]
    lines += ["top issues (rank, row, given -> suggested, score):"]
    lines += [f"  {f.rank:>4} row {f.row:<6} {f.given_label} -> {f.suggested_label}  {f.score:.3f}"
              for f in result.findings[:10]]
    return "\n".join(lines)


def _lock_options(command):
    for option in reversed([
        click.option("--canary", "canary_path", type=click.Path(path_type=Path),
                     help="Canary texts (CSV/JSONL/Parquet...; default: the bundled 200 social-media posts)."),
        click.option("--text-col", default="text", show_default=True, help="Column of --canary holding the text."),
        click.option("--allow-license", "allowed_licenses", multiple=True, metavar="ID",
                     help="Accepted model-card license (e.g. apache-2.0, mit, unknown). Repeatable; "
                          "default: no license check."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."),
    ]):
        command = option(command)
    return command


@cli.command(name="lock")
@click.argument("model")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("textgate.lock"),
              show_default=True, help="Where to write the lock file.")
@_lock_options
def lock_command(model: str, out_path: Path, canary_path: Path | None, text_col: str,
                 allowed_licenses: tuple[str, ...], progress: bool | None) -> None:
    """Pin MODEL: file hashes, tokenizer behaviour, labels, settings, versions, license and
    canary outputs, written to --out (TOML). Check it later with `textgate verify`.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.lock import build_lock, write_lock
    from textgate.model import resolve_model_argument

    _check_outputs(files={"--out": out_path})
    spec, reading = resolve_model_argument(model)
    _say(f"model: {reading}")
    _check_licenses(spec, allowed_licenses, refused=f"{out_path} not written")
    _quiet_transformers()
    lock = build_lock(spec, lock_dir=out_path.parent, canary_path=canary_path, text_col=text_col,
                      allowed_licenses=allowed_licenses or None,
                      spec_file=Path(model) if model.endswith(".toml") else None, progress=progress, say=_say)
    write_lock(lock, out_path)
    _say(f"license: model {lock.license.model}" + (f", adapter {lock.license.adapter}" if lock.license.adapter else ""))
    _say(f"wrote {out_path}: {len(lock.files)} files, {len(lock.tokenizer['probes'])} tokenizer probes, "
         f"{lock.canary.texts} canary texts (digest {lock.canary.digest})")


@cli.command()
@click.argument("lock_file", type=click.Path(path_type=Path))
@click.argument("model", required=False)
@click.option("--allow-license", "allowed_licenses", multiple=True, metavar="ID",
              help="Accepted model-card license; repeatable. Default: the lock's allowlist, if any.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def verify(lock_file: Path, model: str | None, allowed_licenses: tuple[str, ...], output_format: str,
           progress: bool | None) -> None:
    """Recompute what LOCK_FILE records and print a diff per section; exit 1 on a behaviour change.

    Without MODEL the spec recorded in the lock is verified; with MODEL (a ModelSpec .toml file,
    'pkg:PACKAGE/FOLDER', a folder or a Hub id) that spec is, e.g. to catch changed settings.
    Exit 0 when only library versions (or the Hub commit) changed, 1 on any file, tokenizer,
    label, settings, license or canary change, 2 on error.
    """
    from textgate.lock import verify_lock
    from textgate.model import resolve_model_argument

    spec = None
    if model is not None:
        spec, reading = resolve_model_argument(model)
        _say(f"model: {reading}")
    _quiet_transformers()
    result = verify_lock(lock_file, spec, allowed_licenses=allowed_licenses or None, progress=progress, say=_say)
    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False, default=str))
    else:
        click.echo("\n".join(result.lines()))
    if result.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


@cli.command()
@click.argument("model")
@click.option("--to", "dest", type=click.Path(path_type=Path), required=True,
              help="Folder to copy the model into (must be empty or new).")
@click.option("--force", is_flag=True, help="Replace what pull writes in a non-empty --to folder.")
@_lock_options
def pull(model: str, dest: Path, force: bool, canary_path: Path | None, text_col: str,
         allowed_licenses: tuple[str, ...], progress: bool | None) -> None:
    """Copy MODEL (and its adapter and calibration file) into --to with a model.toml and a
    textgate.lock that loading enforces, so a deploy needs no network.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id
    (read from the local Hugging Face cache when the Hub cannot be reached).
    """
    from textgate.lock import pull_model
    from textgate.model import resolve_model_argument

    _check_outputs(dirs={"--to": dest})
    spec, reading = resolve_model_argument(model)
    _say(f"model: {reading}")
    _check_licenses(spec, allowed_licenses, refused="nothing copied")
    _quiet_transformers()
    result = pull_model(spec, dest, force=force, canary_path=canary_path, text_col=text_col,
                        allowed_licenses=allowed_licenses or None, progress=progress, say=_say)
    _say(f"pulled {result.files} files ({result.bytes / 1e6:.1f} MB) into {result.folder}; copies match the source")
    click.echo(str(result.spec_path))


def _check_licenses(spec, allowed_licenses: tuple[str, ...], *, refused: str) -> None:
    """Exit 1 (a failed check, before any work) when a model-card license is not allowed."""
    from textgate.lock import license_failures

    failures = license_failures(spec, allowed_licenses)
    for failure in failures:
        _say(f"license check failed: {failure}")
    if failures:
        _say(f"{refused}; pass --allow-license for each accepted license ('unknown' accepts a missing one)")
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


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


def _predict_for_eval(model: str, data: Path, text_col: str, label_col: str, run_options: dict, classifier=None):
    from textgate.data import read_dataset

    classifier = classifier or _load(model, run_options)
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


def _load(model: str, run_options: dict, *, uncalibrated: bool = False):
    from textgate.model import load_classifier, resolve_model_argument

    spec, reading = resolve_model_argument(model, dtype=run_options.get("dtype"),
                                           max_length=run_options.get("max_length"))
    if uncalibrated and spec.calibration is not None:
        _say(f"ignoring the ModelSpec's calibration file {spec.calibration}: calibrate fits the raw model")
        spec = spec.model_copy(update={"calibration": None})
    _quiet_transformers()
    classifier = load_classifier(spec)
    _say(f"model: {reading} -> {classifier.source.describe()}"
         + (f" + adapter {spec.adapter}" if spec.adapter else ""))
    _say(f"labels: {', '.join(classifier.label_names)}; dtype {spec.dtype}, max_length "
         f"{classifier.max_length}, padding {spec.padding}, truncation {spec.truncation}")
    _say_hardware(spec.dtype)
    return classifier


def _check_outputs(*, files: dict[str, Path | None] | None = None, dirs: dict[str, Path | None] | None = None) -> None:
    """Refuse unwritable output paths before any model is loaded or run (OutputError, exit 2)."""
    from textgate.outputs import check_output_dir, check_output_file

    for option, path in (files or {}).items():
        if path is not None:
            check_output_file(path, option=option)
    for option, path in (dirs or {}).items():
        if path is not None:
            check_output_dir(path, option=option)


def _say_hardware(*dtypes: str) -> None:
    """The machine line, and the one warning a bfloat16 model on a CPU without native bf16 gets."""
    from textgate.hardware import bf16_emulated_note, detect_hardware

    hardware = detect_hardware()
    _say(f"machine: {hardware.summary()}")
    if "bfloat16" in dtypes and hardware.bf16 == "emulated":
        _say(f"warning: {bf16_emulated_note(hardware)}")


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
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            _say("interrupted; nothing was written")
            return EXIT_INTERRUPTED
        _say("aborted")
        return EXIT_USAGE
    except TextgateError as exc:
        if debug:
            raise
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted; nothing was written")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
            _say(f"error: cannot write {exc.filename or 'an output'}: {exc.strerror}; choose a writable "
                 "location with free space (see --help for the output options).")
            return EXIT_USAGE
        # an internal bug: say so, and how to see the traceback
        _say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_INTERNAL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
