"""Shared fixtures: tiny random BERT classifiers built in memory and saved to tmp folders
(no download), and the bundled demo classifier for the slow integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test must never reach the Hub

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "tweet-sentiment"
LABELS = ("negative", "neutral", "positive")
WORDS = (
    "i love hate this that movie film good bad great awful ok okay the a is was not very so "
    "lol omg meh sucks fire tbh today tomorrow game phone new old happy sad day night"
).split()


def write_tiny_classifier(folder: Path, *, labels=LABELS, seed: int = 0, hidden: int = 32) -> Path:
    """Save a random 2-layer BERT sequence classifier with a WordPiece tokenizer to ``folder``."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz!?.,'#@"]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 ignores vocab_file here (an empty vocabulary: every word [UNK]); pass the vocab itself.
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
        initializer_range=0.5,  # spread-out outputs, so argmax comparisons are not coin flips
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return write_tiny_classifier(tmp_path_factory.mktemp("tiny") / "model")


def write_nan_classifier(folder: Path) -> Path:
    """The tiny classifier with a NaN classifier bias: every logit is NaN (a broken export)."""
    from safetensors.torch import load_file, save_file

    write_tiny_classifier(folder)
    weights = load_file(folder / "model.safetensors")
    weights["classifier.bias"] = weights["classifier.bias"] * float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="session")
def nan_model_dir(tmp_path_factory) -> Path:
    """A tiny classifier whose logits are all NaN (read-only: do not change it)."""
    return write_nan_classifier(tmp_path_factory.mktemp("nan") / "model")


@pytest.fixture
def tiny_model_copy(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny model that a test may damage."""
    import shutil

    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


@pytest.fixture(scope="session")
def demo_spec_path() -> Path:
    path = DEMO / "model.toml"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run examples/tweet-sentiment/train_adapter.py")
    return path


@pytest.fixture(scope="session")
def demo_classifier(demo_spec_path):
    """The demo classifier, loaded once per test run (tests must not change it)."""
    from textgate.model import load_classifier, load_model_spec

    return load_classifier(load_model_spec(demo_spec_path))


@pytest.fixture(scope="session")
def demo_gate_cache(tmp_path_factory) -> Path:
    """One prediction cache for every demo gate in a test run: each model side runs once."""
    return tmp_path_factory.mktemp("demo-gate-cache")
