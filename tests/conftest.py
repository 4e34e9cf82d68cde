"""Shared fixtures: tiny random BERT classifiers built in memory and saved to tmp folders
(no download), and the bundled demo classifier for the slow integration tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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


# --- the prediction log on each backend (tests/test_store.py, tests/test_log.py) ---------------

POSTGRES_URL = os.environ.get("TEXTGATE_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL,
            reason="TEXTGATE_TEST_POSTGRES_URL is not set "
            "(export it from `scripts/start_postgres.sh` to run the PostgreSQL store tests)",
        ),
    ),
]


def _with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty prediction log on each backend: a SQLite file, and a PostgreSQL schema
    of its own (dropped afterwards), so runs and parallel sessions never see each other's rows."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log' / 'predictions.db'}"
        return
    assert POSTGRES_URL
    schema = f"test_{uuid.uuid4().hex[:12]}"
    sa = pytest.importorskip("sqlalchemy")
    admin = sa.create_engine(sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
