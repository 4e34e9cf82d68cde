"""Statistical honesty of `textgate gate`, measured: false fails, detection rates, cache speed-up.

    .venv/bin/python benchmarks/gate_calibration.py [--trials N] [--batch-order-trials N] [--write]

On the bundled validation set (2,000 TweetEval sentiment tweets), the demo classifier (float32)
and the gate's default thresholds (`Thresholds()`), with the demo slang slice and a fixed random
slice of 200 tweets ("domain-200") as slices:
  (i)  A/A runs, where every fail is a false fail:
       a. the same predictions as baseline and candidate on bootstrap resamples of the data;
       b. the model run twice, interleaved batch by batch as the gate runs it, each side in its
          own shuffled row order (so batches, padding and numerics differ) with the token budget
          varying between trials; ECE checks included (the latency check, which times both
          models in its own run, is measured by benchmarks/latency_check.py);
  (ii) injected regressions: the real baseline predictions with k of its correct predictions
       flipped to a random wrong label (probabilities swapped to match): 60 flips overall (a
       3-point drop), 20 flips inside domain-200 (a 10-point drop there, 1 point overall), and
       20 flips overall (1 point, below the 2-point threshold: should pass). Each is gated on the
       2,000 tweets themselves (the drop is then exact) and on bootstrap resamples of them (a
       fresh 2,000-tweet test set each trial, so the observed drop varies around the true one);
       with default thresholds and with require_significance = true;
  (iii) `textgate gate examples/tweet-sentiment/gate-bf16.toml` as a subprocess, empty cache
       (cold) vs the same command again (warm, median of repeats), process start included.
Targets (issue 3): A/A false-fail rate <= 5%; detection >= 90%; cache re-run >= 20x faster.
--write replaces the gate-calibration section of BENCHMARKS.md with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
from machine import machine_line
from markdown_section import replace_section

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "tweet-sentiment"
TARGETS = {"false_fail_rate": 0.05, "detection_rate": 0.90, "cache_speedup": 20.0}
MARK_START, MARK_END = "<!-- gate-calibration:start -->", "<!-- gate-calibration:end -->"
SECTION_HEADING = "## Gate calibration (issue 3)"
DOMAIN_SLICE, DOMAIN_SIZE = "domain-200", 200
# Token budgets cycled over the batch-order trials: the default and one either side of it.
BUDGETS = (4096, 2048, 8192)
# (name, flips, where): where = "all" flips anywhere, else inside that slice only.
REGRESSIONS = (("overall_3pt", 60, "all"), ("slice_10pt", 20, DOMAIN_SLICE), ("overall_1pt", 20, "all"))


# --- the data and the real baseline ----------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    dataset: object  # textgate.data.Dataset
    predictions: object  # textgate.predictions.Predictions of the demo classifier, float32
    slices: tuple  # SliceSpecs evaluate() sees (slang)
    masks: dict[str, np.ndarray]  # slang and domain-200, what compare_predictions sees
    classifiers: tuple  # the demo spec loaded twice


def load_setup(seed: int) -> Setup:
    from textgate.data import read_dataset
    from textgate.infer import predict
    from textgate.model import load_classifier, load_model_spec
    from textgate.slices import load_slices_toml, slice_masks

    spec = load_model_spec(DEMO / "model.toml")
    classifiers = (load_classifier(spec), load_classifier(spec))
    dataset = read_dataset(DEMO / "val.jsonl", label_names=classifiers[0].label_names)
    predictions = predict(classifiers[0], dataset.texts, progress=False)
    slices = load_slices_toml(DEMO / "slices.toml")
    masks = slice_masks(slices, texts=dataset.texts, columns=dataset.columns).masks
    domain = np.zeros(len(dataset), dtype=bool)
    domain[np.random.default_rng([seed, 0]).choice(len(dataset), DOMAIN_SIZE, replace=False)] = True
    return Setup(dataset, predictions, slices, {**masks, DOMAIN_SLICE: domain}, classifiers)


def take_rows(dataset, predictions: list, rows: np.ndarray):
    """The dataset and predictions restricted to ``rows`` (repeats allowed), in that order.

    Batch timings are per batch, not per row, so they stay as they are."""
    from textgate.data import Dataset
    from textgate.predictions import texts_fingerprint

    texts = tuple(dataset.texts[i] for i in rows)
    subset = Dataset(texts=texts, labels=dataset.labels[rows], label_names=dataset.label_names,
                     columns={k: tuple(v[i] for i in rows) for k, v in dataset.columns.items()},
                     path=dataset.path, text_col=dataset.text_col, label_col=dataset.label_col,
                     fingerprint=f"{dataset.fingerprint[:16]}-rows-{len(rows)}",
                     empty_text_rows=tuple(i for i, t in enumerate(texts) if not t.strip()))
    fingerprint = texts_fingerprint(texts)
    return subset, [reorder(p, rows, fingerprint) for p in predictions]


def reorder(predictions, rows: np.ndarray, data_fingerprint: str):
    return dataclasses.replace(
        predictions, predicted=predictions.predicted[rows], probabilities=predictions.probabilities[rows],
        token_counts=predictions.token_counts[rows], data_fingerprint=data_fingerprint)


def gate(dataset, baseline, candidate, masks: dict, slices: tuple, *, seed: int, resamples: int,
         variants: dict) -> dict:
    """Evaluate, compare and check_gate under each Thresholds in ``variants``:
    {"failed": {variant: sorted names of the failed checks}, "comparison": the Comparison}."""
    from textgate.gate import check_gate
    from textgate.gate.compare import compare_predictions

    comparison = compare_predictions(dataset.labels, baseline, candidate, label_names=dataset.label_names,
                                     slice_masks=masks, n_resamples=resamples, seed=seed,
                                     confidence=0.95, n_example_flips=0)
    out = {}
    for name, thresholds in variants.items():
        result = check_gate(comparison, thresholds, latency_skipped="measured by benchmarks/latency_check.py")
        out[name] = sorted(f"{c.name} ({c.scope})" for c in result.checks if c.status == "fail")
    return {"failed": out, "comparison": comparison}


def rates(failures: list[list[str]]) -> dict:
    """Fraction of trials that failed (with its 95% Wilson interval), and how often each check
    was among the failed ones."""
    from textgate.evaluation.metrics import wilson_interval

    counts, failed = Counter(name for f in failures for name in f), sum(bool(f) for f in failures)
    return {"fail_rate": failed / len(failures),
            "fail_rate_ci95": [round(x, 4) for x in wilson_interval(failed, len(failures))],
            "failed_checks": {name: n / len(failures) for name, n in counts.most_common()}}


# --- (i-a) A/A on bootstrap resamples ---------------------------------------------------------


def aa_bootstrap(setup: Setup, trials: int, seed: int, resamples: int) -> dict:
    from textgate.gate import Thresholds

    n, failures = len(setup.dataset), []
    for trial in range(trials):
        rows = np.random.default_rng([seed, 1, trial]).integers(0, n, size=n)
        dataset, (baseline,) = take_rows(setup.dataset, [setup.predictions], rows)
        masks = {name: mask[rows] for name, mask in setup.masks.items()}
        run = gate(dataset, baseline, baseline, masks, setup.slices, seed=trial, resamples=resamples,
                   variants={"default": Thresholds()})
        failures.append(run["failed"]["default"])
    return {"trials": trials, **rates(failures)}


# --- (i-b) A/A with different batch orders ----------------------------------------------------


def predict_in_own_orders(classifiers, texts: list[str], orders: list[np.ndarray], token_budget: int) -> list:
    """predict_interleaved, except that each classifier gets the texts in its own row order.

    The public function takes one text sequence for all classifiers, which gives both sides
    identical batches (and identical numbers); this is its loop over the engine's private
    per-classifier runs, with results mapped back to input order."""
    from textgate.infer.engine import Run, alternate_batches
    from textgate.predictions import texts_fingerprint

    runs = [Run(c, [texts[i] for i in order], token_budget) for c, order in zip(classifiers, orders, strict=True)]
    for _ in alternate_batches(runs):  # the same schedule as predict_interleaved
        pass
    fingerprint = texts_fingerprint(texts)
    return [reorder(r.result(interleaved=True), np.argsort(order), fingerprint)
            for r, order in zip(runs, orders, strict=True)]


def aa_batch_order(setup: Setup, trials: int, seed: int) -> dict:
    from textgate.gate import Thresholds
    from textgate.gate.config import GateSettings
    from textgate.infer import predict

    texts, n = list(setup.dataset.texts), len(setup.dataset)
    # One-time costs (allocations for the widest batches) out of trial 0: the longest texts.
    longest = [texts[i] for i in np.argsort(-setup.predictions.token_counts, kind="stable")[:256]]
    for classifier in setup.classifiers:
        predict(classifier, longest, progress=False)
    failures, details = [], []
    for trial in range(trials):
        rng = np.random.default_rng([seed, 3, trial])
        orders, budget = [rng.permutation(n), rng.permutation(n)], BUDGETS[trial % len(BUDGETS)]
        baseline, candidate = predict_in_own_orders(setup.classifiers, texts, orders, budget)
        run = gate(setup.dataset, baseline, candidate, setup.masks, setup.slices, seed=trial,
                   resamples=GateSettings().bootstrap_resamples, variants={"default": Thresholds()})
        failures.append(run["failed"]["default"])
        details.append(batch_order_detail(run["comparison"], baseline, candidate, budget))
        print(f"  batch-order trial {trial + 1}/{trials}: budget {budget}, "
              f"{failures[-1] or 'pass'}", file=sys.stderr)
    return {"trials": trials, **rates(failures), "token_budgets": sorted({d["token_budget"] for d in details}),
            "max_flip_rate": max(d["flip_rate"] for d in details),
            "max_abs_accuracy_delta_pts": max(d["abs_accuracy_delta_pts"] for d in details),
            "max_abs_prob_diff": max(d["max_abs_prob_diff"] for d in details),
            "max_abs_ece_delta": max(d["abs_ece_delta"] for d in details), "per_trial": details}


def batch_order_detail(comparison, baseline, candidate, budget: int) -> dict:
    delta = {m.name: m.delta for m in comparison.metrics}
    return {"token_budget": budget, "flip_rate": comparison.flips.flip_rate,
            "abs_accuracy_delta_pts": round(100 * abs(delta["accuracy"]), 3),
            "max_abs_prob_diff": float(np.abs(baseline.probabilities - candidate.probabilities).max()),
            "abs_ece_delta": abs(delta["ece_equal_width"]),
            "batches": [len(baseline.batch_sizes), len(candidate.batch_sizes)]}


# --- (ii) injected regressions ----------------------------------------------------------------


def inject(predictions, labels: np.ndarray, pool: np.ndarray, k: int, rng: np.random.Generator):
    """``predictions`` with k correct ones among rows ``pool`` moved to a random wrong label; the
    two probabilities are swapped so the candidate stays a consistent (confidently wrong) model."""
    names = list(predictions.label_names)
    correct = pool[predictions.predicted[pool] == labels[pool]]
    rows = rng.choice(correct, size=k, replace=False)
    predicted, probabilities = predictions.predicted.copy(), predictions.probabilities.copy()
    for row in rows:
        old = names.index(predicted[row])
        new = rng.choice([j for j in range(len(names)) if j != old])
        probabilities[row, [old, new]] = probabilities[row, [new, old]]
        predicted[row] = names[new]
    return dataclasses.replace(predictions, predicted=predicted, probabilities=probabilities)


def regressions(setup: Setup, trials: int, seed: int, resamples: int) -> dict:
    n, out = len(setup.dataset), {}
    for index, (name, flips, where) in enumerate(REGRESSIONS):
        pool = np.arange(n) if where == "all" else np.flatnonzero(setup.masks[where])
        runs = [regression_trial(setup, pool, flips, np.random.default_rng([seed, 2, index, trial]),
                                 seed=trial, resamples=resamples) for trial in range(trials)]
        at_limit = Counter(s for run in runs for s in run["slices_at_threshold"])
        failed_at_limit = Counter(s for run in runs for s in run["failed_at_threshold"])
        out[name] = {"flips": flips, "where": where, "pool": int(pool.size),
                     "drop_pts": round(100 * flips / pool.size, 2), "overall_drop_pts": round(100 * flips / n, 2),
                     **{kind: {v: rates([run[kind][v] for run in runs]) for v in runs[0][kind]}
                        for kind in ("fixed", "resampled")},
                     "slice_drop_at_threshold": {s: c / trials for s, c in at_limit.items()},
                     "slice_drop_at_threshold_failed": {s: failed_at_limit[s] / c for s, c in at_limit.items()}}
        print(f"  {name}: detection {out[name]['fixed']['default']['fail_rate']:.1%} (fixed), "
              f"{out[name]['resampled']['default']['fail_rate']:.1%} (resampled)", file=sys.stderr)
    return out


def regression_trial(setup: Setup, pool: np.ndarray, flips: int, rng: np.random.Generator, *, seed: int,
                     resamples: int) -> dict:
    """One injected candidate, gated on the 2,000 tweets and on one bootstrap resample of them."""
    from textgate.gate import Thresholds

    variants = {"default": Thresholds(), "require_significance": Thresholds(require_significance=True)}
    ds, baseline, n = setup.dataset, setup.predictions, len(setup.dataset)
    candidate = inject(baseline, ds.labels, pool, flips, rng)
    fixed = gate(ds, baseline, candidate, setup.masks, setup.slices, seed=seed, resamples=resamples,
                 variants=variants)
    rows = rng.integers(0, n, size=n)
    dataset, (base_r, cand_r) = take_rows(ds, [baseline, candidate], rows)
    resampled = gate(dataset, base_r, cand_r, {k: m[rows] for k, m in setup.masks.items()}, setup.slices,
                     seed=seed, resamples=resamples, variants=variants)
    at_limit = at_threshold(baseline, candidate, ds.labels, setup.masks, Thresholds().max_slice_accuracy_drop)
    return {"fixed": fixed["failed"], "resampled": resampled["failed"], "slices_at_threshold": at_limit,
            "failed_at_threshold": [s for s in at_limit if f"slice accuracy ({s})" in fixed["failed"]["default"]]}


def at_threshold(baseline, candidate, labels: np.ndarray, masks: dict, threshold: float) -> list[str]:
    """Slices whose accuracy drop equals ``threshold`` exactly, counted in whole examples."""
    limit = Fraction(str(threshold))
    return [name for name, m in masks.items()
            if Fraction(int(np.sum(baseline.predicted[m] == labels[m]) - np.sum(candidate.predicted[m] == labels[m])),
                        int(m.sum())) == limit]


# --- (iii) cache ------------------------------------------------------------------------------


def cache_speedup(repeats: int) -> dict:
    """Wall time of the CLI gate with an empty cache, then the same command again (median): with
    --no-latency (predictions from the cache, nothing run) and as is (both models are still
    loaded and timed on a sample: latency is never taken from the cache, issue 11)."""
    gate_file = DEMO / "gate-bf16.toml"
    cache_dir = Path(tempfile.mkdtemp(prefix="textgate-bench-cache-"))
    command = [str(REPO / ".venv" / "bin" / "textgate"), "gate", str(gate_file.relative_to(REPO)),
               "--cache-dir", str(cache_dir), "--format", "json", "--no-progress"]
    try:
        cold, cold_report = timed(command)
        warm = [timed([*command, "--no-latency"]) for _ in range(repeats)]
        timed_warm = [timed(command) for _ in range(repeats)]
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    if cold_report["baseline"]["cached"] or not all(r["baseline"]["cached"] and r["candidate"]["cached"]
                                                    for _, r in warm + timed_warm):
        raise RuntimeError("expected a cache miss on the cold run and hits on every warm run")
    warm_s = statistics.median(s for s, _ in warm)
    timed_s = statistics.median(s for s, _ in timed_warm)
    return {"command": " ".join(["textgate", *command[1:4], "<fresh tmp dir>", *command[5:]]),
            "cold_s": round(cold, 2), "warm_s": round(warm_s, 3), "warm_runs_s": [round(s, 3) for s, _ in warm],
            "speedup": round(cold / warm_s, 1), "timed_warm_s": round(timed_s, 3),
            "timed_speedup": round(cold / timed_s, 1), "verdict": cold_report["verdict"]}


def timed(command: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1 = gate failed, still a timed run
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per bootstrap A/A and regression test")
    parser.add_argument("--batch-order-trials", type=int, default=10, help="A/A model runs (two per trial)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per simulated gate")
    parser.add_argument("--warm-repeats", type=int, default=5, help="warm (cached) gate runs, median taken")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from textgate.gate import Thresholds
    from textgate.gate.config import GateSettings

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started, clock, load_before = time.perf_counter(), {}, os.getloadavg()[0]
    step = functools.partial(timed_step, clock)
    cache = step("cache", "(iii) cache: cold and warm CLI gate runs", lambda: cache_speedup(args.warm_repeats))
    setup = step("setup", "loading the demo classifier twice, baseline predictions", lambda: load_setup(args.seed))
    aa_boot = step("aa_bootstrap", f"(i-a) A/A bootstrap, {args.trials} trials",
                   lambda: aa_bootstrap(setup, args.trials, args.seed, args.resamples))
    aa_order = step("aa_batch_order", f"(i-b) A/A batch orders, {args.batch_order_trials} trials",
                    lambda: aa_batch_order(setup, args.batch_order_trials, args.seed))
    injected = step("regressions", f"(ii) injected regressions, {args.trials} trials each",
                    lambda: regressions(setup, args.trials, args.seed, args.resamples))

    ds, masks = setup.dataset, setup.masks
    result = {
        "date": dt.date.today().isoformat(),
        "machine": machine_line(),
        "data": {"examples": len(ds), "baseline_accuracy": float(np.mean(setup.predictions.predicted == ds.labels)),
                 "slice_sizes": {name: int(m.sum()) for name, m in masks.items()}},
        "thresholds": Thresholds().model_dump(),
        "settings": {"trials": args.trials, "batch_order_trials": args.batch_order_trials,
                     "resamples_simulated": args.resamples,
                     "resamples_batch_order": GateSettings().bootstrap_resamples, "seed": args.seed},
        "aa_bootstrap": aa_boot,
        "aa_batch_order": aa_order,
        "regressions": injected,
        "cache": cache,
        "seconds": round(time.perf_counter() - started, 1),
        "section_seconds": clock,
        # Other processes distort every timing here (cold gate run, p99 checks): say how busy it was.
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
    }
    result["verdict"] = verdict(result)
    print(json.dumps(result, indent=2))
    if args.write:
        write_section(result, " ".join([".venv/bin/python", "benchmarks/gate_calibration.py", *sys.argv[1:]]))


def timed_step(clock: dict, name: str, message: str, run):
    """run(), with its wall time recorded in clock[name] and ``message`` on stderr."""
    print(message, file=sys.stderr)
    began = time.perf_counter()
    value = run()
    clock[name] = round(time.perf_counter() - began, 1)
    return value


def verdict(r: dict) -> dict[str, bool]:
    reg = r["regressions"]
    checks = {
        "A/A bootstrap false fails <= 5%": r["aa_bootstrap"]["fail_rate"] <= TARGETS["false_fail_rate"],
        "A/A batch-order false fails <= 5%": r["aa_batch_order"]["fail_rate"] <= TARGETS["false_fail_rate"],
        "3-pt drop detected >= 90%": reg["overall_3pt"]["fixed"]["default"]["fail_rate"] >= TARGETS["detection_rate"],
        "3-pt drop detected >= 90% (resampled)":
            reg["overall_3pt"]["resampled"]["default"]["fail_rate"] >= TARGETS["detection_rate"],
        "10-pt slice drop detected >= 90%":
            reg["slice_10pt"]["fixed"]["default"]["fail_rate"] >= TARGETS["detection_rate"],
        "10-pt slice drop detected >= 90% (resampled)":
            reg["slice_10pt"]["resampled"]["default"]["fail_rate"] >= TARGETS["detection_rate"],
        "cache re-run >= 20x faster": r["cache"]["speedup"] >= TARGETS["cache_speedup"],
    }
    return {name: bool(ok) for name, ok in checks.items()}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rate(x: dict) -> str:
    low, high = x["fail_rate_ci95"]
    return f"{_pct(x['fail_rate'])} (95% CI {_pct(low)}-{_pct(high)})"


def _checks(failed: dict) -> str:
    return ", ".join(f"{name} {_pct(rate)}" for name, rate in failed.items()) or "none"


def write_section(r: dict, command: str) -> None:
    lines = [MARK_START, *section_header(r, command), "", "| figure | value | target | |", "|---|---|---|---|",
             *section_rows(r), "", *section_notes(r), MARK_END]
    replace_section(lines, start=MARK_START, end=MARK_END, heading=SECTION_HEADING)


def section_header(r: dict, command: str) -> list[str]:
    s, settings = r["data"]["slice_sizes"], r["settings"]
    return [
        (f"Measured {r['date']} on {r['machine']}; {r['data']['examples']:,} validation tweets, demo "
         f"classifier (float32, accuracy {_pct(r['data']['baseline_accuracy'])}), default thresholds "
         f"(`Thresholds()`), slices slang ({s['slang']} tweets) and a fixed random {DOMAIN_SLICE} "
         f"({s[DOMAIN_SLICE]}). {settings['trials']} trials per simulated figure "
         f"({settings['resamples_simulated']} bootstrap resamples each), {settings['batch_order_trials']} "
         f"batch-order A/A runs ({settings['resamples_batch_order']} resamples, the gate's default). "
         f"Whole run: {r['seconds']:.0f} s; 1-minute load average {r['load_average_1min']['start']:.1f} at the "
         f"start, {r['load_average_1min']['end']:.1f} at the end, this run included."),
        "",
        f"Command: `{command}`",
    ]


def section_rows(r: dict) -> list[str]:
    v, boot, order, cache = r["verdict"], r["aa_bootstrap"], r["aa_batch_order"], r["cache"]
    budgets = ", ".join(str(b) for b in order["token_budgets"])
    return [
        (f"| (i) A/A false fails: identical predictions, bootstrap-resampled data | {_rate(boot)} "
         f"| <= 5% | {_met(v['A/A bootstrap false fails <= 5%'])} |"),
        (f"| (i) A/A false fails: the model run twice, interleaved, each side in its own row order "
         f"(token budgets {budgets}) | {_rate(order)}; failed: {_checks(order['failed_checks'])} "
         f"| <= 5% | {_met(v['A/A batch-order false fails <= 5%'])} |"),
        *regression_rows(r["regressions"], v),
        (f"| (iii) gate re-run from cache with `--no-latency`: cold {cache['cold_s']:.1f} s, warm "
         f"{cache['warm_s']:.2f} s (median of {len(cache['warm_runs_s'])}, process start included) | "
         f"{cache['speedup']:.0f}x | >= 20x | {_met(v['cache re-run >= 20x faster'])} |"),
        (f"| (iii) the same re-run as is: predictions from the cache, both models loaded and timed on "
         f"128 texts in the run (issue 11), warm {cache['timed_warm_s']:.2f} s | {cache['timed_speedup']:.1f}x "
         "| - | (information) |"),
    ]


def regression_rows(reg: dict, v: dict) -> list[str]:
    labels = {"overall_3pt": ("(ii) detection, 3-pt drop overall (60 flips)", "3-pt drop detected >= 90%"),
              "slice_10pt": (f"(ii) detection, 10-pt drop in {DOMAIN_SLICE} (20 flips, 1 pt overall)",
                             "10-pt slice drop detected >= 90%"),
              "overall_1pt": ("(ii) fail rate, 1-pt drop overall (20 flips, below the 2-pt threshold)", None)}
    rows = []
    for name, (label, key) in labels.items():
        for kind, where in (("fixed", "on the 2,000 tweets"), ("resampled", "on bootstrap resamples")):
            x = reg[name][kind]
            verdict_key = key if kind == "fixed" else f"{key} (resampled)"
            status = _met(v[verdict_key]) if verdict_key in v else "(information)"
            rows.append(f"| {label}, {where} | {_rate(x['default'])}; "
                        f"{_pct(x['require_significance']['fail_rate'])} with require_significance; "
                        f"failed: {_checks(x['default']['failed_checks'])} | {'>= 90%' if key else '-'} "
                        f"| {status} |")
    return rows


def section_notes(r: dict) -> list[str]:
    order, reg, sizes = r["aa_batch_order"], r["regressions"], r["data"]["slice_sizes"]
    low = reg["overall_1pt"]["resampled"]["default"]
    limit = 100 * r["thresholds"]["max_slice_accuracy_drop"]
    at_limit = reg["overall_3pt"]["slice_drop_at_threshold"].get(DOMAIN_SLICE, 0.0)
    failed_at_limit = reg["overall_3pt"]["slice_drop_at_threshold_failed"].get(DOMAIN_SLICE, 0.0)
    return [
        (f"Batch-order A/A, worst of {order['trials']} runs: flip rate {_pct(order['max_flip_rate'])}, "
         f"accuracy delta {order['max_abs_accuracy_delta_pts']:.2f} pts, largest probability difference "
         f"{order['max_abs_prob_diff']:.1e}, ECE delta {order['max_abs_ece_delta']:.1e} (the latency check "
         "is measured by benchmarks/latency_check.py). "
         f"{order['trials']} runs bound the false-fail rate only to the "
         f"interval shown; more runs (`--batch-order-trials`) narrow it, at about "
         f"{r['section_seconds']['aa_batch_order'] / order['trials']:.0f} s each."),
        "",
        ("Reading the numbers: with identical predictions on both sides every delta, flip and latency ratio is "
         "exactly zero, so the bootstrap A/A cannot fail by construction; it only shows that resampling the "
         "data never trips a check by itself. The batch-order A/A is the real one: two runs of the same model "
         "differ in numerics only at float32 rounding level, so what could fail it is a numeric check "
         "tripped by rounding. On the 2,000 tweets themselves an injected drop is exact and "
         "the thresholds are point estimates, so a drop above a threshold, overall or in a slice, fails every "
         "time and one below it passes; the bootstrap-resampled rows let the observed drop vary as on a fresh "
         f"test set. There the 1-point drop still failed {_pct(low['fail_rate'])} of trials (failed: "
         f"{_checks(low['failed_checks'])}): small slices move by whole examples, one flip in the "
         f"{sizes['slang']}-tweet slang slice being {100 / sizes['slang']:.1f} points. In {_pct(at_limit)} of "
         f"the 3-point trials on the 2,000 tweets {DOMAIN_SLICE} dropped by exactly {limit:g} points, which "
         f"the rule `drop <= {limit:g} pts` allows; the gate failed it in {_pct(failed_at_limit)} of "
         "those (the checks compare with a 1e-9 tolerance, so float rounding of a difference of two "
         "accuracies cannot turn an exact-threshold drop into a failure)."),
    ]


def _met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


if __name__ == "__main__":
    main()
