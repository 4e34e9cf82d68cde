"""Flips and label shift: how two models' predictions on the same examples differ (pure).

Inputs are label codes already checked: the index in ``label_names``, and ``K`` for a
prediction outside them, which shows as one extra label ``"(invalid)"`` in the flip matrix and
the label shift (only when some prediction on either side is invalid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textgate._internal.records import Record

__all__ = ["INVALID_LABEL", "Flips", "LabelShift", "flip_summary", "label_shift"]

# The extra row/column for predictions outside label_names (flip matrix, label shift).
INVALID_LABEL = "(invalid)"


@dataclass(frozen=True, eq=False)  # eq=False: the matrix ndarray has no boolean ==
class Flips(Record):
    """Examples whose predicted label changed. Rates are fractions of all ``n`` examples.

    ``matrix[i, j]`` counts examples predicted ``matrix_labels[i]`` by the baseline and
    ``matrix_labels[j]`` by the candidate (diagonal: unchanged). ``example_rows`` are 0-based
    dataset rows of flipped examples, harmful ones first, then beneficial, then other.
    """

    n: int
    flipped: int
    flip_rate: float
    harmful: int  # baseline right, candidate wrong
    harmful_rate: float
    beneficial: int  # baseline wrong, candidate right
    beneficial_rate: float
    other: int  # changed from one wrong label to another
    matrix_labels: tuple[str, ...]
    matrix: np.ndarray
    example_rows: tuple[int, ...]


@dataclass(frozen=True)
class LabelShift(Record):
    """Share of each predicted label per model; total_variation = 0.5 * sum(|delta|)."""

    labels: tuple[str, ...]
    baseline_share: tuple[float, ...]
    candidate_share: tuple[float, ...]
    delta: tuple[float, ...]
    total_variation: float


def _labels_with_invalid(names: tuple[str, ...], *codes: np.ndarray) -> tuple[str, ...]:
    """label_names, plus "(invalid)" when some prediction in ``codes`` is invalid (code K)."""
    k = len(names)
    return names + (INVALID_LABEL,) if any(np.any(c == k) for c in codes) else names


def flip_summary(true_codes: np.ndarray, base_codes: np.ndarray, cand_codes: np.ndarray, rows: np.ndarray,
                 names: tuple[str, ...], *, rng: np.random.Generator, n_example_flips: int) -> Flips:
    """Flip summary of the examples given (``rows``: their dataset rows, for example_rows).
    ``rng`` shuffles harmful, then beneficial, then other flips, keeping the first rows of each
    until ``n_example_flips`` are chosen (groups after that draw nothing)."""
    n, k = true_codes.size, len(names)
    base_ok, cand_ok = base_codes == true_codes, cand_codes == true_codes
    flipped = base_codes != cand_codes
    groups = (base_ok & ~cand_ok, ~base_ok & cand_ok, flipped & ~base_ok & ~cand_ok)
    labels = _labels_with_invalid(names, base_codes, cand_codes)
    side = len(labels)  # K, or K + 1 with the invalid row/column last
    matrix = np.bincount(base_codes * (k + 1) + cand_codes, minlength=(k + 1) ** 2)
    matrix = matrix.reshape(k + 1, k + 1)[:side, :side].astype(np.int64)
    matrix.setflags(write=False)
    harmful, beneficial, other = (int(g.sum()) for g in groups)
    return Flips(
        n=n,
        flipped=int(flipped.sum()),
        flip_rate=float(flipped.mean()),
        harmful=harmful,
        harmful_rate=harmful / n,
        beneficial=beneficial,
        beneficial_rate=beneficial / n,
        other=other,
        matrix_labels=labels,
        matrix=matrix,
        example_rows=_example_rows(groups, rows, rng, n_example_flips),
    )


def _example_rows(groups: tuple[np.ndarray, ...], rows: np.ndarray, rng: np.random.Generator,
                  n_example_flips: int) -> tuple[int, ...]:
    chosen: list[int] = []
    for group in groups:
        room = n_example_flips - len(chosen)
        if room <= 0:
            break
        # Sorted inside each group so a reader scans the dataset top-down.
        chosen += sorted(int(r) for r in rng.permutation(rows[group])[:room])
    return tuple(chosen)


def label_shift(base_codes: np.ndarray, cand_codes: np.ndarray, names: tuple[str, ...]) -> LabelShift:
    """Each model's share of every predicted label, and how far the mix moved."""
    labels = _labels_with_invalid(names, base_codes, cand_codes)
    base_share = np.bincount(base_codes, minlength=len(names) + 1)[: len(labels)] / base_codes.size
    cand_share = np.bincount(cand_codes, minlength=len(names) + 1)[: len(labels)] / cand_codes.size
    delta = cand_share - base_share
    return LabelShift(
        labels=labels,
        baseline_share=tuple(float(v) for v in base_share),
        candidate_share=tuple(float(v) for v in cand_share),
        delta=tuple(float(v) for v in delta),
        total_variation=float(0.5 * np.abs(delta).sum()),
    )
