"""How well `textgate audit` finds planted label errors, and how fast its core runs.

    .venv/bin/python benchmarks/audit_quality.py [--limit N] [--folds 5] [--seed 0] [--write]

On the bundled TweetEval sentiment test set (examples/tweet-sentiment/test.jsonl, 12,284
tweets), seeded noise is planted into the labels:
  - uniform 5% and 10%: that share of examples gets a label drawn uniformly from the others;
  - class-conditional: 20% of the positives become neutral.
Each method (confident learning, prune_by_noise_rate ranked by normalized margin; loss
ranking flagging as many as confident learning estimates) runs on probabilities from
  (i)  the demo classifier (trained on a separate SemEval pool, never on test: out-of-sample).
       They do not depend on the noise, so they are computed once;
  (ii) 5-fold logistic regression (C picked by out-of-fold NLL) on the demo classifier's frozen
       embeddings (masked mean of the last hidden state, computed once), trained on the NOISY
       labels, as a user would.
Definitions (planted = the rows whose label was changed, k = their number; flagged = the
method's findings):
  precision   = |flagged & planted| / |flagged|
  recall      = |flagged & planted| / k;  F1 their harmonic mean
  precision@k = share of planted among the k highest-scoring rows of the method's ranking
  recall at precision >= 0.6 = the largest recall of any cut of the ranking whose precision
              (planted only) is at least 0.6
  precision (planted or pre-existing) = |flagged & (planted | pre-existing)| / |flagged|, where
              pre-existing = what the same method and probability source flags on the
              original, unnoised labels (TweetEval's own disagreements with the model).
Run time of the audit core (validation, confident joint, find_label_issues, ranking) for the
12k tweets and for 100,000 synthetic examples (K = 3, Dirichlet probabilities), median of 3.
--write replaces the audit-quality section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from machine import machine_line
from markdown_section import replace_section

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "tweet-sentiment"
MARK_START, MARK_END = "<!-- audit-quality:start -->", "<!-- audit-quality:end -->"
SECTION_HEADING = "## Label audit quality (issue 5)"
TARGET = {"noise": "uniform_10", "probabilities": "k-fold", "precision": 0.6, "recall": 0.6}
SYNTHETIC_N = 100_000


def plant_noise(labels: np.ndarray, scenario: str, rng: np.random.Generator, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copy of ``labels`` and the planted rows."""
    k = len(names)
    noisy = labels.copy()
    if scenario.startswith("uniform_"):
        rate = int(scenario.split("_")[1]) / 100
        rows = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
        noisy[rows] = (labels[rows] + rng.integers(1, k, size=len(rows))) % k
    else:  # "positive_to_neutral_20"
        positives = np.flatnonzero(labels == names.index("positive"))
        rows = rng.choice(positives, size=round(0.2 * len(positives)), replace=False)
        noisy[rows] = names.index("neutral")
    return noisy, np.sort(rows)


def ranking(method: str, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Every example's row, most likely wrong first, under the method's ranking score."""
    if method == "loss":
        scores = -np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))
    else:
        from cleanlab.rank import get_label_quality_scores

        scores = 1 - get_label_quality_scores(labels, probs / probs.sum(axis=1, keepdims=True),
                                              method="normalized_margin")
    return np.argsort(-scores, kind="stable")


def evaluate(method: str, labels: np.ndarray, probs: np.ndarray, planted: np.ndarray, names, pre: set[int]) -> dict:
    from textgate.audit import audit_labels

    result = audit_labels(labels, probs, label_names=names, method=method)
    flagged = {f.row for f in result.findings}
    hits = len(flagged & set(planted.tolist()))
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(planted) if len(planted) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    order = ranking(method, labels, probs)
    p_at_k = hits_at_k(order, planted)
    explained = len(flagged & (set(planted.tolist()) | pre)) / len(flagged) if flagged else 0.0
    recall_at_target = recall_at_precision(order, planted)
    return {"flagged": len(flagged), "estimated": result.estimated_issues, "precision": round(precision, 3),
            "recall": round(recall, 3), "f1": round(f1, 3), "precision_at_k": round(p_at_k, 3),
            "precision_planted_or_preexisting": round(explained, 3),
            "recall_at_precision_0.6": round(recall_at_target, 3), "_flagged": flagged}


def recall_at_precision(order: np.ndarray, planted: np.ndarray) -> float:
    """The best cut of the ranking for the target: the most recall with precision >= 0.6."""
    hits_at = np.cumsum(np.isin(order, planted))
    ok = hits_at / np.arange(1, len(order) + 1) >= TARGET["precision"]
    return float(hits_at[ok].max() / len(planted)) if ok.any() else 0.0


def hits_at_k(order: np.ndarray, planted: np.ndarray) -> float:
    top = order[: len(planted)]
    return len(set(top.tolist()) & set(planted.tolist())) / len(planted)


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(limit: int | None, folds: int, seed: int, noise_seeds: list[int]) -> dict:
    from textgate.audit import audit_labels, kfold_probabilities, label_ids
    from textgate.data import read_dataset
    from textgate.infer import embed, predict
    from textgate.model import load_classifier, load_model_spec

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    classifier = load_classifier(load_model_spec(DEMO / "model.toml"))
    names = classifier.label_names
    dataset = read_dataset(DEMO / "test.jsonl", label_names=names)
    texts = dataset.texts[:limit] if limit else dataset.texts
    clean = label_ids(dataset.labels[: len(texts)], names)
    started = time.perf_counter()
    model_probs = predict(classifier, texts).probabilities.astype(np.float64)
    predict_s = time.perf_counter() - started
    started = time.perf_counter()
    vectors = embed(classifier, texts)
    embed_s = time.perf_counter() - started
    print(f"probabilities {predict_s:.0f} s, embeddings {embed_s:.0f} s for {len(texts):,} tweets; model accuracy "
          f"{(model_probs.argmax(1) == clean).mean():.3f}", file=sys.stderr)

    chosen_c: list[float] = []

    def kfold(labels: np.ndarray) -> np.ndarray:
        probs, settings = kfold_probabilities(vectors, labels, n_classes=len(names), folds=folds, seed=seed)
        chosen_c.append(settings["C"])
        return probs

    rng = np.random.default_rng(seed)
    scenarios = ["uniform_5", "uniform_10", "positive_to_neutral_20"]
    kfold_clean = kfold(clean)
    sources = {"model": lambda labels: model_probs, "k-fold": kfold}
    clean_probs = {"model": model_probs, "k-fold": kfold_clean}
    preexisting = {}
    for source, probs in clean_probs.items():
        for method in ("confident_learning", "loss"):
            preexisting[(source, method)] = evaluate(method, clean, probs, np.array([0]), names, set())
    rows = []
    kfold_seconds = []
    for scenario in scenarios:
        noisy, planted = plant_noise(clean, scenario, rng, names)
        for source, make in sources.items():
            started = time.perf_counter()
            probs = make(noisy)
            if source == "k-fold":
                kfold_seconds.append(time.perf_counter() - started)
            for method in ("confident_learning", "loss"):
                m = evaluate(method, noisy, probs, planted, names, preexisting[(source, method)]["_flagged"])
                m.pop("_flagged")
                rows.append({"noise": scenario, "planted": len(planted), "probabilities": source, "method": method, **m})
                print(rows[-1], file=sys.stderr)
    baseline = {f"{s}/{m}": v["flagged"] for (s, m), v in preexisting.items()}
    spread = target_spread(clean, names, noise_seeds, kfold, kfold_clean)

    def core(labels, probs, method):
        return lambda: audit_labels(labels, probs, label_names=names, method=method)

    synth_rng = np.random.default_rng(seed)
    synth_labels = synth_rng.integers(0, 3, SYNTHETIC_N)
    synth_probs = synth_rng.dirichlet([1.0, 1.0, 1.0], SYNTHETIC_N)
    synth_probs[np.arange(SYNTHETIC_N), synth_labels] += 1.0
    synth_probs /= synth_probs.sum(axis=1, keepdims=True)
    timing = {
        "n_tweets": len(texts),
        "core_tweets_cl_s": round(timed(core(clean, model_probs, "confident_learning")), 3),
        "core_tweets_loss_s": round(timed(core(clean, model_probs, "loss")), 3),
        "core_100k_cl_s": round(timed(core(synth_labels, synth_probs, "confident_learning")), 3),
        "core_100k_loss_s": round(timed(core(synth_labels, synth_probs, "loss")), 3),
        "predict_s": round(predict_s, 1), "embed_s": round(embed_s, 1),
        "kfold_s": round(statistics.median(kfold_seconds), 1),
    }
    # Met when some cut of the method's ranking has precision >= 0.6 and recall >= 0.6 for every noise seed.
    verdict = {method: all(row[method]["recall_at_precision_0.6"] >= TARGET["recall"] for row in spread)
               for method in ("confident_learning", "loss")}
    return {"date": dt.date.today().isoformat(), "machine": _machine(), "rows": rows, "timing": timing,
            "preexisting": baseline, "model_accuracy": round(float((model_probs.argmax(1) == clean).mean()), 4),
            "folds": folds, "seed": seed, "verdict": verdict, "limit": limit, "spread": spread,
            "kfold_c": sorted(set(chosen_c))}


def target_spread(clean: np.ndarray, names, noise_seeds: list[int], kfold, kfold_clean: np.ndarray) -> list[dict]:
    """The target setting (uniform 10%, k-fold) under several noise seeds, plus a ceiling: the same
    features and head fitted to the ORIGINAL labels (which no user has), scored on the noisy ones."""
    spread = []
    for noise_seed in noise_seeds:
        rng = np.random.default_rng(noise_seed)
        plant_noise(clean, "uniform_5", rng, names)  # the main table's order of draws
        noisy, planted = plant_noise(clean, TARGET["noise"], rng, names)
        probs = kfold(noisy)
        row = {"noise_seed": noise_seed}
        for method, source in (("confident_learning", probs), ("loss", probs), ("ceiling", kfold_clean)):
            order = ranking("loss" if method == "ceiling" else method, noisy, source)
            row[method] = {"recall_at_precision_0.6": round(recall_at_precision(order, planted), 3),
                           "precision_at_k": round(hits_at_k(order, planted), 3)}
        spread.append(row)
        print(row, file=sys.stderr)
    return spread


def _machine() -> str:
    return machine_line()


def write_section(r: dict, command: str) -> None:
    from textgate.audit import KFOLD_C_GRID

    t = r["timing"]
    lines = [MARK_START, f"Measured {r['date']}: {r['machine']}. {t['n_tweets']:,} TweetEval test tweets, demo "
             f"classifier (accuracy {r['model_accuracy']:.1%} on the original labels), seed {r['seed']}, "
             f"{r['folds']}-fold for k-fold (head's C picked by out-of-fold NLL: "
             f"{', '.join(f'{c:g}' for c in r['kfold_c'])}).", "", f"Command: `{command}`", "",
             "| noise | planted | probabilities | method | flagged | CL estimate | precision | recall | F1 | "
             "precision@k | recall at precision >= 0.6 | precision (planted or pre-existing) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['noise']} | {row['planted']:,} | {row['probabilities']} | {row['method']} | {row['flagged']:,} | "
                     f"{row['estimated']:,} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
                     f"{row['precision_at_k']:.3f} | {row['recall_at_precision_0.6']:.3f} | "
                     f"{row['precision_planted_or_preexisting']:.3f} |")
    pre = ", ".join(f"{k}: {v:,}" for k, v in r["preexisting"].items())
    met = ", ".join(f"{m}: {'met' if ok else 'NOT met'}" for m, ok in r["verdict"].items())
    n = r["timing"]["n_tweets"]
    pre_kfold = r["preexisting"]["k-fold/confident_learning"]
    lines += ["", f"Pre-existing (flagged on the original labels, no noise planted): {pre}.", "",
              "Target setting (uniform 10%, k-fold) under several noise seeds; 'ceiling' = the same embeddings "
              "and head fitted to the ORIGINAL labels, which no user has, ranking by loss on the noisy labels:", "",
              "| noise seed | CL: recall at P >= 0.6 | CL: precision@k | loss: recall at P >= 0.6 | "
              "loss: precision@k | ceiling: recall at P >= 0.6 | ceiling: precision@k |",
              "|---|---|---|---|---|---|---|"]
    for row in r["spread"]:
        cells = [f"{row[m]['recall_at_precision_0.6']:.3f} | {row[m]['precision_at_k']:.3f}"
                 for m in ("confident_learning", "loss", "ceiling")]
        lines.append(f"| {row['noise_seed']} | " + " | ".join(cells) + " |")
    gap = max(row["ceiling"]["recall_at_precision_0.6"] - row["loss"]["recall_at_precision_0.6"] for row in r["spread"])
    lines += ["", f"Target (uniform 10% noise, k-fold probabilities: precision >= 0.6 at recall >= 0.6, precision "
              "against the planted rows only, at the best cut of the ranking, for every noise seed; choosing that "
              "cut needs the planted truth, so this is an easier bar than the flagged set's own precision and "
              f"recall in the first table): {met}. "
              f"Why: the demo classifier disagrees with {1 - r['model_accuracy']:.1%} of TweetEval's own labels, "
              f"and before any noise is planted the audit already flags {pre_kfold:,} of {n:,} tweets "
              f"({pre_kfold / n:.1%}), twice the 10% planted; those count as false positives against the planted "
              "set although many are genuine label errors or ambiguous tweets (against planted or pre-existing "
              "issues, precision is in the last column of the first table). The ceiling column is what the same "
              "head on the same embeddings reaches when fitted to the original labels; loss ranking on the noisy "
              f"labels comes within {gap:.3f} of it on every seed. 'recall at precision >= 0.6' is the best cut anywhere "
              "in the method's ranking; the flagged sets themselves (CL's estimate) are larger and less precise.", "",
              f"Run time: audit core on {t['n_tweets']:,} tweets {t['core_tweets_cl_s']} s (confident learning) / "
              f"{t['core_tweets_loss_s']} s (loss); on {SYNTHETIC_N:,} synthetic examples {t['core_100k_cl_s']} s / "
              f"{t['core_100k_loss_s']} s (median of 3). Model probabilities {t['predict_s']} s, embeddings "
              f"{t['embed_s']} s, one {r['folds']}-fold k-fold over its {len(KFOLD_C_GRID)} candidate C values {t['kfold_s']} s (once "
              "each per audit).", MARK_END]
    replace_section(lines, start=MARK_START, end=MARK_END, heading=SECTION_HEADING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N tweets (quick check)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the target setting's noise (uniform 10%%, k-fold)")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    result = run(args.limit, args.folds, args.seed, args.noise_seeds)
    for row in result["rows"]:
        print(row)
    print(result["timing"], result["preexisting"], result["verdict"])
    if args.write:
        command = " ".join([".venv/bin/python", "benchmarks/audit_quality.py", *sys.argv[1:]])
        write_section(result, command)
        print(f"wrote the audit-quality section of {REPO / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
