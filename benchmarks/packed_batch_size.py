"""Per-text cost of one serving worker's forward pass by micro-batch size.

    .venv/bin/python benchmarks/packed_batch_size.py [--texts 1536] [--repeats 3] [--write]

One torch thread (what each of the server's two workers gets on 2 cores), the demo classifier,
the padding-free forward (`textgate.infer.packed`) that `textgate serve` runs, the first --texts
bundled test tweets in file order (as traffic arrives, not length-sorted), cut into consecutive
batches of 1, 2, 4, 8, 16 and 32 texts, each size run over the same tweets in the same process,
the sizes interleaved in --repeats rounds; the median round counts.
It is why a free worker waits briefly for a fuller batch while the other one is busy
(`gather_ms`, `gather_texts` in serve.toml). --write replaces the packed-batch-size part of the
serving section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
SIZES = (1, 2, 4, 8, 16, 32)
MARK_START, MARK_END = "<!-- packed-batch-size:start -->", "<!-- packed-batch-size:end -->"


def measure(n_texts: int, repeats: int) -> dict:
    import torch

    from textgate.infer.batches import Batch, encode, run_batch
    from textgate.model import load_classifier, load_model_spec

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    torch.set_num_threads(1)
    classifier = load_classifier(load_model_spec(DEMO / "model.toml"))
    texts = [json.loads(line)["text"] for line in (DEMO / "test.jsonl").read_text().splitlines()[:n_texts]]
    encoded, lengths, _ = encode(classifier, texts)
    seconds: dict[int, list[float]] = {size: [] for size in SIZES}
    for round_ in range(repeats):
        for size in SIZES:
            started = time.perf_counter()
            for start in range(0, len(texts), size):
                batch = np.arange(start, min(start + size, len(texts)))
                run_batch(classifier, encoded, Batch(rows=batch, width=int(lengths[batch].max()), packed=True))
            seconds[size].append(time.perf_counter() - started)
        print(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{size}: {seconds[size][-1]:.1f} s" for size in SIZES),
              file=sys.stderr)
    rows = [{"batch": size, "ms_per_text": round(1000 * statistics.median(seconds[size]) / len(texts), 2),
             "texts_per_s": round(len(texts) / statistics.median(seconds[size]), 1)} for size in SIZES]
    return {"date": dt.date.today().isoformat(), "machine": machine_line(), "texts": len(texts), "repeats": repeats, "rows": rows}


def write_section(result: dict, command: str) -> None:
    base = result["rows"][-1]["ms_per_text"]
    lines = [MARK_START, f"Per-text cost of one worker's padding-free pass by batch size, measured {result['date']} on "
             f"{result['machine']}: 1 torch thread, demo classifier, the first {result['texts']:,} test tweets in file order, median of "
             f"{result['repeats']} interleaved rounds.", "",
             f"Command: `{command}`", "", "| texts per pass | ms per text | texts/s | vs 32 per pass |", "|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['ms_per_text']} | {r['texts_per_s']} | {r['ms_per_text'] / base:.2f}x |"
              for r in result["rows"]]
    lines.append(MARK_END)
    replace_section(lines, start=MARK_START, end=MARK_END, heading="## Serving load (issue 4)",
                    after="<!-- serve-load:end -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    result = measure(args.texts, args.repeats)
    print(json.dumps(result, indent=2))
    if args.write:
        write_section(result, " ".join([".venv/bin/python", "benchmarks/packed_batch_size.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
