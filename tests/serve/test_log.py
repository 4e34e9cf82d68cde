"""The prediction log as a dataset: schema migration, `textgate log export` and `textgate log
sample` (``textgate.serve.window``, ``.sample``, ``cli/log.py``), on SQLite always and on
PostgreSQL when ``TEXTGATE_TEST_POSTGRES_URL`` is set (the ``log_url`` fixture of conftest.py),
and end to end: serve with a shadow, export the window, evaluate it, sample it, label it."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS

sa = pytest.importorskip("sqlalchemy")

from textgate._internal.hashing import text_hash
from textgate.cli import EXIT_OK, EXIT_USAGE, main
from textgate.errors import ConfigError, DataError
from textgate.predictions import load_predictions, texts_fingerprint
from textgate.serve.sample import STRATEGIES, sample_window, write_labeling_batch
from textgate.serve.store import LOG_SCHEMA_VERSION, LoggedModel, LogRecord, open_store
from textgate.serve.window import parse_time, read_window, window_predictions

KEY = b"k" * 32
PRIMARY = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
SHADOW = "sha256:" + "c" * 64
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def scores_for(i: int) -> dict[str, float]:
    """Probabilities that differ by row, with a top probability that rises with i % 5."""
    top = 0.4 + 0.1 * (i % 5)
    rest = (1 - top) / 2
    labels = [LABELS[i % 3], LABELS[(i + 1) % 3], LABELS[(i + 2) % 3]]
    return {labels[0]: top, labels[1]: rest, labels[2]: rest}


def served(i: int, *, model: str = PRIMARY, shadow: bool = False, text: bool = True, **changes) -> LogRecord:
    """Row i of a made-up log: request r{i // 2:03d}, item i % 2, served at T0 + 60 i."""
    scores = scores_for(i)
    label = max(scores, key=scores.get)
    shadow_scores = scores_for(i + 1)  # disagrees with the primary on every row
    fields = {
        "time": T0 + 60 * (i // 2), "request_id": f"r{i // 2:03d}", "item": i % 2, "model_fingerprint": model,
        "model_label": label, "label": label, "score": scores[label], "scores": scores,
        "status": "ok" if i % 4 else "needs_review", "reasons": () if i % 4 else ("low_confidence",),
        "text_sha256": text_hash(f"text number {i}", KEY), "text": f"text number {i}" if text else None,
        "tokens": 5 + i, "truncated": i == 3,
    }
    if shadow:
        fields |= {"shadow_label": max(shadow_scores, key=shadow_scores.get), "shadow_scores": shadow_scores,
                   "shadow_fingerprint": SHADOW, "shadow_tokens": 4 + i, "shadow_truncated": False}
    fields.update(changes)
    return LogRecord(**fields)


def fill(url: str, records: list[LogRecord], models=((PRIMARY,), (OTHER,), (SHADOW,))) -> None:
    with open_store(url) as store:
        for (fingerprint,) in models:
            store.register_model(LoggedModel(fingerprint, LABELS, "tiny", None), now=T0)
        store.write_many(records)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- schema migration ---------------------------------------------------------------------------


# The DDL textgate (store.py at cfd6ba8) ran to create a log before schema 2, for each dialect.
SCHEMA_1_DDL = """CREATE TABLE predictions (
    id {id} NOT NULL,
    time {double} NOT NULL,
    request_id TEXT NOT NULL,
    item INTEGER NOT NULL,
    model_fingerprint TEXT NOT NULL,
    model_label TEXT NOT NULL,
    label TEXT,
    score {double},
    scores TEXT,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    text_sha256 VARCHAR(64) NOT NULL,
    text TEXT,
    shadow_label TEXT,
    PRIMARY KEY (id)
)"""
SCHEMA_1_TYPES = {"sqlite": {"id": "INTEGER", "double": "DOUBLE"},
                  "postgresql": {"id": "BIGSERIAL", "double": "DOUBLE PRECISION"}}
SCHEMA_1_INDEX = "CREATE INDEX ix_predictions_request_id ON predictions (request_id)"
SCHEMA_1_COLUMNS = {"id", "time", "request_id", "item", "model_fingerprint", "model_label", "label", "score",
                    "scores", "status", "reasons", "text_sha256", "text", "shadow_label"}


def old_row(i: int) -> dict:
    scores = scores_for(i)
    label = max(scores, key=scores.get)
    return {"time": T0 + i, "request_id": f"old{i}", "item": 0, "model_fingerprint": PRIMARY, "model_label": label,
            "label": label, "score": scores[label], "scores": json.dumps(scores, sort_keys=True), "status": "ok",
            "reasons": "truncated" if i == 1 else "", "text_sha256": text_hash(f"old {i}", KEY), "text": None,
            "shadow_label": "neutral"}


def engine_for(url: str):
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(parsed)
    return sa.create_engine(parsed.set(drivername="postgresql+psycopg"))


def make_schema_1_log(url: str, rows: int = 3) -> None:
    engine = engine_for(url)
    columns = sorted(old_row(0))
    with engine.begin() as conn:
        conn.execute(sa.text(SCHEMA_1_DDL.format(**SCHEMA_1_TYPES[engine.dialect.name])))
        conn.execute(sa.text(SCHEMA_1_INDEX))
        conn.execute(sa.text(f"INSERT INTO predictions ({', '.join(columns)}) "
                             f"VALUES ({', '.join(':' + c for c in columns)})"), [old_row(i) for i in range(rows)])
    engine.dispose()


def tables_and_columns(url: str) -> tuple[set[str], set[str]]:
    engine = engine_for(url)
    inspector = sa.inspect(engine)
    result = set(inspector.get_table_names()), {c["name"] for c in inspector.get_columns("predictions")}
    engine.dispose()
    return result


def test_a_schema_1_log_is_read_unchanged_and_migrated_on_open(log_url: str):
    make_schema_1_log(log_url)
    # Reading changes nothing: no table, no column, no version is added.
    with open_store(log_url, create=False) as reader:
        assert reader.schema_version == 1
        old = reader.by_request("old1")
        assert reader.models() == {}
    assert tables_and_columns(log_url) == ({"predictions"}, SCHEMA_1_COLUMNS)
    assert old[0].scores == scores_for(1) and old[0].shadow_label == "neutral"
    assert (old[0].tokens, old[0].shadow_scores, old[0].descriptors) == (None, None, None)
    # Opening for writing migrates: old rows read as before, new rows carry the new columns.
    with open_store(log_url) as store:
        assert store.schema_version == 1  # the version it found
        assert store.by_request("old1") == old
        new = served(0, shadow=True, descriptors={"tokens": 7.0, "url_rate": 0.0})
        store.write_many([new])
        assert store.by_request("r000") == [new]
        assert store.count() == 4
    tables, columns = tables_and_columns(log_url)
    assert {"log_meta", "log_models"} <= tables
    assert {"tokens", "truncated", "shadow_fingerprint", "shadow_scores", "descriptors"} <= columns
    with open_store(log_url) as again:  # a second open finds the current version, adds nothing
        assert again.schema_version == LOG_SCHEMA_VERSION == 2
    with open_store(log_url, create=False) as reader:
        assert reader.schema_version == 2 and reader.by_request("r000") == [new]


def test_a_schema_1_log_exports_with_sorted_labels_and_truncation_from_the_reasons(log_url: str):
    make_schema_1_log(log_url)
    window = read_window(log_url)
    predictions = window_predictions(window)
    assert predictions.label_names == tuple(sorted(LABELS))
    assert predictions.token_counts is None  # not logged before schema 2
    assert list(predictions.truncated) == [False, True, False]
    assert list(predictions.text_sha256) == [text_hash(f"old {i}", KEY) for i in range(3)]
    assert "predates log_models" in predictions.settings["model"]["label_names_from"]
    with pytest.raises(DataError, match="logged before schema 2"):
        read_window(log_url, shadow=True)  # shadow labels only: no fingerprint, no probabilities


def test_a_log_of_a_newer_schema_is_refused(log_url: str):
    with open_store(log_url) as store:
        with store.engine.begin() as conn:
            conn.execute(store.meta_table.update().values(value="99"))
    for create in (True, False):
        with pytest.raises(ConfigError, match="schema version 99, newer than this textgate knows"):
            open_store(log_url, create=create)


def test_reading_a_missing_log_creates_nothing(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'nope' / 'predictions.db'}"
    with pytest.raises(ConfigError, match="does not exist"):
        open_store(url, create=False)
    assert not (tmp_path / "nope").exists()


# --- export -----------------------------------------------------------------------------------------


def test_export_round_trips_into_load_predictions(log_url: str, tmp_path: Path, capsys):
    records = [served(i) for i in range(8)]
    fill(log_url, records[::-1])  # written out of order: exported in served order
    key_file = tmp_path / "log.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    out = tmp_path / "window.parquet"
    code, stdout, _ = run(capsys, "log", "export", log_url, "--out", str(out), "--hash-key-file", str(key_file),
                          "--format", "json")
    assert code == EXIT_OK
    summary = json.loads(stdout)
    assert (summary["kind"], summary["rows"], summary["hash_key_checked_rows"]) == ("textgate.log_export", 8, 8)
    assert summary["first"] == "2026-01-01T00:00:00.000000Z"
    loaded = load_predictions(out)
    assert loaded.label_names == LABELS and loaded.model_fingerprint == PRIMARY
    assert list(loaded.text_sha256) == [text_hash(f"text number {i}", KEY) for i in range(8)]
    assert loaded.text_hash == {"algorithm": "hmac-sha256", "keyed": True}
    assert list(loaded.predicted) == [r.model_label for r in records]
    np.testing.assert_allclose(loaded.probabilities, [[scores_for(i)[name] for name in LABELS] for i in range(8)],
                               rtol=1e-6)
    assert list(loaded.token_counts) == [5 + i for i in range(8)]
    assert list(loaded.truncated) == [i == 3 for i in range(8)]
    assert loaded.data_fingerprint == texts_fingerprint([f"text number {i}" for i in range(8)])
    # A wrong key is caught where the log holds texts.
    key_file.write_bytes(b"w" * 32)
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out), "--hash-key-file", str(key_file))
    assert code == EXIT_USAGE and "not the one the log's text hashes were made with: 8 of 8" in err


def test_export_filters_by_time_and_model(log_url: str, tmp_path: Path, capsys):
    fill(log_url, [served(i) for i in range(6)] + [served(i, model=OTHER) for i in range(6, 10)])
    out = tmp_path / "w.parquet"
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out))
    assert code == EXIT_USAGE
    assert "The rows in the whole log of " in err
    assert f"mix 2 model fingerprints: {PRIMARY} (6 rows, tiny), {OTHER} (4 rows, tiny)" in err
    assert "--model FINGERPRINT" in err
    assert run(capsys, "log", "export", log_url, "--out", str(out), "--model", OTHER[:12])[0] == EXIT_OK
    assert len(load_predictions(out)) == 4
    # rows 2..5 of the primary: served at T0 + 60 .. T0 + 120 (requests r001, r002)
    code, _, _ = run(capsys, "log", "export", log_url, "--out", str(out), "--model", PRIMARY,
                     "--since", "2026-01-01T00:01:00Z", "--until", "2026-01-01T01:03:00+01:00")
    assert code == EXIT_OK
    assert list(load_predictions(out).text_sha256) == [text_hash(f"text number {i}", KEY) for i in range(2, 6)]
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out), "--model", "sha256:dddddddd")
    assert code == EXIT_USAGE and "names no model of the rows in the whole log" in err and "(6 rows, tiny)" in err
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out), "--since", "2027-01-01")
    assert code == EXIT_USAGE and "has no rows served from 2027-01-01T00:00:00.000000Z; " in err
    assert "it holds 10 rows served from 2026-01-01T00:00:00.000000Z" in err
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out), "--since", "yesterday")
    assert code == EXIT_USAGE and "'--since' must be an ISO 8601 time" in err


def test_export_of_the_shadow_holds_its_predictions_for_the_same_items(log_url: str, tmp_path: Path, capsys):
    fill(log_url, [served(i, shadow=i != 2) for i in range(5)])
    primary, shadow = tmp_path / "primary.parquet", tmp_path / "shadow.parquet"
    assert run(capsys, "log", "export", log_url, "--out", str(primary))[0] == EXIT_OK
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(shadow), "--shadow")
    assert code == EXIT_OK
    exported = load_predictions(shadow)
    assert exported.model_fingerprint == SHADOW and len(exported) == 4  # row 2: the shadow did not run
    assert list(exported.text_sha256) == [text_hash(f"text number {i}", KEY) for i in (0, 1, 3, 4)]
    assert list(exported.predicted) == [served(i, shadow=True).shadow_label for i in (0, 1, 3, 4)]
    assert list(exported.token_counts) == [4 + i for i in (0, 1, 3, 4)]
    assert set(exported.text_sha256) < set(load_predictions(primary).text_sha256)
    assert run(capsys, "log", "export", log_url, "--out", str(shadow), "--shadow", "--model", PRIMARY)[0] == EXIT_USAGE


def test_export_errors_exit_2_with_one_line(log_url: str, tmp_path: Path, capsys):
    out = tmp_path / "w.parquet"
    code, _, err = run(capsys, "log", "export", str(tmp_path / "missing.db"), "--out", str(out))
    assert code == EXIT_USAGE and "must be a database URL" in err
    code, _, err = run(capsys, "log", "export", "sqlite:///" + str(tmp_path / "missing.db"), "--out", str(out))
    assert code == EXIT_USAGE and "does not exist" in err and not (tmp_path / "missing.db").exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database")
    code, _, err = run(capsys, "log", "export", str(garbage), "--out", str(out))
    assert code == EXIT_USAGE and "cannot be opened" in err
    fill(log_url, [])
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out))
    assert code == EXIT_USAGE and "holds no rows yet" in err
    fill(log_url, [served(0)])
    code, _, err = run(capsys, "log", "export", log_url, "--out", str(out), "--shadow")
    assert code == EXIT_USAGE and "no shadow predictions" in err and "--shadow CANDIDATE.toml" in err
    assert not out.exists()


def test_rows_without_probabilities_are_left_out_and_counted(log_url: str):
    fill(log_url, [served(0), served(1, scores=None, score=None, label=None, status="rejected",
                                      reasons=("non_finite",))])
    window = read_window(log_url)
    assert len(window) == 1 and window.left_out == {
        "no probabilities (guard rule non_finite, or the shadow failed)": 1}


def test_parse_time_reads_dates_offsets_and_utc():
    assert parse_time("2026-01-01") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01T00:00:00Z") == T0


# --- sample -----------------------------------------------------------------------------------------


@pytest.fixture
def shadow_window(log_url: str):
    # 40 rows; the shadow ran on even rows, agreeing on rows divisible by 4.
    records = [served(i, shadow=i % 2 == 0) for i in range(40)]
    records = [r if i % 4 else replace(r, shadow_label=r.model_label) for i, r in enumerate(records)]
    fill(log_url, records)
    return read_window(log_url)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_deterministic_for_a_seed(shadow_window, strategy):
    first = sample_window(shadow_window, 5, strategy=strategy, seed=3)
    assert first.rows == sample_window(shadow_window, 5, strategy=strategy, seed=3).rows
    assert len(first.rows) == 5 and list(first.rows) == sorted(first.rows)
    records = [shadow_window.records[i] for i in first.rows]
    if strategy == "low-confidence":
        assert all(max(r.scores.values()) == pytest.approx(0.4) for r in records)  # the lowest tops
    elif strategy == "guard-flagged":
        assert all(r.reasons for r in records)
    elif strategy == "disagreement":
        assert all(r.shadow_label is not None and r.shadow_label != r.model_label for r in records)
    if strategy != "low-confidence":
        seeds = {sample_window(shadow_window, 5, strategy=strategy, seed=s).rows for s in range(5)}
        assert len(seeds) > 1


def test_uniform_takes_everything_when_n_exceeds_the_window(shadow_window):
    chosen = sample_window(shadow_window, 500, strategy="uniform")
    assert chosen.rows == tuple(range(40)) and "only 40" in chosen.notes[0]


def test_strategies_without_a_population_are_errors(log_url: str):
    fill(log_url, [served(i, status="ok", reasons=()) for i in range(1, 4)])
    window = read_window(log_url)
    with pytest.raises(DataError, match="no shadow predictions; --strategy disagreement needs"):
        sample_window(window, 2, strategy="disagreement")
    with pytest.raises(DataError, match="flagged by the guard"):
        sample_window(window, 2, strategy="guard-flagged")
    with pytest.raises(ConfigError, match="'--strategy' must be one of"):
        sample_window(window, 2, strategy="newest")


def test_cli_strategies_are_the_library_ones():
    from textgate.cli.log import sample

    strategy = next(p for p in sample.params if p.name == "strategy")
    assert tuple(strategy.type.choices) == STRATEGIES


def label_batch(batch: Path) -> None:
    """A labeler's work: the label column filled in (here: the model's prediction, but for every
    third row a wrong one)."""
    with batch.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        wrong = LABELS[(LABELS.index(row["prediction"]) + 1) % 3]
        row["label"] = wrong if i % 3 == 0 else row["prediction"]
    with batch.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_labeled_sample_evaluates_with_intervals(shadow_window, log_url: str, tmp_path: Path, capsys):
    out = tmp_path / "batch"
    code, stdout, err = run(capsys, "log", "sample", log_url, "--n", "12", "--strategy", "uniform", "--seed", "1",
                            "--out-dir", str(out), "--format", "json")
    assert code == EXIT_OK, err
    summary = json.loads(stdout)
    assert (summary["kind"], summary["rows"], summary["estimates_production_accuracy"]) == (
        "textgate.log_sample", 12, True)
    assert summary["text"] == {"logged": 12, "joined": 0, "hash_only": 0}
    assert json.loads((out / "sample.json").read_text()) == summary
    records = [json.loads(line) for line in (out / "argilla.jsonl").read_text().splitlines()]
    assert len(records) == 12 and records[0]["fields"]["text"].startswith("text number")
    assert set(records[0]) == {"id", "fields", "metadata", "suggestions", "responses", "vectors"}
    assert records[0]["suggestions"]["label"]["value"] in LABELS
    label_batch(out / "batch.csv")
    code, stdout, err = run(capsys, *summary["eval"].split()[1:], "--format", "json")
    assert code == EXIT_OK, err
    report = json.loads(stdout)
    assert report["metrics"]["n"] == 12 and report["metrics"]["accuracy"] == pytest.approx(8 / 12)
    low, high = report["accuracy_ci95"]
    assert low < 8 / 12 < high
    assert report["calibration"] is not None  # predictions.parquet carries the probabilities


def test_a_hash_only_sample_joins_texts_by_hash_and_evaluates_on_the_hash(log_url: str, tmp_path: Path, capsys):
    fill(log_url, [served(i, text=False) for i in range(10)])
    out = tmp_path / "batch"
    code, stdout, _ = run(capsys, "log", "sample", log_url, "--n", "4", "--out-dir", str(out), "--format", "json")
    summary = json.loads(stdout)
    assert code == EXIT_OK and summary["text"]["hash_only"] == 4
    header = (out / "batch.csv").read_text().splitlines()[0].split(",")
    assert "text" not in header and "text_sha256" in header
    assert summary["eval"].endswith("--text-col text_sha256")
    assert all(json.loads(line)["fields"] == {} for line in (out / "argilla.jsonl").read_text().splitlines())
    label_batch(out / "batch.csv")
    code, stdout, err = run(capsys, *summary["eval"].split()[1:], "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(stdout)["metrics"]["n"] == 4
    # With the texts of one's own and the log's key, the batch gets its texts back.
    own = tmp_path / "sent.jsonl"
    own.write_text("".join(json.dumps({"text": f"text number {i}"}) + "\n" for i in range(10)))
    key_file = tmp_path / "log.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    joined = tmp_path / "joined"
    code, stdout, err = run(capsys, "log", "sample", log_url, "--n", "4", "--out-dir", str(joined), "--texts",
                            str(own), "--hash-key-file", str(key_file), "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(stdout)["text"] == {"logged": 0, "joined": 4, "hash_only": 0}
    with (joined / "batch.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(text_hash(row["text"], KEY) == row["text_sha256"] for row in rows)


def test_batch_text_that_looks_like_a_formula_is_escaped(log_url: str, tmp_path: Path):
    fill(log_url, [replace(served(0), text="=HYPERLINK(\"x\")")])
    paths, _ = write_labeling_batch(sample_window(read_window(log_url), 1, strategy="uniform"), tmp_path)
    with paths[0].open(encoding="utf-8", newline="") as handle:
        assert next(csv.DictReader(handle))["text"] == "'=HYPERLINK(\"x\")"


# --- end to end: serve with a shadow, export, evaluate -------------------------------------------------------


def test_served_traffic_with_a_shadow_exports_and_evaluates(tiny_model_dir, log_url: str, tmp_path: Path, capsys):
    from fastapi.testclient import TestClient

    from textgate.model import load_classifier, resolve_model_argument
    from textgate.serve.app import create_app
    from textgate.serve.config import ServeConfig

    primary = load_classifier(resolve_model_argument(str(tiny_model_dir))[0])
    shadow = load_classifier(resolve_model_argument(str(tiny_model_dir), max_length=8)[0])
    key_file = tmp_path / "log.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    config = ServeConfig(log_url=log_url, log_text=True, log_hash_key_file=str(key_file))
    texts = [f"{word} day lol omg this is so very {word} tbh" for word in ("good", "bad", "great", "awful", "meh",
                                                                          "ok", "sad", "happy", "fire", "sucks")]
    with TestClient(create_app(primary, config, shadow=shadow)) as client:
        for i in range(0, len(texts), 2):
            response = client.post("/v1/classify", json={"texts": texts[i:i + 2]},
                                   headers={"X-Request-ID": f"req-{i:03d}"})
            assert response.status_code == 200 and response.json()["logged"] == "committed"
    data = tmp_path / "sent.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": LABELS[i % 3]}) + "\n" for i, t in enumerate(texts)))
    window, shadow_window = tmp_path / "window.parquet", tmp_path / "shadow.parquet"
    assert run(capsys, "log", "export", log_url, "--out", str(window))[0] == EXIT_OK
    assert run(capsys, "log", "export", log_url, "--out", str(shadow_window), "--shadow")[0] == EXIT_OK
    exported = load_predictions(window)
    assert exported.model_fingerprint == primary.fingerprint and exported.label_names == primary.label_names
    assert list(exported.text_sha256) == [text_hash(t, KEY) for t in texts]
    assert not exported.truncated.any() and (exported.token_counts > 8).all()
    shadowed = load_predictions(shadow_window)
    assert shadowed.model_fingerprint == shadow.fingerprint != primary.fingerprint
    assert shadowed.truncated.all() and (shadowed.token_counts == 8).all()  # max_length 8 cut every text
    assert list(shadowed.text_sha256) == list(exported.text_sha256)
    for path in (window, shadow_window):
        code, stdout, err = run(capsys, "eval", "--predictions", str(path), str(data), "--format", "json")
        assert code == EXIT_OK, err
        report = json.loads(stdout)
        assert report["metrics"]["n"] == len(texts) and len(report["accuracy_ci95"]) == 2
    # and a labeling batch of the disagreements, if the shadow disagreed anywhere
    flips = int((exported.predicted != shadowed.predicted).sum())
    code, stdout, err = run(capsys, "log", "sample", log_url, "--n", "3", "--strategy", "disagreement",
                            "--out-dir", str(tmp_path / "flips"), "--format", "json")
    if flips:
        assert code == EXIT_OK and json.loads(stdout)["rows"] == min(3, flips)
    else:
        assert code == EXIT_USAGE and "no disagreement" in err
