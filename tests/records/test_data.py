"""Tests for textgate.data: every format reads the same rows; every bad input says what to fix."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textgate.data import Dataset, read_dataset, read_label_list, read_prediction_column
from textgate.errors import ConfigError, DataError

NAMES = ("negative", "neutral", "positive")
# Quotes, a comma, a tab, non-ASCII and a whitespace-only text: the cases formats disagree on.
ROWS = [
    ("Great game lol", "positive"),
    ('"Quoted", with a comma', "neutral"),
    ("tab\there", "negative"),
    ("   ", "neutral"),
    ("naïve café ☕ ", "positive"),
]
TEXTS = tuple(t for t, _ in ROWS)
LABELS = [label for _, label in ROWS]


def write_csv(path: Path, header: list[str], rows: list[list], *, delimiter: str = ",",
              encoding: str = "utf-8") -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding=encoding, newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return path


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def write_tweeteval(folder: Path, texts, ids, *, mapping: bool = True, split: str = "val") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_text.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    (folder / f"{split}_labels.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    if mapping:
        (folder / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    return folder / f"{split}_text.txt"


def _records() -> list[dict]:
    return [{"text": t, "label": label} for t, label in ROWS]


FORMATS: dict[str, Callable[[Path], Path]] = {
    "csv": lambda d: write_csv(d / "data.csv", ["text", "label"], [list(r) for r in ROWS]),
    "tsv": lambda d: write_csv(d / "data.tsv", ["text", "label"], [list(r) for r in ROWS],
                               delimiter="\t"),
    "csv.gz": lambda d: write_csv(d / "data.csv.gz", ["text", "label"], [list(r) for r in ROWS]),
    "tsv.gz": lambda d: write_csv(d / "data.tsv.gz", ["text", "label"], [list(r) for r in ROWS],
                                  delimiter="\t"),
    "csv-bom": lambda d: write_csv(d / "bom.csv", ["text", "label"], [list(r) for r in ROWS],
                                   encoding="utf-8-sig"),
    "jsonl": lambda d: write_jsonl(d / "data.jsonl", _records()),
    "ndjson": lambda d: write_jsonl(d / "data.ndjson", _records()),
    "jsonl.gz": lambda d: write_jsonl(d / "data.jsonl.gz", _records()),
    "parquet": lambda d: write_parquet(d / "data.parquet", {"text": list(TEXTS), "label": LABELS}),
    "tweeteval": lambda d: write_tweeteval(d / "tweeteval", TEXTS,
                                           [NAMES.index(label) for label in LABELS]),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_rows_and_fingerprint(tmp_path, fmt):
    reference = read_dataset(FORMATS["jsonl"](tmp_path))
    dataset = read_dataset(FORMATS[fmt](tmp_path))
    assert dataset.texts == TEXTS
    assert list(dataset.labels) == LABELS
    assert dataset.labels.dtype == object
    assert dataset.label_names == NAMES
    assert len(dataset) == len(ROWS)
    assert dataset.fingerprint == reference.fingerprint
    assert len(dataset.fingerprint) == 64


def test_fingerprint_changes_with_any_text_or_label(tmp_path):
    base = read_dataset(write_jsonl(tmp_path / "a.jsonl", _records())).fingerprint
    relabeled = _records()
    relabeled[0]["label"] = "negative"
    retexted = _records()
    retexted[0]["text"] += "!"
    assert read_dataset(write_jsonl(tmp_path / "b.jsonl", relabeled)).fingerprint != base
    assert read_dataset(write_jsonl(tmp_path / "c.jsonl", retexted)).fingerprint != base


def test_label_ids_and_names_give_the_same_dataset(tmp_path):
    by_name = read_dataset(write_jsonl(tmp_path / "names.jsonl", _records()), label_names=NAMES)
    ids = [NAMES.index(label) for label in LABELS]
    int_ids = write_jsonl(tmp_path / "ids.jsonl",
                          [{"text": t, "label": i} for t, i in zip(TEXTS, ids)])
    str_ids = write_csv(tmp_path / "ids.csv", ["text", "label"],
                        [[t, str(i)] for t, i in zip(TEXTS, ids)])
    parquet_ids = write_parquet(tmp_path / "ids.parquet", {"text": list(TEXTS), "label": ids})
    for path in (int_ids, str_ids, parquet_ids):
        dataset = read_dataset(path, label_names=NAMES)
        assert list(dataset.labels) == list(by_name.labels) == LABELS
        assert dataset.fingerprint == by_name.fingerprint


def test_given_label_names_fix_the_order_and_may_include_unseen_labels(tmp_path):
    names = ("positive", "neutral", "negative", "mixed")
    dataset = read_dataset(write_jsonl(tmp_path / "d.jsonl", _records()), label_names=names)
    assert dataset.label_names == names
    assert list(dataset.labels) == LABELS


def test_custom_text_and_label_columns_and_other_columns_kept(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["id", "tweet", "sentiment", "source"],
                     [[i, t, label, f"src{i % 2}"] for i, (t, label) in enumerate(ROWS)])
    dataset = read_dataset(path, text_col="tweet", label_col="sentiment")
    assert dataset.texts == TEXTS
    assert list(dataset.labels) == LABELS
    assert (dataset.text_col, dataset.label_col) == ("tweet", "sentiment")
    assert dict(dataset.columns) == {"id": ("0", "1", "2", "3", "4"),
                                     "source": ("src0", "src1", "src0", "src1", "src0")}


def test_jsonl_columns_are_the_union_of_keys(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x", "lang": "en"},
                                              {"text": "b", "label": "y", "topic": 3}])
    dataset = read_dataset(path)
    assert dict(dataset.columns) == {"lang": ("en", None), "topic": (None, 3)}


def test_empty_and_whitespace_texts_are_kept_and_reported(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "fine", "label": "a"},
        {"text": "", "label": "a"},
        {"text": " \t ", "label": "b"},
        {"text": None, "label": "b"},
        {"label": "a"},
        {"text": "ok", "label": "b"},
    ])
    dataset = read_dataset(path)
    assert dataset.texts == ("fine", "", " \t ", "", "", "ok")
    assert dataset.empty_text_rows == (1, 2, 3, 4)
    assert dataset.summary() == "6 examples from d.jsonl; 2 labels; 4 empty texts (rows 2, 3, 4, 5)"


def test_summary_singular_and_without_labels(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text"], [["only one"]])
    dataset = read_dataset(path, require_labels=False)
    assert dataset.labels is None
    assert dataset.label_names == ()
    assert dataset.summary() == "1 example from d.csv; no labels"


def test_missing_label_column_is_fine_when_labels_are_not_required(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "source"], [["a", "x"], ["b", "y"]])
    dataset = read_dataset(path, require_labels=False, label_names=NAMES)
    assert dataset.labels is None
    assert dataset.label_names == NAMES
    assert dataset.columns == {"source": ("x", "y")}
    assert dataset.fingerprint != read_dataset(
        write_csv(tmp_path / "e.csv", ["text", "label"], [["a", "x"], ["b", "y"]])).fingerprint


def test_label_col_none_reads_the_texts_only(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label"], [["a", "not-a-label"], ["b", "1"]])
    dataset = read_dataset(path, label_col=None)
    assert (dataset.texts, dataset.labels, dataset.label_names) == (("a", "b"), None, ())
    assert dataset.columns == {"label": ("not-a-label", "1")}
    te = write_tweeteval(tmp_path / "te", ["x", "y"], [0, 1])
    (te.parent / "mapping.txt").write_text("not a mapping\n")  # not read either
    assert read_dataset(te, label_col=None).labels is None


# --- TweetEval pairs -----------------------------------------------------------------------

def test_tweeteval_trailing_newline_adds_no_row_but_inner_blank_line_is_an_example(tmp_path):
    folder = tmp_path / "te"
    folder.mkdir()
    (folder / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    (folder / "train_text.txt").write_text("first\n\nthird\n", encoding="utf-8")
    (folder / "train_labels.txt").write_text("0\n1\n2\n")
    dataset = read_dataset(folder / "train_text.txt")
    assert dataset.texts == ("first", "", "third")
    assert list(dataset.labels) == ["negative", "neutral", "positive"]
    assert dataset.empty_text_rows == (1,)


def test_tweeteval_unicode_line_separators_stay_inside_one_tweet(tmp_path):
    path = write_tweeteval(tmp_path / "te", ["a\u2028b", "c\x85d"], [0, 1])
    assert read_dataset(path).texts == ("a\u2028b", "c\x85d")


def test_tweeteval_without_trailing_newline_and_with_crlf(tmp_path):
    folder = tmp_path / "te"
    folder.mkdir()
    (folder / "val_text.txt").write_bytes(b"one\r\ntwo\r\nthree")
    (folder / "val_labels.txt").write_bytes(b"2\r\n1\r\n0\r\n")
    dataset = read_dataset(folder / "val_text.txt", label_names=NAMES)
    assert dataset.texts == ("one", "two", "three")
    assert list(dataset.labels) == ["positive", "neutral", "negative"]


def test_tweeteval_mapping_defines_ids_even_when_given_names_are_in_another_order(tmp_path):
    path = write_tweeteval(tmp_path / "te", ["bad", "ok", "good"], [0, 1, 2])
    model_order = ("positive", "negative", "neutral")
    dataset = read_dataset(path, label_names=model_order)
    assert list(dataset.labels) == ["negative", "neutral", "positive"]
    assert dataset.label_names == model_order


def test_tweeteval_ids_without_mapping_use_given_names(tmp_path):
    path = write_tweeteval(tmp_path / "te", ["bad", "good"], [0, 2], mapping=False)
    assert list(read_dataset(path, label_names=NAMES).labels) == ["negative", "positive"]
    with pytest.raises(DataError, match=r"integer ids \(0, 2\).*no label names are known"):
        read_dataset(path)


def test_tweeteval_line_count_mismatch_gives_both_counts(tmp_path):
    path = write_tweeteval(tmp_path / "te", ["a", "b", "c"], [0, 1])
    with pytest.raises(DataError, match=r"val_text.txt has 3 lines but val_labels.txt has 2"):
        read_dataset(path)


def test_tweeteval_missing_labels_file_names_the_expected_path(tmp_path):
    path = write_tweeteval(tmp_path / "te", ["a", "b"], [0, 1])
    expected = path.with_name("val_labels.txt")
    expected.unlink()
    with pytest.raises(DataError, match=rf"Labels file {expected} not found") as info:
        read_dataset(path)
    assert info.value.path == expected
    dataset = read_dataset(path, require_labels=False)
    assert dataset.labels is None
    assert dataset.label_names == NAMES  # from mapping.txt


def test_tweeteval_bad_mapping_line(tmp_path):
    path = write_tweeteval(tmp_path / "te", ["a"], [0])
    (path.parent / "mapping.txt").write_text("0\tnegative\nneutral\n")
    with pytest.raises(DataError, match=r"Line 2 of .*mapping.txt should be 'id<TAB>name'"):
        read_dataset(path)


# --- bad input -----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"Dataset file .*nope.csv does not exist") as info:
        read_dataset(tmp_path / "nope.csv")
    assert info.value.path == tmp_path / "nope.csv"


def test_unsupported_suffix_lists_supported_formats(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"data.xlsx has an unsupported format; supported: "
                                        r"\.csv, \.tsv, \.jsonl, .*\.parquet.*_text\.txt"):
        read_dataset(path)


def test_missing_text_column_lists_available_columns(tmp_path):
    path = write_csv(tmp_path / "data.csv", ["id", "text", "label"], [["1", "hi", "a"]])
    with pytest.raises(DataError, match=r"^Column 'txt' \(--text-col\) not found in data.csv; "
                                        r"available columns: id, text, label\. Pass --text-col "
                                        r"with one of them\.$") as info:
        read_dataset(path, text_col="txt")
    assert info.value.field == "txt"


def test_missing_label_column_names_the_flag(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"text": "hi", "sentiment": "a"}])
    with pytest.raises(DataError, match=r"Column 'label' \(--label-col\) not found in "
                                        r"data.jsonl; available columns: text, sentiment"):
        read_dataset(path)


def test_unknown_labels_are_listed_once_with_counts_and_first_rows(tmp_path):
    labels = ["positive", "postive", "neutral", "neutrl", "postive", "7", "negative"]
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "t", "label": v} for v in labels])
    with pytest.raises(DataError) as info:
        read_dataset(path, label_names=NAMES)
    message = str(info.value)
    assert "has 3 values that are not labels of this task" in message
    assert "'postive' (2 rows, first row 2)" in message
    assert "'neutrl' (1 row, first row 4)" in message
    assert "'7' (1 row, first row 6)" in message
    assert "Expected one of: negative, neutral, positive (or an integer id 0-2)" in message
    assert info.value.row == 2


def test_numeric_ids_without_names_need_names(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label"], [["a", "2"], ["b", "0"], ["c", "1"]])
    with pytest.raises(DataError, match=r"holds integer ids \(0, 1, 2\) but no label names are "
                                        r"known.*Pass the label names"):
        read_dataset(path)


def test_malformed_json_line_gives_its_line_number(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": }\n')
    with pytest.raises(DataError, match=r"^Line 3 of d.jsonl is not valid JSON") as info:
        read_dataset(path)
    assert info.value.row == 3


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('["a", "x"]\n')
    with pytest.raises(DataError, match=r"Line 1 of d.jsonl is a JSON list, not an object"):
        read_dataset(path)


@pytest.mark.parametrize("missing", [None, "", "  "])
def test_null_or_empty_label_gives_the_row(tmp_path, missing):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"},
                                              {"text": "b", "label": missing}])
    with pytest.raises(DataError, match=r"^Row 2 of d.jsonl has no label") as info:
        read_dataset(path)
    assert info.value.row == 2


def test_empty_csv_cell_label_gives_the_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label"], [["a", "x"], ["b", "y"], ["c", ""]])
    with pytest.raises(DataError, match=r"Row 3 of d.csv has no label"):
        read_dataset(path)


@pytest.mark.parametrize("name, content", [
    ("empty.csv", ""),
    ("header.csv", "text,label\n"),
    ("blank.jsonl", "\n\n"),
    ("val_text.txt", ""),
])
def test_empty_files_have_no_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=rf"{name} has no rows"):
        read_dataset(path)


def test_empty_parquet_has_no_rows(tmp_path):
    path = write_parquet(tmp_path / "e.parquet", {"text": pa.array([], pa.string()),
                                                  "label": pa.array([], pa.string())})
    with pytest.raises(DataError, match=r"e.parquet has no rows"):
        read_dataset(path)


def test_csv_row_with_wrong_field_count(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,a\nhello, world,b\n")
    with pytest.raises(DataError, match=r"Row 2 of d.csv has 3 fields but the header has 2"):
        read_dataset(path)


def test_csv_duplicate_header(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label", "text"], [["a", "b", "c"]])
    with pytest.raises(DataError, match=r"duplicate column names in its header: text"):
        read_dataset(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"d.csv is not valid UTF-8 text"):
        read_dataset(path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"d.parquet is not a readable Parquet file"):
        read_dataset(path)


@pytest.mark.parametrize("names", [("a", "a"), (), "abc"])
def test_invalid_label_names_argument(tmp_path, names):
    path = write_jsonl(tmp_path / "d.jsonl", _records())
    with pytest.raises(ConfigError, match=r"label_names must be a non-empty sequence"):
        read_dataset(path, label_names=names)


# --- predictions from other systems --------------------------------------------------------

def test_read_label_list_maps_ids_and_keeps_invalid_values(tmp_path):
    path = tmp_path / "preds.txt"
    path.write_text("positive\n1\nLABEL_3\n7\n negative \n")
    predicted = read_label_list(path, label_names=NAMES)
    assert predicted.dtype == object
    assert list(predicted) == ["positive", "neutral", "LABEL_3", "7", "negative"]


def test_read_label_list_errors(tmp_path):
    with pytest.raises(DataError, match=r"Predictions file .*missing.txt does not exist"):
        read_label_list(tmp_path / "missing.txt", label_names=NAMES)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match=r"empty.txt is empty; it needs one predicted label"):
        read_label_list(tmp_path / "empty.txt", label_names=NAMES)


@pytest.mark.parametrize("write", [
    lambda d, vals: write_csv(d / "p.csv", ["id", "prediction"],
                              [[i, "" if v is None else v] for i, v in enumerate(vals)]),
    lambda d, vals: write_jsonl(d / "p.jsonl", [{"id": i, "prediction": v}
                                                for i, v in enumerate(vals)]),
    lambda d, vals: write_parquet(d / "p.parquet", {"id": list(range(len(vals))),
                                                    "prediction": [None if v is None else str(v)
                                                                   for v in vals]}),
])
def test_read_prediction_column_maps_ids_and_keeps_invalid_values(tmp_path, write):
    path = write(tmp_path, ["negative", 2, "LABEL_3", 5, None])
    predicted = read_prediction_column(path, label_names=NAMES)
    assert list(predicted) == ["negative", "positive", "LABEL_3", "5", ""]


def test_read_prediction_column_missing_column_lists_columns(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["id", "pred"], [["1", "positive"]])
    with pytest.raises(DataError, match=r"Column 'prediction' not found in p.csv; available "
                                        r"columns: id, pred"):
        read_prediction_column(path, label_names=NAMES)
    assert list(read_prediction_column(path, column="pred", label_names=NAMES)) == ["positive"]


def test_dataset_is_a_frozen_record(tmp_path):
    dataset = read_dataset(write_jsonl(tmp_path / "d.jsonl", _records()))
    assert isinstance(dataset, Dataset)
    with pytest.raises(AttributeError):
        dataset.texts = ()  # type: ignore[misc]
    assert isinstance(dataset.labels, np.ndarray)


def test_empty_text_rows_count_invisible_texts(tmp_path):
    path = tmp_path / "d.jsonl"
    texts = ["ok", "\u200b\u200b", "\x00\x01", "\u00ad", " ", "fine"]
    path.write_text("".join(json.dumps({"text": t, "label": "a"}) + "\n" for t in texts))
    assert read_dataset(path, label_names=["a"]).empty_text_rows == (1, 2, 3, 4)


@pytest.mark.parametrize(("value", "kind"), [(12, "a number"), (1.5, "a number"), (["a", "b"], "a list"), ({"x": 1}, "an object"),
                                           (True, "a boolean")])
def test_a_non_string_text_cell_is_an_error_naming_the_row(tmp_path, value, kind):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "fine", "label": "a"}) + "\n" + json.dumps({"text": value, "label": "a"}) + "\n")
    with pytest.raises(DataError, match=f"Row 2 of d.jsonl: column 'text' holds {kind}") as caught:
        read_dataset(path, label_names=["a"])
    assert caught.value.row == 2 and caught.value.field == "text"


def test_a_missing_text_cell_is_an_empty_text(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": None, "label": "a"}) + "\n")
    dataset = read_dataset(path, label_names=["a"])
    assert dataset.texts == ("",) and dataset.empty_text_rows == (0,)


def test_a_tab_separated_file_named_csv_says_so(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text\tlabel\nhello\ta\n")
    with pytest.raises(DataError, match=r"looks tab-separated\. Rename it with a \.tsv suffix"):
        read_dataset(path, label_names=["a"])
