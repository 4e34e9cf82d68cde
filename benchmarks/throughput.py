"""Throughput of textgate's engine vs transformers.pipeline, side by side in one run.

    .venv/bin/python benchmarks/throughput.py [--limit N] [--write]

On the bundled TweetEval sentiment test set (12,284 tweets) and the demo classifier:
  * transformers.pipeline("text-classification", batch_size=32): the baseline;
  * textgate's engine in float32 and in bfloat16 (autocast);
  * this machine's GEMM peak, measured in the same run with large matmuls.
Reports texts/s, the ratio to the pipeline, argmax agreement and the largest probability
difference against the pipeline, and the fraction of fp32 GEMM peak that the fp32 engine
reaches (FLOPs counted over the padded batches it actually ran, attention included).
--write replaces the throughput section of BENCHMARKS.md with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_line
from markdown_section import replace_section

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "tweet-sentiment"
TARGETS = {"fp32_speedup": 1.6, "fp32_peak_fraction": 0.80, "bf16_speedup": 3.0, "bf16_agreement": 0.995}
MARK_START, MARK_END = "<!-- throughput:start -->", "<!-- throughput:end -->"


def gemm_peak_gflops(dtype: torch.dtype, size: int = 2048, seconds: float = 3.0) -> float:
    """Best sustained GFLOP/s of a square matmul over several repeats."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def engine_flops(predictions, config) -> tuple[float, float]:
    """(executed, useful) FLOPs of the encoder: padded batches vs real tokens only."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * layers * (4 * h * h + 2 * h * i)
    lengths = predictions.token_counts
    order = np.argsort(-lengths, kind="stable")
    executed, start = 0.0, 0
    for size in predictions.batch_sizes:
        width = int(lengths[order[start]])
        executed += size * width * per_token + 2 * 2 * layers * size * width * width * h
        start += size
    useful = float(np.sum(lengths * per_token + 2 * 2 * layers * lengths.astype(np.float64) ** 2 * h))
    return executed, useful


def run_pipeline(classifier, texts: list[str]) -> tuple[np.ndarray, float]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=classifier.model, tokenizer=classifier.tokenizer,
                    top_k=None, device="cpu")
    kwargs = dict(batch_size=32, truncation=True, max_length=classifier.max_length)
    pipe(texts[:64], **kwargs)  # warm-up
    started = time.perf_counter()
    outputs = pipe(texts, **kwargs)
    seconds = time.perf_counter() - started
    names = classifier.label_names
    return np.array([[{d["label"]: d["score"] for d in o}[n] for n in names] for o in outputs]), seconds


def run_engine(classifier, texts: list[str], token_budget: int):
    from textgate.infer import predict

    predict(classifier, texts[:256], token_budget=token_budget, progress=False)  # warm-up
    started = time.perf_counter()
    predictions = predict(classifier, texts, token_budget=token_budget, progress=False)
    return predictions, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="use the first N test tweets only")
    parser.add_argument("--token-budget", type=int, default=None)
    parser.add_argument("--model", type=Path, default=DEMO / "model.toml", help="ModelSpec file")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from textgate.data import read_dataset
    from textgate.infer import DEFAULT_TOKEN_BUDGET
    from textgate.model import load_classifier, load_model_spec

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    budget = args.token_budget or DEFAULT_TOKEN_BUDGET
    texts = list(read_dataset(DEMO / "test.jsonl").texts)
    texts = texts[: args.limit] if args.limit else texts
    spec = load_model_spec(args.model)
    fp32 = load_classifier(spec)
    bf16 = load_classifier(spec.model_copy(update={"dtype": "bfloat16"}))

    print(f"{len(texts):,} texts, {torch.get_num_threads()} threads, token budget {budget}", file=sys.stderr)
    peak32 = gemm_peak_gflops(torch.float32)
    peak16 = gemm_peak_gflops(torch.bfloat16)
    reference, pipe_s = run_pipeline(fp32, texts)
    engine32, eng32_s = run_engine(fp32, texts, budget)
    engine16, eng16_s = run_engine(bf16, texts, budget)
    executed, useful = engine_flops(engine32, fp32.model.config)

    pipe_rate = len(texts) / pipe_s
    result = {
        "date": dt.date.today().isoformat(),
        "machine": machine_line(),
        "texts": len(texts),
        "token_budget": budget,
        "gemm_peak_gflops": {"float32": round(peak32, 1), "bfloat16": round(peak16, 1)},
        "pipeline": {"texts_per_s": round(pipe_rate, 1), "seconds": round(pipe_s, 2)},
    }
    for name, predictions, seconds in (("float32", engine32, eng32_s), ("bfloat16", engine16, eng16_s)):
        result[name] = {
            "texts_per_s": round(len(texts) / seconds, 1),
            "seconds": round(seconds, 2),
            "speedup_vs_pipeline": round(pipe_s / seconds, 3),
            "argmax_agreement": float(np.mean(predictions.probabilities.argmax(1) == reference.argmax(1))),
            "max_abs_prob_diff": float(np.abs(predictions.probabilities - reference).max()),
        }
    result["float32"]["gflops_executed"] = round(executed / eng32_s / 1e9, 1)
    result["float32"]["peak_fraction"] = round(executed / eng32_s / 1e9 / peak32, 3)
    result["float32"]["peak_fraction_useful_tokens"] = round(useful / eng32_s / 1e9 / peak32, 3)
    result["bfloat16"]["peak_fraction_bf16"] = round(
        engine_flops(engine16, fp32.model.config)[0] / eng16_s / 1e9 / peak16, 3)
    result["verdict"] = verdict(result)
    print(json.dumps(result, indent=2))
    if args.write:
        write_section(result, " ".join([".venv/bin/python", "benchmarks/throughput.py", *sys.argv[1:]]))


def verdict(r: dict) -> dict[str, bool]:
    checks = {
        "fp32 >= 1.6x pipeline": r["float32"]["speedup_vs_pipeline"] >= TARGETS["fp32_speedup"],
        "fp32 100% argmax agreement": r["float32"]["argmax_agreement"] == 1.0,
        "fp32 >= 80% of GEMM peak": r["float32"]["peak_fraction"] >= TARGETS["fp32_peak_fraction"],
        "bf16 >= 3x pipeline": r["bfloat16"]["speedup_vs_pipeline"] >= TARGETS["bf16_speedup"],
        "bf16 >= 99.5% agreement": r["bfloat16"]["argmax_agreement"] >= TARGETS["bf16_agreement"],
    }
    return {name: bool(ok) for name, ok in checks.items()}


def write_section(r: dict, command: str) -> None:
    f32, b16, pipe = r["float32"], r["bfloat16"], r["pipeline"]
    lines = [
        MARK_START,
        f"Measured {r['date']} on {r['machine']}; {r['texts']:,} TweetEval sentiment test tweets, demo "
        f"classifier (MiniLM-L6 + LoRA, max_length 128), token budget {r['token_budget']}.",
        "",
        f"Command: `{command}` (part of `make bench`)",
        "",
        "| run | texts/s | vs pipeline | argmax agreement | max abs prob diff | GEMM peak used |",
        "|---|---|---|---|---|---|",
        f"| `transformers.pipeline`, batch 32, fp32 | {pipe['texts_per_s']:,.1f} | 1.00x | (reference) | - | - |",
        f"| textgate engine, float32 | {f32['texts_per_s']:,.1f} | {f32['speedup_vs_pipeline']:.2f}x | "
        f"{100 * f32['argmax_agreement']:.2f}% | {f32['max_abs_prob_diff']:.1e} | "
        f"{100 * f32['peak_fraction']:.0f}% of fp32 ({f32['gflops_executed']} of "
        f"{r['gemm_peak_gflops']['float32']} GFLOP/s) |",
        f"| textgate engine, bfloat16 autocast | {b16['texts_per_s']:,.1f} | {b16['speedup_vs_pipeline']:.2f}x | "
        f"{100 * b16['argmax_agreement']:.2f}% | {b16['max_abs_prob_diff']:.1e} | "
        f"{100 * b16['peak_fraction_bf16']:.0f}% of bf16 ({r['gemm_peak_gflops']['bfloat16']} GFLOP/s) |",
        "",
        "Targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in r["verdict"].items()) + ".",
        "",
        f"fp32 GEMM peak use counting only real (unpadded) tokens: {100 * f32['peak_fraction_useful_tokens']:.0f}%.",
        MARK_END,
    ]
    replace_section(lines, start=MARK_START, end=MARK_END, heading="## Throughput")


if __name__ == "__main__":
    main()
