"""`textgate calibrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from textgate.cli.common import (
    check_outputs,
    data_options,
    emit_report,
    format_option,
    load_for_eval,
    load_model,
    model_options,
    predict_for_eval,
    run_model,
    say,
    split_eval_args,
)


@click.command()
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
@format_option("report.json")
@data_options
@model_options
def calibrate(args: tuple[str, ...], predictions_path: Path | None, out_path: Path, eval_data: Path | None,
              fit_split: float | None, k_fold: int | None, seed: int, resamples: int, mc_dropout: str | None,
              report_dir: Path | None, output_format: str, text_col: str, label_col: str, **run_options: Any) -> None:
    """Fit temperature scaling for MODEL on the labeled DATA and save it to --out.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    Prints ECE (equal-width and equal-mass), MCE, Brier, NLL and accuracy before and after on
    held-out rows, with paired bootstrap intervals. Add calibration = "FILE" to a ModelSpec to
    make predict, eval, gate and serve apply the temperature.
    """
    from textgate.calibrate import (
        calibrate_temperature,
        heldout_examples,
        mc_dropout_curve,
        plan_calibration,
        write_calibration_file,
    )
    from textgate.calibrate.report import (
        calibration_report_dict,
        render_calibration_terminal,
        write_calibration_reports,
    )

    check_outputs(files={"--out": out_path}, dirs={"--report": report_dir})
    model, data = split_eval_args(args, predictions_path)
    plan = plan_calibration(runs_model=model is not None, eval_data=eval_data is not None, fit_fraction=fit_split,
                            k_folds=k_fold, mc_dropout=mc_dropout)
    inputs = _calibration_inputs(model, data, predictions_path, eval_data, text_col, label_col, run_options)
    dataset, predictions, evaluation = inputs["dataset"], inputs["predictions"], inputs["evaluation"]
    result = calibrate_temperature(
        dataset.labels, predictions.probabilities, label_names=predictions.label_names,
        eval_y_true=None if evaluation is None else evaluation[0].labels,
        eval_probabilities=None if evaluation is None else evaluation[1].probabilities,
        fit_fraction=plan.fit_fraction, k_folds=plan.k_folds, seed=seed, n_resamples=resamples)
    mc = None
    if plan.mc_passes:
        texts, labels = heldout_examples(result, dataset.texts, dataset.labels,
                                         eval_texts=None if evaluation is None else evaluation[0].texts,
                                         eval_labels=None if evaluation is None else evaluation[0].labels)
        say(f"MC dropout: {max(plan.mc_passes)} stochastic passes over {len(texts):,} held-out texts")
        mc = mc_dropout_curve(inputs["classifier"], texts, labels, passes=plan.mc_passes, seed=seed,
                              token_budget=run_options.get("token_budget"))
    write_calibration_file(out_path, result, model_fingerprint=predictions.model_fingerprint,
                           label_names=predictions.label_names, data_path=str(data),
                           data_fingerprint=dataset.fingerprint)
    report = calibration_report_dict(result, model=inputs["model"], data=inputs["data"], mc_dropout=mc,
                                     calibration_file=str(out_path),
                                     hardware=(predictions.settings or {}).get("hardware"))
    emit_report(report, report, output_format=output_format, out_dir=report_dir,
                write_reports=write_calibration_reports, render_terminal=render_calibration_terminal)


def _calibration_inputs(model: str | None, data: Path, predictions_path: Path | None, eval_data: Path | None,
                        text_col: str, label_col: str, run_options: dict) -> dict[str, Any]:
    """Labeled DATA and the uncalibrated model's predictions on it (and on --eval-data)."""
    from textgate.calibrate import check_uncalibrated_predictions
    from textgate.data import read_dataset

    classifier, evaluation = None, None
    if model is None:
        dataset, predictions = load_for_eval(predictions_path, data, text_col, label_col)
        check_uncalibrated_predictions(predictions, path=predictions_path)
        description = f"predictions file {predictions_path}"
    else:
        classifier = load_model(model, run_options, uncalibrated=True)
        dataset, predictions = predict_for_eval(model, data, text_col, label_col, run_options, classifier)
        if eval_data is not None:
            eval_set = read_dataset(eval_data, text_col=text_col, label_col=label_col,
                                    label_names=classifier.label_names)
            say(f"evaluation data: {eval_set.summary()}")
            evaluation = (eval_set, run_model(classifier, eval_set.texts, run_options))
        description = f"{model} -> {classifier.source.describe()}"
    data_info = {"path": str(data), "rows": len(dataset), "fingerprint": dataset.fingerprint}
    if evaluation is not None:
        data_info.update(eval_path=str(eval_data), eval_rows=len(evaluation[0]),
                         eval_fingerprint=evaluation[0].fingerprint)
    return {"classifier": classifier, "dataset": dataset, "predictions": predictions, "evaluation": evaluation,
            "data": data_info, "model": {"description": description, "fingerprint": predictions.model_fingerprint,
                                         "label_names": list(predictions.label_names),
                                         "settings": (predictions.settings or {}).get("model")}}
