"""Copy TweetEval sentiment val/test and a leak-free SemEval training pool into this folder.

Run once by a maintainer (the outputs are committed; nothing reads ../shared at run time):

    python examples/tweet-sentiment/prepare_data.py --shared ../shared/data

Writes, next to this script:
  val.jsonl, test.jsonl   TweetEval sentiment (Barbieri et al., 2020), texts unchanged,
                          labels as names (0 negative, 1 neutral, 2 positive).
  train.jsonl.gz          the SemEval 2013-2016 Task 4A tweet pool (Rosenthal et al., 2017)
                          minus every tweet whose normalized text occurs in TweetEval
                          sentiment val or test. The pool holds the val tweets and the test
                          set's sources, so without this filter scores are inflated.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABEL_NAMES = ["negative", "neutral", "positive"]
PREFIX = 40  # normalized characters; long enough that unrelated tweets do not collide

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Aggressive key for duplicate detection: escapes decoded, URLs and mentions removed,
    only lowercase letters and digits kept (TweetEval masks mentions and drops some URLs)."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = html.unescape(text).lower()
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    return _NOT_ALNUM.sub("", text)


def _leaks(key: str, held_out: set[str], held_out_prefixes: set[str]) -> bool:
    return not key or key in held_out or key[:PREFIX] in held_out_prefixes


def read_tweeteval(folder: Path, split: str) -> list[dict]:
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")
    labels = (folder / f"{split}_labels.txt").read_text(encoding="utf-8").split()
    texts = texts[: len(labels)]
    assert len(texts) == len(labels), (split, len(texts), len(labels))
    return [{"text": t, "label": LABEL_NAMES[int(y)]} for t, y in zip(texts, labels)]


def read_semeval_pool(folder: Path) -> list[dict]:
    rows, seen = [], set()
    for path in sorted(folder.glob("*.tsv")):
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[1] not in LABEL_NAMES or parts[0] in seen:
                continue
            seen.add(parts[0])
            text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), parts[2]).strip()
            if text.startswith('"') and text.endswith('"'):
                text = text[1:-1]
            rows.append({"text": text, "label": parts[1], "source": path.stem})
    return rows


def write_jsonl(path: Path, rows: list[dict], *, compress: bool = False) -> None:
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[2] / "shared" / "data")
    args = parser.parse_args()

    sentiment = args.shared / "tweeteval" / "sentiment"
    val, test = read_tweeteval(sentiment, "val"), read_tweeteval(sentiment, "test")
    held_out = {normalize(r["text"]) for r in val + test}
    # TweetEval fixed some cropped tweets, so a shared long prefix also counts as the same tweet.
    held_out_prefixes = {key[:PREFIX] for key in held_out if len(key) >= PREFIX}
    pool = read_semeval_pool(args.shared / "semeval2017-task4a")
    train = [r for r in pool if not _leaks(normalize(r["text"]), held_out, held_out_prefixes)]
    # Drop duplicate tweets inside the pool too (retweets, re-crawls).
    unique, keys = [], set()
    for row in train:
        key = normalize(row["text"])
        if key not in keys:
            keys.add(key)
            unique.append(row)

    write_jsonl(HERE / "val.jsonl", val)
    write_jsonl(HERE / "test.jsonl", test)
    write_jsonl(HERE / "train.jsonl.gz", unique, compress=True)
    print(f"val {len(val)}, test {len(test)}; pool {len(pool)} -> {len(train)} after removing "
          f"TweetEval val/test overlap -> {len(unique)} unique")


if __name__ == "__main__":
    main()
