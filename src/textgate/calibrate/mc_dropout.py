"""Monte Carlo dropout: dropout kept active at inference, the mean of N stochastic passes, and
what each N costs, measured against the uncalibrated model on the same rows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from textgate._internal.bootstrap import check_seed
from textgate._internal.labels import encode_true
from textgate._internal.records import Record
from textgate._internal.validation import (
    check_label_names,
    check_probabilities,
    check_same_length,
)
from textgate.errors import ConfigError, DataError
from textgate.evaluation.metrics import DEFAULT_N_BINS, calibration_from_codes

if TYPE_CHECKING:
    from textgate.model import Classifier

__all__ = ["DEFAULT_MC_PASSES", "McDropoutPoint", "McDropoutRun", "mc_dropout_curve", "mc_dropout_metrics",
           "mc_dropout_mode"]

DEFAULT_MC_PASSES = (1, 5, 10, 20, 40)


@dataclass(frozen=True)
class McDropoutPoint(Record):
    """Metrics of the mean of the first ``passes`` stochastic passes, and what they cost."""

    passes: int
    ece_equal_width: float
    ece_equal_mass: float
    nll: float
    brier: float
    accuracy: float
    seconds: float  # wall time of those passes together


@dataclass(frozen=True, eq=False)
class McDropoutRun(Record):
    """An MC-dropout run: the curve, every pass's wall time, and deterministic passes timed just
    before and just after the stochastic ones (the cost of the uncalibrated and the
    temperature-scaled model, since T is free at run time)."""

    points: tuple[McDropoutPoint, ...]
    pass_seconds: tuple[float, ...]
    deterministic_seconds: tuple[float, float]  # (before, after) the stochastic passes
    mean_probabilities: np.ndarray  # (N, K) mean over all passes, label_names column order
    seed: int  # of the dropout masks
    rows: int  # texts each pass ran on (N)

    @property
    def seconds_per_pass(self) -> float:
        """Median wall time of one stochastic pass."""
        return float(np.median(self.pass_seconds))

    @property
    def deterministic_seconds_per_pass(self) -> float:
        return float(np.mean(self.deterministic_seconds))

    def summary(self) -> dict[str, Any]:
        """JSON-ready, without the probabilities."""
        return {"seed": self.seed, "rows": self.rows, "points": [p.to_dict() for p in self.points],
                "pass_seconds": list(self.pass_seconds),
                "deterministic_seconds": list(self.deterministic_seconds),
                "seconds_per_pass": self.seconds_per_pass,
                "deterministic_seconds_per_pass": self.deterministic_seconds_per_pass}


def mc_dropout_metrics(y_true: Any, pass_probabilities: Any, pass_seconds: Sequence[float], *,
                       label_names: Sequence[str],
                       passes: Sequence[int] = DEFAULT_MC_PASSES) -> tuple[McDropoutPoint, ...]:
    """Metrics of the mean probabilities of the first N passes, for each N in ``passes``.

    ``pass_probabilities`` is (P, N, K): P stochastic passes over the same N examples;
    ``pass_seconds`` the wall time of each pass, so N passes cost the sum of the first N."""
    names = check_label_names(label_names)
    y = encode_true(y_true, names)
    stack = np.asarray(pass_probabilities, dtype=np.float64)
    if stack.ndim != 3:
        raise DataError(f"pass_probabilities must be (passes, N, K); got shape {stack.shape}.",
                        field="pass_probabilities")
    wanted = _check_passes(passes, limit=stack.shape[0])
    seconds = np.asarray(pass_seconds, dtype=np.float64)
    check_same_length(stack.shape[0], seconds.size, "pass_seconds")
    points = []
    running = np.zeros(stack.shape[1:])
    done = 0
    for n_passes in wanted:
        for i in range(done, n_passes):
            running += check_probabilities(stack[i], y.size, len(names))
        done = n_passes
        mean = running / n_passes
        metrics = calibration_from_codes(y, mean, DEFAULT_N_BINS)
        points.append(McDropoutPoint(n_passes, metrics.ece_equal_width.value, metrics.ece_equal_mass.value,
                                     metrics.nll.value, metrics.brier.value,
                                     float(np.mean(mean.argmax(axis=1) == y)), float(seconds[:n_passes].sum())))
    return tuple(points)


def mc_dropout_curve(classifier: Classifier, texts: Sequence[str], y_true: Any, *,
                     passes: Sequence[int] = DEFAULT_MC_PASSES, seed: int = 0,
                     token_budget: int | None = None) -> McDropoutRun:
    """Run max(passes) stochastic passes of ``classifier`` on ``texts`` with dropout active
    (attention dropout included; see :func:`mc_dropout_mode`) through the
    inference engine, and measure the averaged probabilities for each N in ``passes``.

    A deterministic pass on the same texts is timed before and after the stochastic ones: the
    cost of the uncalibrated and of the temperature-scaled model. The classifier's own
    temperature is not applied: MC dropout is compared with the uncalibrated model."""
    from textgate.infer import DEFAULT_TOKEN_BUDGET, predict

    wanted = _check_passes(passes)
    seed = check_seed(seed)
    # Labels first: a wrong label or length fails now, not after max(passes) passes.
    y = encode_true(y_true, check_label_names(classifier.label_names))
    check_same_length(y.size, len(texts), "texts")
    budget = DEFAULT_TOKEN_BUDGET if token_budget is None else token_budget
    raw = _uncalibrated(classifier)

    def deterministic_pass() -> float:
        started = time.perf_counter()
        predict(raw, texts, token_budget=budget, progress=False)
        return time.perf_counter() - started

    before = deterministic_pass()
    stack, seconds = [], []
    with mc_dropout_mode(raw, seed=seed):
        for _ in range(max(wanted)):
            started = time.perf_counter()
            stack.append(predict(raw, texts, token_budget=budget, progress=False).probabilities)
            seconds.append(time.perf_counter() - started)
    after = deterministic_pass()
    probabilities = np.stack(stack)
    points = mc_dropout_metrics(y_true, probabilities, seconds, label_names=classifier.label_names, passes=wanted)
    return McDropoutRun(points, tuple(seconds), (before, after), probabilities.mean(axis=0, dtype=np.float64),
                        seed=seed, rows=len(texts))


def _uncalibrated(classifier: Classifier) -> Classifier:
    import dataclasses

    return classifier if classifier.temperature == 1.0 else dataclasses.replace(classifier, temperature=1.0)


def _check_passes(passes: Any, *, limit: int | None = None) -> tuple[int, ...]:
    values = tuple(passes) if isinstance(passes, (list, tuple)) else ()
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ConfigError(f"MC dropout passes must be a non-empty list of integers >= 1; got {passes!r}. "
                          "Use e.g. 1,5,10,20,40.", field="mc_dropout")
    wanted = tuple(sorted({int(v) for v in values}))
    if limit is not None and wanted[-1] > limit:
        raise DataError(f"Asked for the mean of {wanted[-1]} passes but only {limit} were run.",
                        field="passes")
    return wanted


@contextlib.contextmanager
def mc_dropout_mode(classifier: Classifier, *, seed: int) -> Iterator[None]:
    """Dropout active at inference (Monte Carlo dropout), seeded, restored on exit.

    SDPA attention applies no dropout outside training, so attention switches to the eager
    implementation. The attention modules read their own ``training`` flag (not their Dropout
    child's), so dropout modules alone would leave attention dropout off: every module goes to
    train mode except batch-norm layers, whose running statistics would otherwise move. torch's
    global generator is seeded with ``seed`` and given back its state afterwards. It changes the
    shared model object: do not use it on a classifier that is serving requests.
    """
    import torch

    model = classifier.model
    attention = model.config._attn_implementation
    rng_state = torch.get_rng_state()
    try:
        model.set_attn_implementation("eager")
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        torch.manual_seed(seed)
        yield
    finally:
        model.eval()
        model.set_attn_implementation(attention)
        torch.set_rng_state(rng_state)
