"""The Predictions Parquet file: what is written is what is read, and bad files say so."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textgate.errors import DataError
from textgate.predictions import (
    Predictions,
    load_predictions,
    predictions_summary,
    save_predictions,
    texts_fingerprint,
)


def make_predictions(with_probabilities: bool = True) -> Predictions:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=5).astype(np.float32)
    names = ("neg", "neu", "pos")
    return Predictions(
        label_names=names,
        predicted=np.array([names[i] for i in probabilities.argmax(1)], dtype=object),
        probabilities=probabilities if with_probabilities else None,
        token_counts=np.array([3, 9, 4, 2, 7]) if with_probabilities else None,
        truncated=np.array([False, True, False, False, False]) if with_probabilities else None,
        batch_seconds=np.array([0.5, 0.25]),
        batch_sizes=np.array([3, 2]),
        settings={"model": {"dtype": "float32"}},
        model_fingerprint="abc",
        data_fingerprint=texts_fingerprint(["a", "b", "c", "d", "e"]),
    )


@pytest.mark.parametrize("with_probabilities", [True, False])
def test_round_trip(tmp_path, with_probabilities):
    original = make_predictions(with_probabilities)
    loaded = load_predictions(save_predictions(original, tmp_path / "p.parquet"))
    assert loaded.label_names == original.label_names
    assert list(loaded.predicted) == list(original.predicted)
    if with_probabilities:
        np.testing.assert_array_equal(loaded.probabilities, original.probabilities)
        np.testing.assert_array_equal(loaded.token_counts, original.token_counts)
        np.testing.assert_array_equal(loaded.truncated, original.truncated)
    else:
        assert loaded.probabilities is None and loaded.token_counts is None and loaded.truncated is None
    np.testing.assert_array_equal(loaded.batch_seconds, original.batch_seconds)
    np.testing.assert_array_equal(loaded.batch_sizes, original.batch_sizes)
    assert loaded.settings == original.settings
    assert (loaded.model_fingerprint, loaded.data_fingerprint) == (original.model_fingerprint,
                                                                   original.data_fingerprint)


def test_rows_are_restored_to_input_order(tmp_path):
    path = save_predictions(make_predictions(), tmp_path / "p.parquet")
    table = pq.read_table(path)
    shuffled = table.take(pa.array([4, 2, 0, 1, 3]))
    pq.write_table(shuffled, path)
    assert list(load_predictions(path).predicted) == list(make_predictions().predicted)


def test_text_hashes_round_trip_in_row_order(tmp_path):
    from dataclasses import replace

    from textgate._internal.hashing import text_hash, text_hash_settings

    key = b"k" * 32
    hashes = np.array([text_hash(t, key) for t in "abcde"], dtype=object)
    original = replace(make_predictions(), text_sha256=hashes, text_hash=text_hash_settings(key))
    path = save_predictions(original, tmp_path / "p.parquet")
    table = pq.read_table(path)
    assert table.column("text_sha256").type == pa.string()
    pq.write_table(table.take(pa.array([4, 2, 0, 1, 3])), path)  # rows are put back in order
    loaded = load_predictions(path)
    assert list(loaded.text_sha256) == list(hashes)
    assert loaded.text_hash == {"algorithm": "hmac-sha256", "keyed": True}
    assert json.loads(table.schema.metadata[b"textgate"])["schema_version"] == 2
    with pytest.raises(DataError, match="5 rows but 2 text hashes"):
        save_predictions(replace(original, text_sha256=hashes[:2]), tmp_path / "q.parquet")


def set_schema_version(path, version: int) -> None:
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"textgate"])
    meta["schema_version"] = version
    pq.write_table(table.replace_schema_metadata({b"textgate": json.dumps(meta).encode()}), path)


def test_a_schema_1_file_without_hashes_still_loads(tmp_path):
    path = save_predictions(make_predictions(), tmp_path / "p.parquet")
    set_schema_version(path, 1)
    loaded = load_predictions(path)
    assert loaded.text_sha256 is None and loaded.text_hash == {}
    assert list(loaded.predicted) == list(make_predictions().predicted)


def test_probabilities_that_are_not_distributions_are_not_saved(tmp_path):
    from dataclasses import replace

    good = make_predictions()
    broken = good.probabilities.copy()
    broken[2] = np.nan
    with pytest.raises(DataError, match="must be finite; rows 2 contain NaN"):
        save_predictions(replace(good, probabilities=broken), tmp_path / "p.parquet")
    assert not list(tmp_path.iterdir())


def test_summary_names_the_file_and_what_it_holds(tmp_path):
    predictions = make_predictions()
    summary = predictions_summary(predictions, tmp_path / "p.parquet")
    assert (summary["schema_version"], summary["kind"], summary["out"]) == (1, "textgate.predict",
                                                                            str(tmp_path / "p.parquet"))
    assert summary["rows"] == 5 and sum(summary["predicted_counts"].values()) == 5
    assert summary["truncated"] == 1 and summary["seconds"] == 0.75 and summary["model_fingerprint"] == "abc"
    json.dumps(summary, allow_nan=False)


def test_texts_fingerprint_depends_on_order_and_boundaries():
    assert texts_fingerprint(["ab", "c"]) != texts_fingerprint(["a", "bc"])
    assert texts_fingerprint(["a", "b"]) != texts_fingerprint(["b", "a"])
    assert texts_fingerprint(["a", "b"]) == texts_fingerprint(("a", "b"))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist; pass the file written by 'textgate predict --out'"):
        load_predictions(tmp_path / "nope.parquet")


def test_not_parquet(tmp_path):
    (tmp_path / "p.parquet").write_text("hello")
    with pytest.raises(DataError, match="is not a readable Parquet file"):
        load_predictions(tmp_path / "p.parquet")


def test_foreign_parquet_points_to_the_prediction_column_format(tmp_path):
    pq.write_table(pa.table({"prediction": ["a"]}), tmp_path / "p.parquet")
    with pytest.raises(DataError, match="no textgate metadata.*'prediction' column"):
        load_predictions(tmp_path / "p.parquet")


def test_newer_schema_is_refused(tmp_path):
    path = save_predictions(make_predictions(), tmp_path / "p.parquet")
    set_schema_version(path, 99)
    with pytest.raises(DataError, match="schema_version 99, newer than this textgate reads"):
        load_predictions(path)
