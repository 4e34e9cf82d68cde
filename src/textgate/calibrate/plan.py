"""What `textgate calibrate` decides before it loads or runs a model: the held-out method,
whether MC dropout runs and with which pass counts, which inputs qualify, and which rows MC
dropout is measured on. Messages name the command's options (--eval-data, --fit-split,
--k-fold, --mc-dropout, --predictions), the one place the rules are stated.

- one held-out method at most: --eval-data, --fit-split or --k-fold (none: a seeded stratified
  split of DEFAULT_FIT_FRACTION, :func:`~textgate.calibrate.calibrate_temperature`);
- --eval-data and --mc-dropout run the model, so they need MODEL, not saved --predictions;
- saved predictions must carry probabilities and a model fingerprint, and come from the model
  without calibration (temperature 1): T is fitted to the raw model;
- a ModelSpec's own calibration file is set aside for the same reason;
- MC dropout runs on the held-out rows: the separate evaluation set, else the rows held out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from textgate.calibrate.heldout import CalibrationResult
from textgate.errors import ConfigError, DataError
from textgate.model import ModelSpec
from textgate.predictions import Predictions

__all__ = [
    "CalibrationPlan",
    "check_uncalibrated_predictions",
    "heldout_examples",
    "parse_pass_counts",
    "plan_calibration",
    "uncalibrated_spec",
]

Holdout = Literal["eval-data", "k-fold", "split"]


@dataclass(frozen=True)
class CalibrationPlan:
    """The held-out method (``holdout``, as :attr:`CalibrationResult.holdout` names it), its
    setting, and the MC dropout pass counts (empty: no MC dropout)."""

    holdout: Holdout
    fit_fraction: float | None  # for "split"; None: DEFAULT_FIT_FRACTION
    k_folds: int | None  # for "k-fold"
    mc_passes: tuple[int, ...]


def plan_calibration(*, runs_model: bool, eval_data: bool = False, fit_fraction: float | None = None,
                     k_folds: int | None = None, mc_dropout: str | Sequence[int] | None = None) -> CalibrationPlan:
    """Check the options of one calibration (ConfigError naming the option) and say what it will do.

    ``runs_model``: MODEL was given (not saved --predictions); ``eval_data``: --eval-data was;
    ``mc_dropout``: pass counts, as given on the command line ("1,5,10") or as integers.
    """
    chosen = [flag for flag, given in (("--eval-data", eval_data), ("--fit-split", fit_fraction is not None),
                                       ("--k-fold", k_folds is not None)) if given]
    if len(chosen) > 1:
        raise ConfigError(f"Choose one way to hold out data; got {' and '.join(chosen)}.", field=chosen[-1])
    if eval_data and not runs_model:
        raise ConfigError("--eval-data needs MODEL; with --predictions use --fit-split or --k-fold.",
                          field="--eval-data")
    holdout: Holdout = "eval-data" if eval_data else "k-fold" if k_folds is not None else "split"
    passes: tuple[int, ...] = ()
    if mc_dropout is not None:
        if not runs_model:
            raise ConfigError("--mc-dropout runs the model, so it needs MODEL, not --predictions.",
                              field="--mc-dropout")
        passes = parse_pass_counts(mc_dropout) if isinstance(mc_dropout, str) else _checked_passes(mc_dropout)
    return CalibrationPlan(holdout, fit_fraction, k_folds, passes)


def parse_pass_counts(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> ``(1, 5, 10)``; ConfigError unless every part is an integer >= 1."""
    try:
        passes = tuple(int(part) for part in text.split(","))
    except ValueError:
        passes = ()
    return _checked_passes(passes, given=text)


def _checked_passes(passes: Sequence[int], *, given: Any = None) -> tuple[int, ...]:
    values = tuple(passes)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ConfigError(f"--mc-dropout takes pass counts >= 1 separated by commas, e.g. 1,5,10,20,40; "
                          f"got {passes if given is None else given!r}.", field="--mc-dropout")
    return tuple(int(v) for v in values)


def check_uncalibrated_predictions(predictions: Predictions, *, path: Path | str) -> None:
    """DataError unless ``predictions`` (read from ``path``) can be calibrated: probabilities, a
    model fingerprint, and made without calibration (the model settings' temperature is 1)."""
    temperature = ((predictions.settings or {}).get("model") or {}).get("temperature", 1.0)
    if predictions.probabilities is None or not predictions.model_fingerprint or temperature != 1.0:
        found = "no probabilities" if predictions.probabilities is None else f"temperature {temperature}"
        raise DataError(f"--predictions {path} must be a 'textgate predict' file with probabilities, made by "
                        f"the model without calibration (found {found}). Predict again with a ModelSpec that "
                        "has no calibration field.", field="predictions", path=path)


def uncalibrated_spec(spec: ModelSpec) -> tuple[ModelSpec, str | None]:
    """``spec`` without its calibration file, and a note saying so when it had one."""
    if spec.calibration is None:
        return spec, None
    note = f"ignoring the ModelSpec's calibration file {spec.calibration}: calibrate fits the raw model"
    return spec.model_copy(update={"calibration": None}), note


def heldout_examples(result: CalibrationResult, texts: Sequence[str], labels: Any, *,
                     eval_texts: Sequence[str] | None = None, eval_labels: Any = None) -> tuple[list[str], Any]:
    """The texts and labels MC dropout is measured on: the separate evaluation set when there
    is one, else the rows of ``texts`` that ``result`` held out."""
    if eval_texts is not None:
        return list(eval_texts), eval_labels
    rows = list(result.eval_rows)
    return [texts[i] for i in rows], np.asarray(labels)[rows]
