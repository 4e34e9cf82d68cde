"""Where an audit's out-of-sample probabilities come from, one of: MODEL run on DATA (valid
only if it never trained on DATA), a k-fold head on MODEL's frozen embeddings
(:mod:`textgate.audit.kfold`), a saved 'textgate predict' file (checked to be made on these
very texts), or an (N, K) .npy array whose columns ``label_names`` name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textgate.audit.find import label_ids
from textgate.audit.kfold import kfold_probabilities, validate_kfold_labels
from textgate.data import Dataset, read_dataset
from textgate.errors import ConfigError, DataError
from textgate.predictions import (
    is_textgate_predictions,
    load_predictions,
    texts_fingerprint,
)

if TYPE_CHECKING:
    from textgate.model import Classifier

__all__ = ["DEFAULT_FOLDS", "AuditInputs", "audit_inputs", "check_probability_source"]

DEFAULT_FOLDS = 5


def check_probability_source(*, has_model: bool, pred_probs: Path | None, label_names: Sequence[str] | None,
                             k_fold: bool, kfold_options: dict[str, Any]) -> None:
    """The probabilities come from exactly one source, and no option is given that the source
    would silently ignore: ``k_fold`` needs a model (its encoder makes the embeddings), the
    k-fold head's options (``kfold_options`` given, i.e. not None) need ``k_fold``, and
    ``label_names`` only name the columns of a .npy ``pred_probs``. Raises ConfigError."""
    if has_model == (pred_probs is not None):
        raise ConfigError("Pass MODEL or --pred-probs FILE as the source of the probabilities, not "
                          f"{'both' if has_model else 'neither'}.", field="pred_probs")
    if k_fold and not has_model:
        raise ConfigError("--k-fold needs MODEL (its encoder makes the embeddings), not --pred-probs.",
                          field="k_fold")
    for name, value in kfold_options.items():
        if value is not None and not k_fold:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} sets the --k-fold {'head' if name == 'kfold_c' else 'split'}; add "
                              f"--k-fold or leave {flag} out.", field=name)
    if label_names is not None and (pred_probs is None or pred_probs.suffix != ".npy"):
        raise ConfigError("--label-names names the columns of a .npy --pred-probs; MODEL and 'textgate predict' "
                          "files carry their own label names. Leave --label-names out.", field="label_names")


@dataclass(frozen=True, eq=False)
class AuditInputs:
    """DATA read once, with the label names of the probabilities' source, and the probabilities."""

    dataset: Dataset
    label_ids: np.ndarray  # (N,) given labels as class ids
    texts_fingerprint: str
    probabilities: np.ndarray  # (N, K), columns in label_names order
    label_names: tuple[str, ...]
    source: dict[str, Any]  # where the probabilities came from, for summary.json


def audit_inputs(
    data: Path,
    *,
    classifier: Classifier | None = None,
    pred_probs: Path | None = None,
    label_names: Sequence[str] | None = None,
    k_fold: bool = False,
    folds: int | None = None,
    seed: int | None = None,
    kfold_c: float | None = None,
    text_col: str = "text",
    label_col: str = "label",
    token_budget: int | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> AuditInputs:
    """Read DATA with the label names of the probabilities' source (``classifier``'s, the
    'textgate predict' file's, or ``label_names`` for a .npy; None: DATA's labels, sorted), and
    get the probabilities from ``classifier`` (``k_fold``: a k-fold head on its embeddings) or
    from ``pred_probs``. ``folds`` (default 5), ``seed`` (default 0) and ``kfold_c`` set the k-fold
    head and are refused without ``k_fold``; see :func:`check_probability_source`."""
    check_probability_source(has_model=classifier is not None, pred_probs=pred_probs, label_names=label_names,
                             k_fold=k_fold, kfold_options={"folds": folds, "seed": seed, "kfold_c": kfold_c})
    folds = DEFAULT_FOLDS if folds is None else folds
    seed = 0 if seed is None else seed
    label_names = tuple(label_names) if label_names is not None else None
    saved = None
    names_for_data = label_names
    if classifier is not None:
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
    say(f"data: {dataset.summary()}")
    names = dataset.label_names
    ids = label_ids(dataset.labels, names, field=label_col, among="the probability columns",
                    fix="Pass probabilities whose columns cover every label of the data, in label-name order.")
    fingerprint = texts_fingerprint(dataset.texts)
    if classifier is not None and not k_fold:
        from textgate.infer import DEFAULT_TOKEN_BUDGET, predict

        say("probabilities: MODEL run on DATA (valid only if MODEL did not train on DATA)")
        probabilities = predict(classifier, dataset.texts, token_budget=token_budget or DEFAULT_TOKEN_BUDGET,
                                progress=progress).probabilities
        source = {"source": "model", "model_fingerprint": classifier.fingerprint}
    elif classifier is not None:
        from textgate.infer import DEFAULT_TOKEN_BUDGET, embed

        validate_kfold_labels(ids, n_classes=len(names), folds=folds)  # before the embedding, which is slow
        say(f"embedding {len(dataset):,} texts (masked mean of the last hidden state) ...")
        vectors = embed(classifier, dataset.texts, token_budget=token_budget or DEFAULT_TOKEN_BUDGET,
                        progress=progress)
        probabilities, settings = kfold_probabilities(vectors, ids, n_classes=len(names), folds=folds, seed=seed,
                                                      C=kfold_c, say=say)
        source = {"source": "k-fold", "model_fingerprint": classifier.fingerprint,
                  "embedding": "attention-masked mean of the last hidden state", **settings}
    elif saved is not None:
        if saved.data_fingerprint and saved.data_fingerprint != fingerprint:
            raise DataError(f"{pred_probs} was computed on other texts than {data} (data fingerprint "
                            f"{saved.data_fingerprint} vs {fingerprint}); predict on this DATA again.",
                            field="pred_probs", path=pred_probs)
        say(f"probabilities: textgate file {pred_probs} (model fingerprint {saved.model_fingerprint})")
        probabilities = saved.probabilities
        source = {"source": str(pred_probs), "model_fingerprint": saved.model_fingerprint}
    else:
        try:
            probabilities = np.load(pred_probs, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"--pred-probs {pred_probs} is not a readable .npy array ({exc}).", field="pred_probs",
                            path=pred_probs) from exc
        say(f"probabilities: {pred_probs}, columns read as {', '.join(names)}"
            + ("" if label_names else " (DATA's labels, sorted; pass --label-names if the columns differ)"))
        source = {"source": str(pred_probs)}
    return AuditInputs(dataset, ids, fingerprint, probabilities, names, source)
