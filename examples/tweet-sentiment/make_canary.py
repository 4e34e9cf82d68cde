"""Select textgate's bundled canary set from the TweetEval val split (run once; output committed).

    python examples/tweet-sentiment/make_canary.py

Writes src/textgate/lock/canary.jsonl: 200 val tweets, `{"text", "label", "trait"}`, chosen
without randomness that depends on the machine (a fixed seed and sorted inputs). The set is
stratified by trait, so the posts that tokenizers and truncation treat differently are all
represented, and within each trait round-robin over the three labels (negative is only 16% of
val, so proportional sampling would leave few negatives in the small traits):

    url 5 (every val tweet with a link), long 20 (the longest), slang 30, elongated 20,
    html_entity 25, escaped_unicode 25, mention 30, hashtag 20, plain 25.

Val has no raw emoji (TweetEval publishes them escaped or stripped); emoji and other scripts
are covered by textgate.lock's tokenizer probes instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "src" / "textgate" / "lock" / "canary.jsonl"
LABELS = ("negative", "neutral", "positive")
SEED = 20260601
# (trait, how many, test); earlier traits win when a tweet has several.
TRAITS = (
    ("url", 5, re.compile(r"https?://|www\.", re.IGNORECASE).search),
    ("long", 20, None),  # the longest remaining tweets
    ("slang", 30, re.compile(r"\b(omg|lol|lmao|ngl|smh|tbh|fire|sucks|meh|af|idk|wtf)\b", re.IGNORECASE).search),
    ("elongated", 20, re.compile(r"([a-z])\1{2,}", re.IGNORECASE).search),
    ("html_entity", 25, re.compile(r"&\w+;").search),
    ("escaped_unicode", 25, re.compile(r"\\u[0-9a-fA-F]{4}").search),
    ("mention", 30, re.compile(r"@\w+").search),
    ("hashtag", 20, re.compile(r"#\w+").search),
    ("plain", 25, lambda text: True),
)


def select(rows: list[dict]) -> list[dict]:
    rng = np.random.default_rng(SEED)
    taken: set[int] = set()
    chosen = []
    for trait, quota, test in TRAITS:
        free = [i for i in range(len(rows)) if i not in taken]
        if test is None:
            candidates = sorted(free, key=lambda i: (-len(rows[i]["text"]), i))[:quota]
        else:
            matching = [i for i in free if test(rows[i]["text"])]
            by_label = {label: [i for i in matching if rows[i]["label"] == label] for label in LABELS}
            for label in LABELS:
                rng.shuffle(by_label[label])
            candidates = []
            while len(candidates) < quota and any(by_label.values()):
                for label in LABELS:  # round-robin over labels
                    if by_label[label] and len(candidates) < quota:
                        candidates.append(by_label[label].pop())
        for i in candidates:
            taken.add(i)
            chosen.append({"text": rows[i]["text"], "label": rows[i]["label"], "trait": trait})
    return chosen


def main() -> None:
    rows = [json.loads(line) for line in (HERE / "val.jsonl").read_text(encoding="utf-8").splitlines()]
    chosen = select(rows)
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in chosen), encoding="utf-8")
    print(f"wrote {len(chosen)} canary posts to {OUT}")


if __name__ == "__main__":
    main()
