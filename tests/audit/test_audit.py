"""`textgate audit`: planted errors found and ranked first, bad inputs refused with clear
errors, the output files, k-fold end to end through the CLI, and `audit apply`."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS

from textgate._internal.hashing import UNKEYED, text_hash
from textgate.audit import (
    audit_labels,
    kfold_probabilities,
    validate_audit_inputs,
    validate_kfold_labels,
)
from textgate.audit.apply import apply_corrections
from textgate.cli import EXIT_OK, EXIT_USAGE, main
from textgate.errors import ConfigError, DataError

N, FLIPPED = 300, (3, 50, 120, 201, 277)


def planted_case() -> tuple[np.ndarray, np.ndarray]:
    """Well-separated probabilities of the true class, and labels with FLIPPED rows changed."""
    true = np.arange(N) % 3
    probs = np.full((N, 3), 0.05)
    probs[np.arange(N), true] = 0.9
    given = true.copy()
    given[list(FLIPPED)] = (true[list(FLIPPED)] + 1) % 3
    return given, probs


@pytest.mark.parametrize(("method", "ranked_by"), [
    ("confident_learning", "normalized_margin"),
    ("confident_learning", "self_confidence"),
    ("loss", "normalized_margin"),  # loss ignores ranked_by
])
def test_planted_errors_are_found_and_ranked_first(method, ranked_by):
    given, probs = planted_case()
    result = audit_labels(given, probs, label_names=LABELS, method=method, ranked_by=ranked_by)
    assert result.estimated_issues == len(FLIPPED)
    assert {f.row for f in result.findings} == set(FLIPPED)
    assert [f.rank for f in result.findings] == list(range(1, len(FLIPPED) + 1))
    scores = [f.score for f in result.findings]
    assert scores == sorted(scores, reverse=True)
    true = np.arange(N) % 3
    for f in result.findings:
        assert f.method == method
        assert f.given_label == LABELS[given[f.row]] and f.suggested_label == LABELS[true[f.row]]


def test_estimated_issues_per_pair_and_top():
    given, probs = planted_case()
    result = audit_labels(given, probs, label_names=LABELS)
    expected: dict[tuple[str, str], int] = {}
    for row in FLIPPED:
        pair = (LABELS[given[row]], LABELS[row % 3])
        expected[pair] = expected.get(pair, 0) + 1
    assert {(p["given"], p["likely"]): p["estimated"] for p in result.pairs()} == expected
    assert len(audit_labels(given, probs, label_names=LABELS, method="loss", top=2).findings) == 2


def test_confident_learning_and_loss_differ_on_a_hard_case():
    """Loss ranks by p[given] alone, so row 9 (p[given] 0.3) is its top finding; confident
    learning flags it only if another class clears that class's threshold (mean probability
    over the examples given it, 0.8 here), which 0.35 does not: nothing is flagged."""
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    probs = np.array([[.8, .1, .1], [.8, .1, .1], [.8, .1, .1], [.1, .8, .1], [.1, .8, .1], [.1, .8, .1],
                      [.1, .1, .8], [.1, .1, .8], [.1, .1, .8], [.3, .35, .35]])
    loss = audit_labels(labels, probs, label_names=LABELS, method="loss", top=1)
    assert loss.findings[0].row == 9 and loss.findings[0].score == pytest.approx(-np.log(0.3))
    confident = audit_labels(labels, probs, label_names=LABELS, top=1)
    assert confident.findings == () and confident.estimated_issues == 0


def test_normalized_margin_ranks_a_clear_alternative_above_a_lower_given_probability():
    """Loss (and self-confidence) rank by p[given] alone, normalized margin by p[given] - max
    other: of two flagged rows, the one with a low but not lowest p[given] and a clear
    alternative comes first under the margin."""
    true = np.arange(30) % 3
    probs = np.full((30, 3), 0.2)
    probs[np.arange(30), true] = 0.6
    labels = true.copy()
    labels[[1, 4]] = 0  # both truly neutral
    probs[1] = [.05, .9, .05]  # clear alternative: margin -0.85
    probs[4] = [.04, .61, .35]  # lowest p[given], weaker alternative: margin -0.57
    rows = {(method, ranked_by): [f.row for f in audit_labels(labels, probs, label_names=LABELS, method=method,
                                                               ranked_by=ranked_by).findings]
            for method, ranked_by in [("confident_learning", "normalized_margin"),
                                      ("confident_learning", "self_confidence"), ("loss", "normalized_margin")]}
    assert rows == {("confident_learning", "normalized_margin"): [1, 4],
                    ("confident_learning", "self_confidence"): [4, 1], ("loss", "normalized_margin"): [4, 1]}


@pytest.mark.parametrize(("labels", "probs", "message"), [
    ([0, 1], [[0.5, 0.6], [0.5, 0.5]], "must sum to 1"),
    ([0, 1], [[0.3, 0.3], [0.5, 0.5]], "row 0 sums to 0.6"),
    ([0, 2], [[0.5, 0.5], [0.5, 0.5]], "class ids in 0..1"),
    ([0, -1], [[0.5, 0.5], [0.5, 0.5]], "class ids in 0..1"),
    ([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]], "labels has 3 entries but probabilities have 2 rows"),
    ([0, 1], [[np.nan, 1.0], [0.5, 0.5]], "must be finite"),
    ([0, 1], [[1.5, -0.5], [0.5, 0.5]], "must lie in [0, 1]"),
    ([0, 0], [[0.5, 0.5], [0.5, 0.5]], "no example is labeled 1"),
    ([0.0, 1.0], [[0.5, 0.5], [0.5, 0.5]], "integer class ids"),
    ([0, 1], [0.5, 0.5], "2-D array"),
])
def test_bad_inputs_get_clear_errors(labels, probs, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("(", r"\(")) as caught:
        validate_audit_inputs(np.asarray(labels), np.asarray(probs))
    assert caught.value.field in ("labels", "probabilities")


def test_bad_settings_get_clear_errors():
    given, probs = planted_case()
    with pytest.raises(ConfigError, match="method must be one of"):
        audit_labels(given, probs, label_names=LABELS, method="magic")
    with pytest.raises(ConfigError, match="top must be a positive"):
        audit_labels(given, probs, label_names=LABELS, top=0)
    with pytest.raises(DataError, match="label_names has 2 names"):
        audit_labels(given, probs, label_names=LABELS[:2])


def test_kfold_probabilities_are_out_of_sample_and_find_flips():
    rng = np.random.default_rng(0)
    true = np.arange(240) % 3
    x = rng.normal(size=(240, 8)) + 4 * np.eye(3, 8)[true]
    given = true.copy()
    given[[5, 100, 200]] = (true[[5, 100, 200]] + 1) % 3
    probs, settings = kfold_probabilities(x, given, n_classes=3, folds=4, seed=1)
    assert probs.shape == (240, 3) and np.allclose(probs.sum(axis=1), 1)
    assert settings["folds"] == 4 and settings["folds_not_converged"] == 0
    again, _ = kfold_probabilities(x, given, n_classes=3, folds=4, seed=1)
    assert np.array_equal(probs, again)  # seeded
    rows = {f.row for f in audit_labels(given, probs, label_names=LABELS).findings}
    assert {5, 100, 200} <= rows
    with pytest.raises(DataError, match="at least 4 examples of every label"):
        kfold_probabilities(x[:10], given[:10], n_classes=3, folds=4)
    with pytest.raises(DataError, match="at least 4 examples of every label"):  # the same check, before embedding
        validate_kfold_labels(given[:10], n_classes=3, folds=4)
    with pytest.raises(ConfigError, match="folds must be an integer >= 2"):
        validate_kfold_labels(given, n_classes=3, folds=1)


def test_kfold_picks_the_c_with_the_lowest_out_of_fold_nll():
    from textgate.audit import KFOLD_C_GRID

    rng = np.random.default_rng(3)
    true = np.arange(300) % 3
    x = rng.normal(size=(300, 40)) + 1.5 * np.eye(3, 40)[true]  # weak signal, many noise dimensions
    given = np.where(rng.random(300) < 0.15, (true + 1) % 3, true)
    probs, settings = kfold_probabilities(x, given, n_classes=3, folds=5, seed=0)
    nll = {float(c): value for c, value in settings["out_of_fold_nll"].items()}
    assert sorted(nll) == sorted(KFOLD_C_GRID) and settings["C"] == min(nll, key=nll.get)
    assert len(set(nll.values())) == len(nll)  # the candidates really differ
    fixed, fixed_settings = kfold_probabilities(x, given, n_classes=3, folds=5, seed=0, C=settings["C"])
    assert np.array_equal(probs, fixed) and fixed_settings["C_chosen_by"] == "given"
    other = max(nll, key=nll.get)
    worse, _ = kfold_probabilities(x, given, n_classes=3, folds=5, seed=0, C=other)
    loss = -np.log(worse[np.arange(300), given]).mean()
    assert loss == pytest.approx(nll[other], abs=1e-6) and loss > nll[settings["C"]]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True])
def test_kfold_c_must_be_positive(bad):
    x = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ConfigError, match="must be a positive number") as error:
        kfold_probabilities(x, np.arange(30) % 3, n_classes=3, folds=2, C=bad)
    assert error.value.field == "C"


# --- CLI, outputs and apply --------------------------------------------------------------------


@pytest.fixture
def audited(tmp_path, capsys):
    """A dataset, --pred-probs .npy with planted flips, and the audit's output folder."""
    given, probs = planted_case()
    texts = [f"text {i}" for i in range(N)]
    texts[FLIPPED[0]] = "<script>alert('x')</script> & =SUM(A1)"
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": LABELS[g], "id": i}) + "\n"
                            for i, (t, g) in enumerate(zip(texts, given))))
    np.save(tmp_path / "probs.npy", probs.astype(np.float32))
    out = tmp_path / "audit"
    code = main(["audit", "--pred-probs", str(tmp_path / "probs.npy"), str(data), "--out", str(out),
                 "--label-names", ",".join(LABELS)])
    assert code == EXIT_OK
    assert "5 likely label errors flagged" in capsys.readouterr().out
    return data, out, given, texts


def test_audit_outputs_parse(audited):
    _, out, _, texts = audited
    with (out / "issues.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(r["row"]) for r in rows} == set(FLIPPED)
    first = next(r for r in rows if int(r["row"]) == FLIPPED[0])
    assert first["text"].startswith("<script>")  # not a formula: kept as is
    assert first["text_sha256"] == text_hash(texts[FLIPPED[0]], UNKEYED)
    issues = [json.loads(line) for line in (out / "issues.jsonl").read_text().splitlines()]
    assert [i["rank"] for i in issues] == list(range(1, len(FLIPPED) + 1))
    assert set(issues[0]) >= {"row", "text", "given_label", "suggested_label", "score", "method"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["estimated_issues"] == len(FLIPPED) and summary["n_examples"] == N
    assert summary["label_names"] == list(LABELS) and summary["data"]["fingerprint"]
    assert summary["schema_version"] == 2 and summary["text_hash"] == {"algorithm": "hmac-sha256", "keyed": False}
    assert sum(p["estimated"] for p in summary["pairs"]) == len(FLIPPED)
    records = [json.loads(line) for line in (out / "argilla.jsonl").read_text().splitlines()]
    assert len(records) == len(FLIPPED)
    for record in records:
        assert set(record) == {"id", "fields", "metadata", "suggestions", "responses", "vectors"}
        assert set(record["fields"]) == {"text"}
        suggestion = record["suggestions"]["label"]
        assert suggestion["value"] in LABELS and 0 <= suggestion["score"] <= 1 and suggestion["agent"]
    page = (out / "review.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1 and 'id="pair"' in page and "default-src 'none'" in page


def test_formula_texts_are_defused_in_the_csv(tmp_path):
    given, probs = planted_case()
    texts = [f"=HYPERLINK({i})" for i in range(N)]
    data = tmp_path / "data.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, (LABELS[g] for g in given)))
    np.save(tmp_path / "p.npy", probs)
    assert main(["audit", "find", "--pred-probs", str(tmp_path / "p.npy"), str(data), "--out", str(tmp_path / "o")]) == 0
    with (tmp_path / "o" / "issues.csv").open(newline="") as handle:
        assert all(r["text"].startswith("'=") for r in csv.DictReader(handle))


def _edit(path, edits: dict[int, dict[str, str]], extra: list[dict[str, str]] = ()):
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    for r in rows:
        r.update(edits.get(int(r["row"]), {}))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows([*rows, *extra])


def test_apply_round_trip(audited, tmp_path):
    data, out, given, texts = audited
    a, b, c = FLIPPED[:3]
    _edit(out / "issues.csv", {a: {"accept": "yes"}, b: {"corrected_label": LABELS[2]},
                               c: {"corrected_label": LABELS[given[c]]}})
    fixed = tmp_path / "fixed.jsonl"
    code = main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed)])
    assert code == EXIT_OK
    before = [json.loads(line) for line in data.read_text().splitlines()]
    after = [json.loads(line) for line in fixed.read_text().splitlines()]
    assert len(after) == len(before)
    changed = {i for i, (x, y) in enumerate(zip(before, after)) if x != y}
    assert changed == ({a, b} if LABELS[given[b]] != LABELS[2] else {a})
    assert after[a]["label"] == LABELS[a % 3] and after[b]["label"] == LABELS[2]
    assert all(x["id"] == y["id"] and x["text"] == y["text"] for x, y in zip(before, after))
    with (tmp_path / "fixed.changelog.csv").open(newline="") as handle:
        log = list(csv.DictReader(handle))
    assert {int(r["row"]) for r in log} == changed
    entry = next(r for r in log if int(r["row"]) == a)
    assert entry["old_label"] == LABELS[given[a]] and "accept" in entry["source"]
    assert entry["text_sha256"] == text_hash(texts[a], UNKEYED)


@pytest.mark.parametrize(("edits", "extra", "message"), [
    ({FLIPPED[0]: {"corrected_label": "joyful"}}, [], "label 'joyful' is not one of"),
    ({FLIPPED[0]: {"text_sha256": "0" * 16, "accept": "x"}}, [], "text changed since the audit"),
    ({}, [{"row": str(N + 5), "text_sha256": "ab", "corrected_label": "neutral"}], "out of range"),
    ({}, [{"row": str(FLIPPED[1]), "text_sha256": "ab", "corrected_label": "neutral"}], "already appears on line"),
    ({FLIPPED[0]: {"accept": "maybe"}}, [], "accept is 'maybe'"),
])
def test_apply_refuses_bad_corrections_and_writes_nothing(audited, tmp_path, capsys, edits, extra, message):
    data, out, _, _ = audited
    _edit(out / "issues.csv", edits, extra)
    fixed = tmp_path / "fixed.jsonl"
    code = main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed)])
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not fixed.exists()


@pytest.mark.parametrize("content", ["{not json", '{"label_names": "negative"}'])
def test_apply_refuses_a_corrupt_summary_json_instead_of_guessing_label_names(audited, tmp_path, capsys, content):
    data, out, _, _ = audited
    _edit(out / "issues.csv", {FLIPPED[0]: {"accept": "yes"}})
    (out / "summary.json").write_text(content)
    fixed = tmp_path / "fixed.jsonl"
    code = main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "summary.json" in err and "--label-names" in err
    assert not fixed.exists()
    code = main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed),
                 "--label-names", ",".join(LABELS)])
    assert code == EXIT_OK and fixed.is_file()


# --- the text hash: one hash with the prediction log ------------------------------------------------


@pytest.fixture
def log_key_file(tmp_path):
    """The key file a SQLite prediction log creates beside itself (what serve would hash with)."""
    pytest.importorskip("sqlalchemy")
    from textgate.serve.store import log_hash_key

    key = log_hash_key(f"sqlite:///{tmp_path / 'log' / 'predictions.db'}")
    path = tmp_path / "log" / "predictions.db.hashkey"
    assert path.read_bytes().strip() == key
    return path, key


def _csv_rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _keyed_audit(audited, tmp_path, key_file) -> tuple:
    data, _, _, texts = audited
    out = tmp_path / "keyed"
    assert main(["audit", "--pred-probs", str(tmp_path / "probs.npy"), str(data), "--out", str(out),
                 "--label-names", ",".join(LABELS), "--hash-key-file", str(key_file)]) == EXIT_OK
    return data, out, texts


def test_with_the_logs_key_file_audit_rows_hash_as_the_log_does(audited, tmp_path, log_key_file):
    key_file, key = log_key_file
    _, out, texts = _keyed_audit(audited, tmp_path, key_file)
    rows = _csv_rows(out / "issues.csv")
    for row in rows:
        text = texts[int(row["row"])]
        assert row["text_sha256"] == text_hash(text, key)  # what the log's text_sha256 column holds
        assert row["text_sha256"] != text_hash(text, UNKEYED) and len(row["text_sha256"]) == 64
    unkeyed = {r["row"]: r["text_sha256"] for r in _csv_rows(audited[1] / "issues.csv")}
    assert all(unkeyed[r["row"]] != r["text_sha256"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["text_hash"] == {"algorithm": "hmac-sha256", "keyed": True}
    assert "hashkey" not in (out / "summary.json").read_text()  # neither the key nor its file is recorded
    for record in map(json.loads, (out / "argilla.jsonl").read_text().splitlines()):
        assert record["metadata"]["text_sha256"] == text_hash(texts[record["metadata"]["row"]], key)


def test_apply_checks_a_keyed_audit_with_its_key_and_says_when_it_is_missing(audited, tmp_path, capsys, log_key_file):
    key_file, key = log_key_file
    data, out, texts = _keyed_audit(audited, tmp_path, key_file)
    _edit(out / "issues.csv", {FLIPPED[0]: {"accept": "yes"}})
    fixed = tmp_path / "fixed.jsonl"
    capsys.readouterr()
    assert main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "made with a hash key" in err and "--hash-key-file" in err and not fixed.exists()
    assert main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed),
                 "--hash-key-file", str(key_file)]) == EXIT_OK
    [entry] = _csv_rows(tmp_path / "fixed.changelog.csv")
    assert entry["text_sha256"] == text_hash(texts[FLIPPED[0]], key)


def test_apply_says_when_an_unkeyed_audit_is_checked_with_a_key(audited, tmp_path, capsys, log_key_file):
    data, out, _, _ = audited
    _edit(out / "issues.csv", {FLIPPED[0]: {"accept": "yes"}})
    fixed = tmp_path / "fixed.jsonl"
    code = main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed),
                 "--hash-key-file", str(log_key_file[0])])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "made without a hash key" in err and "leave --hash-key-file out" in err
    assert not fixed.exists()


def test_apply_still_accepts_the_16_digit_hashes_of_older_audits(audited, tmp_path, log_key_file):
    data, out, given, texts = audited
    legacy = {row: {"text_sha256": hashlib.sha256(texts[row].encode()).hexdigest()[:16]} for row in FLIPPED}
    legacy[FLIPPED[0]]["accept"] = "yes"
    _edit(out / "issues.csv", legacy)
    for extra in ([], ["--hash-key-file", str(log_key_file[0])]):  # a key changes nothing for them
        fixed = tmp_path / f"fixed{len(extra)}.jsonl"
        assert main(["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(fixed),
                     *extra]) == EXIT_OK
        after = [json.loads(line) for line in fixed.read_text().splitlines()]
        assert after[FLIPPED[0]]["label"] == LABELS[FLIPPED[0] % 3]


@pytest.mark.parametrize("command", ["find", "apply"])
@pytest.mark.parametrize(("content", "message"), [(None, "cannot be read"), ("short", "holds 5 bytes")])
def test_a_bad_hash_key_file_is_a_config_error_naming_the_option(audited, tmp_path, capsys, command, content, message):
    from textgate._internal.hashing import read_hash_key

    data, out, _, _ = audited
    key_file = tmp_path / "bad.key"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(ConfigError) as caught:
        read_hash_key(key_file, field="--hash-key-file")
    assert caught.value.field == "--hash-key-file"
    args = (["audit", "find", "--pred-probs", str(tmp_path / "probs.npy"), str(data), "--out", str(tmp_path / "o")]
            if command == "find" else
            ["audit", "apply", str(out / "issues.csv"), "--data", str(data), "--out", str(tmp_path / "f.jsonl")])
    capsys.readouterr()
    assert main([*args, "--hash-key-file", str(key_file)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "'--hash-key-file'" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists() and not (tmp_path / "f.jsonl").exists()


def _tweeteval(folder, texts, ids):
    folder.mkdir()
    (folder / "val_text.txt").write_text("".join(t + "\n" for t in texts))
    (folder / "val_labels.txt").write_text("".join(f"{i}\n" for i in ids))
    (folder / "mapping.txt").write_text("".join(f"{i}\t{name}\n" for i, name in enumerate(LABELS)))
    return folder / "val_text.txt"


@pytest.mark.parametrize("kind", ["csv", "tweeteval"])
def test_apply_writes_gzip_outputs_that_read_back(tmp_path, kind):
    from textgate.data import read_dataset

    if kind == "csv":
        data, out = tmp_path / "d.csv", tmp_path / "out.csv.gz"
        data.write_text("text,label\nhello,0\nworld,2\n")
    else:
        data, out = _tweeteval(tmp_path / "te", ["hello", "world"], [0, 2]), tmp_path / "out.jsonl.gz"
    corrections = tmp_path / "c.csv"
    corrections.write_text(f"row,text_sha256,corrected_label\n1,{text_hash('world', UNKEYED)},neutral\n")
    apply_corrections(corrections, data, out, label_names=LABELS)
    assert list(read_dataset(out, label_names=LABELS).labels) == ["negative", "neutral"]
    assert not list(tmp_path.glob("*.partial"))


def test_apply_writes_a_tweeteval_copy_atomically(tmp_path, monkeypatch):
    import textgate.audit.apply

    def fail_midway(texts, labels, out, text_col, label_col):
        out.write_text('{"text": "hel')
        raise OSError("disk full")

    data = _tweeteval(tmp_path / "te", ["hello", "world"], [0, 2])
    corrections = tmp_path / "c.csv"
    corrections.write_text(f"row,text_sha256,corrected_label\n1,{text_hash('world', UNKEYED)},neutral\n")
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    monkeypatch.setattr(textgate.audit.apply, "_write_jsonl_from", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        apply_corrections(corrections, data, out, label_names=LABELS)
    assert out.read_text() == "previous\n" and not list(tmp_path.glob("*.partial"))


def test_apply_checks_the_output_format_before_reading_the_data(tmp_path):
    corrections = tmp_path / "c.csv"
    corrections.write_text("row,text_sha256,corrected_label\n")
    with pytest.raises(DataError, match="would change the format from csv to jsonl"):
        apply_corrections(corrections, tmp_path / "not-yet-there.csv", tmp_path / "out.jsonl", label_names=LABELS)
    with pytest.raises(DataError, match="write a .parquet file so"):
        apply_corrections(corrections, tmp_path / "d.parquet", tmp_path / "out.parquet.gz", label_names=LABELS)


def test_apply_keeps_csv_format_and_id_labels(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label,note\nhello,0,a\nworld,2,b\n")
    corrections = tmp_path / "c.csv"
    corrections.write_text(f"row,text_sha256,corrected_label\n1,{text_hash('world', UNKEYED)},neutral\n")
    result = apply_corrections(corrections, data, tmp_path / "out.csv", label_names=LABELS)
    assert (tmp_path / "out.csv").read_text().splitlines() == ["text,label,note", "hello,0,a", "world,1,b"]
    assert len(result.changes) == 1
    with pytest.raises(DataError, match="would change the format"):
        apply_corrections(corrections, data, tmp_path / "out.jsonl", label_names=LABELS)


def test_apply_reads_a_spreadsheet_csv_with_a_byte_order_mark(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes("label,text\n0,hello\n2,world\n".encode("utf-8-sig"))  # Excel's "CSV UTF-8"
    corrections = tmp_path / "c.csv"
    corrections.write_text(f"row,text_sha256,corrected_label\n1,{text_hash('world', UNKEYED)},neutral\n")
    apply_corrections(corrections, data, tmp_path / "out.csv", label_names=LABELS)
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "label,text\n0,hello\n1,world\n"
    assert not list(tmp_path.glob("*.partial"))


def test_cli_kfold_end_to_end_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    words = {"negative": "awful bad sad", "neutral": "the day okay", "positive": "great good happy"}
    rows = [{"text": f"{words[LABELS[i % 3]]} {i % 7}", "label": LABELS[i % 3]} for i in range(45)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["audit", str(tiny_model_dir), str(data), "--k-fold", "--folds", "3", "--out", str(tmp_path / "o"),
                 "--format", "json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "embedding 45 texts" in err and "C=0.001: 3 folds, out-of-fold NLL" in err and "C=0.1: 3 folds" in err
    summary = json.loads(out)
    assert summary["probabilities"]["source"] == "k-fold" and summary["probabilities"]["folds"] == 3
    assert summary["n_examples"] == 45 and (tmp_path / "o" / "review.html").is_file()
    nll = summary["probabilities"]["out_of_fold_nll"]
    assert summary["probabilities"]["C"] == float(min(nll, key=nll.get))
    code = main(["audit", str(tiny_model_dir), str(data), "--k-fold", "--folds", "3", "--kfold-c", "0.02",
                 "--out", str(tmp_path / "fixed"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert json.loads(out)["probabilities"]["C"] == 0.02 and list(json.loads(out)["probabilities"]["out_of_fold_nll"]) == ["0.02"]


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["audit", "--pred-probs", "x.npy", "--k-fold", "d.jsonl", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "--k-fold needs MODEL" in capsys.readouterr().err
    assert main(["audit", "m.toml", "d.jsonl", "--kfold-c", "0.1", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "--kfold-c sets the --k-fold head" in capsys.readouterr().err
    for flag, value in (("--folds", "5"), ("--seed", "1")):  # also the default value, given explicitly
        assert main(["audit", "m.toml", "d.jsonl", flag, value, "--out", str(tmp_path)]) == EXIT_USAGE
        assert f"{flag} sets the --k-fold split; add --k-fold or leave {flag} out" in capsys.readouterr().err
    assert main(["audit", "m.toml", "d.jsonl", "--k-fold", "--folds", "1", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "'--folds': 1 is not in the range x>=2" in capsys.readouterr().err
    for source in (["m.toml"], ["--pred-probs", "p.parquet"]):
        assert main(["audit", *source, "d.jsonl", "--label-names", "a,b", "--out", str(tmp_path)]) == EXIT_USAGE
        assert "--label-names names the columns of a .npy --pred-probs" in capsys.readouterr().err
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "label": "neutral"}\n{"text": "b", "label": "positive"}\n')
    np.save(tmp_path / "p.npy", np.array([[0.5, 0.5], [0.5, 0.6]]))
    assert main(["audit", "--pred-probs", str(tmp_path / "p.npy"), str(data), "--out", str(tmp_path / "o")]) == EXIT_USAGE
    assert "row 1 sums to 1.1" in capsys.readouterr().err


def test_cli_kfold_checks_label_counts_before_embedding(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "label": LABELS[i % 3]}) + "\n" for i in range(12)))
    code = main(["audit", str(tiny_model_dir), str(data), "--k-fold", "--folds", "5", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "stratified 5-fold needs at least 5 examples of every label" in err and "embedding" not in err


def test_audit_help_explains_both_commands(capsys):
    assert main(["audit", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "textgate audit apply" in out and "--pred-probs" in out and "--k-fold" in out


def test_pred_probs_from_a_textgate_predictions_file(audited, tmp_path, capsys):
    from textgate.predictions import Predictions, save_predictions, texts_fingerprint

    data, _, _, texts = audited
    _, probs = planted_case()
    names = np.array(LABELS, dtype=object)
    predictions = Predictions(label_names=LABELS, predicted=names[probs.argmax(1)],
                              probabilities=probs.astype(np.float32), data_fingerprint=texts_fingerprint(texts))
    path = save_predictions(predictions, tmp_path / "preds.parquet")
    assert main(["audit", "--pred-probs", str(path), str(data), "--out", str(tmp_path / "o"), "--method", "loss"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["method"] == "loss" and summary["flagged"] == len(FLIPPED)
    stale = Predictions(label_names=LABELS, predicted=predictions.predicted, probabilities=predictions.probabilities,
                        data_fingerprint="0123456789abcdef")
    save_predictions(stale, tmp_path / "stale.parquet")
    capsys.readouterr()
    assert main(["audit", "--pred-probs", str(tmp_path / "stale.parquet"), str(data), "--out",
                 str(tmp_path / "o2")]) == EXIT_USAGE
    assert "computed on other texts" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_classifier_kfold_audit_on_val(demo_spec_path, tmp_path, capsys):
    """The real path: the demo's LoRA-merged encoder embeds, k-fold fits, and the estimate is
    in the range the model's ~30% disagreement with TweetEval's labels implies."""
    lines = (demo_spec_path.parent / "val.jsonl").read_text().splitlines()[:400]
    data = tmp_path / "val400.jsonl"
    data.write_text("\n".join(lines) + "\n")
    code = main(["audit", str(demo_spec_path), str(data), "--k-fold", "--out", str(tmp_path / "o"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    summary = json.loads(out)
    assert summary["probabilities"]["source"] == "k-fold" and summary["n_examples"] == 400
    assert 0.05 * 400 <= summary["estimated_issues"] <= 0.5 * 400
    assert summary["flagged"] > 0


@pytest.mark.slow
def test_review_page_script_runs_under_its_csp_in_headless_chromium(audited, tmp_path):
    import shutil

    from test_html import CHROMIUM, _chromium

    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    dumped = _chromium(tmp_path, audited[1] / "review.html", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert 'data-rendered="ok"' in dumped.stdout and f'<b id="shown">{len(FLIPPED)}</b>' in dumped.stdout
    assert "Uncaught" not in dumped.stderr and "Content Security Policy" not in dumped.stderr


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"has_model": True, "pred_probs": Path("p.npy")}, "pred_probs", "not both"),
    ({"has_model": False, "pred_probs": None}, "pred_probs", "not neither"),
    ({"has_model": False, "pred_probs": Path("p.npy"), "k_fold": True}, "k_fold", "--k-fold needs MODEL"),
    ({"has_model": True, "pred_probs": None, "kfold_options": {"seed": 0}}, "seed", "--seed sets the --k-fold split"),
    ({"has_model": True, "pred_probs": None, "label_names": ["a"]}, "label_names", "Leave --label-names out"),
])
def test_the_probability_source_rules_are_the_library_s(kwargs, field, message):
    from textgate.audit.sources import check_probability_source

    arguments = {"label_names": None, "k_fold": False, "kfold_options": {}, **kwargs}
    with pytest.raises(ConfigError, match=message) as caught:
        check_probability_source(**arguments)
    assert caught.value.field == field
    check_probability_source(has_model=True, pred_probs=None, label_names=None, k_fold=True,
                             kfold_options={"folds": 3, "seed": 1, "kfold_c": None})
