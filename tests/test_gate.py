"""textgate gate: config validation, the checks and verdict, the cache, and the CLI end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS

from textgate.cli import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, main
from textgate.compare import compare_predictions
from textgate.data import Dataset
from textgate.errors import ConfigError
from textgate.evaluation import evaluate
from textgate.gate import Thresholds, check_gate, load_gate_config
from textgate.predictions import Predictions

TEXTS = [f"{w} {v} day" for w in ("i love", "awful", "okay", "omg so bad", "great", "meh lol", "sad", "happy")
         for v in ("this movie", "that game", "the phone", "a film", "tomorrow")] * 2


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": LABELS[i % 3]}) + "\n" for i, t in enumerate(TEXTS)))
    return path


def write_gate(tmp_path, model_dir, data_file, *, candidate="", thresholds="", extra="") -> str:
    path = tmp_path / "gate.toml"
    path.write_text(f"""{extra}
[data]
path = "{data_file}"

[[slice]]
name = "lol"
regex = 'lol|omg'

[baseline]
model = "{model_dir}"

[candidate]
model = "{model_dir}"
{candidate}

[thresholds]
max_p99_latency_increase = 10
{thresholds}

[settings]
bootstrap_resamples = 200
""")
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": "max_accuracy_drop = 2"}, r"Field 'thresholds.max_accuracy_drop'.*less than or equal to 1"),
        ({"thresholds": "alpha = 0.7"}, r"Field 'thresholds.alpha'.*less than 0.5"),
        ({"thresholds": "max_acuracy_drop = 0.1"}, r"Field 'thresholds.max_acuracy_drop'.*Allowed keys: max_accuracy_drop"),
        ({"candidate": 'predictions = "p.parquet"'}, r"Field 'candidate'.*either 'predictions'.*not both"),
        ({"candidate": 'dtype = "fp16"'}, r"Field 'candidate.dtype'"),
        ({"extra": 'colour = "red"'}, r"Unknown key 'colour'.*allowed top-level keys"),
    ],
)
def test_config_errors_name_the_field(tmp_path, tiny_model_dir, data_file, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_gate_config(write_gate(tmp_path, tiny_model_dir, data_file, **kwargs))


def test_missing_files_are_named(tmp_path, tiny_model_dir, data_file):
    with pytest.raises(ConfigError, match=r"Field 'data.path'.*does not exist"):
        load_gate_config(write_gate(tmp_path, tiny_model_dir, tmp_path / "nope.jsonl"))
    gate = tmp_path / "g2.toml"
    gate.write_text(f'[data]\npath = "{data_file}"\n[baseline]\npredictions = "missing.parquet"\n'
                    f'[candidate]\nmodel = "{tiny_model_dir}"\n')
    with pytest.raises(ConfigError, match=r"Field 'baseline.predictions'.*missing.parquet does not exist"):
        load_gate_config(gate)
    with pytest.raises(ConfigError, match="Gate file .* does not exist"):
        load_gate_config(tmp_path / "absent.toml")


def test_side_without_a_source(tmp_path, tiny_model_dir, data_file):
    gate = tmp_path / "g.toml"
    gate.write_text(f'[data]\npath = "{data_file}"\n[baseline]\nmodel = "{tiny_model_dir}"\n[candidate]\ndtype = "bfloat16"\n')
    with pytest.raises(ConfigError, match=r"Field 'candidate'.*needs 'spec'.*'model'.*'predictions'"):
        load_gate_config(gate)


def test_different_label_sets_are_a_config_error(capsys, tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file,
                      candidate='[candidate.label_map]\n0 = "negative"\n1 = "neutral"\n2 = "positive-ish"')
    code, _, err = run(capsys, "gate", gate, "--no-cache")
    assert code == EXIT_USAGE
    assert "Field 'candidate'" in err and "positive-ish" in err and "label-mapping change" in err


# --- checks (pure) ----------------------------------------------------------------------------

NAMES = ("negative", "neutral", "positive")


def synthetic(n=2000, accuracy=0.7, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(NAMES, size=n).astype(object)
    correct = rng.random(n) < accuracy
    wrong = np.array([NAMES[(NAMES.index(label) + 1) % 3] for label in y], dtype=object)
    return y, np.where(correct, y, wrong)


def gate_on(y, base_pred, cand_pred, thresholds, masks=None, batch_seconds=(1.0,)):
    def predictions(predicted):
        return Predictions(label_names=NAMES, predicted=np.asarray(predicted, dtype=object),
                           batch_seconds=np.array(batch_seconds), batch_sizes=np.array([len(y)]))

    dataset = Dataset(texts=tuple("x" * len(y)), labels=y, label_names=NAMES, columns={}, path=Path("d"),
                      text_col="text", label_col="label", fingerprint="f", empty_text_rows=())
    base, cand = predictions(base_pred), predictions(cand_pred)
    comparison = compare_predictions(y, base, cand, label_names=NAMES, slice_masks=masks or {}, n_resamples=500)
    return check_gate(comparison, evaluate(dataset, base), evaluate(dataset, cand), thresholds)


def inject(y, predicted, k, rows=None, seed=1):
    """Turn k correct predictions (optionally among ``rows``) wrong."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(predicted == y)
    if rows is not None:
        candidates = np.intersect1d(candidates, rows)
    out = predicted.copy()
    for row in rng.choice(candidates, size=k, replace=False):
        out[row] = NAMES[(NAMES.index(y[row]) + 2) % 3]
    return out


def test_identical_predictions_pass():
    y, pred = synthetic()
    result = gate_on(y, pred, pred, Thresholds())
    assert result.verdict == "pass" and result.exit_code == 0
    assert {c.name for c in result.checks} >= {"accuracy", "invalid labels", "p99 latency"}


def test_a_three_point_drop_fails_accuracy_with_its_interval():
    y, pred = synthetic()
    result = gate_on(y, pred, inject(y, pred, 60), Thresholds())
    accuracy = next(c for c in result.checks if c.name == "accuracy")
    assert result.verdict == "fail" and accuracy.status == "fail"
    assert accuracy.value == pytest.approx(-0.03)
    assert accuracy.ci_low < -0.03 < accuracy.ci_high < 0
    assert accuracy.p_value < 1e-10
    assert "accuracy" in result.summary and result.exit_code == 1


def test_require_significance_spares_a_drop_that_noise_explains():
    y, pred = synthetic(n=200)
    churned = inject(y, pred, 9)  # 9 correct -> wrong ...
    wrong_rows = np.flatnonzero(pred != y)[:4]
    churned[wrong_rows] = y[wrong_rows]  # ... and 4 wrong -> correct: -2.5 points, McNemar 9 vs 4
    plain = gate_on(y, pred, churned, Thresholds())
    accuracy = next(c for c in plain.checks if c.name == "accuracy")
    assert accuracy.value == pytest.approx(-0.025) and accuracy.status == "fail"
    significant = gate_on(y, pred, churned, Thresholds(require_significance=True))
    accuracy = next(c for c in significant.checks if c.name == "accuracy")
    assert accuracy.p_value > 0.05 and accuracy.status == "pass" and "not significant" in accuracy.reason


def test_non_inferiority_fails_when_the_interval_reaches_the_margin():
    y, pred = synthetic(n=300)
    small_drop = inject(y, pred, 3)  # -1 point: within 2, but the interval is wide at n=300
    assert gate_on(y, pred, small_drop, Thresholds()).verdict == "pass"
    result = gate_on(y, pred, small_drop, Thresholds(mode="non-inferiority"))
    accuracy = next(c for c in result.checks if c.name == "accuracy")
    assert accuracy.status == "fail" and "upper bound" in accuracy.rule
    assert gate_on(y, pred, pred, Thresholds(mode="non-inferiority", max_accuracy_drop=0.05)).verdict == "pass"


def test_slice_drop_fails_and_small_slices_warn():
    y, pred = synthetic()
    slice_rows = np.arange(200)
    mask = np.zeros(len(y), bool)
    mask[slice_rows] = True
    cand = inject(y, pred, 20, rows=slice_rows)  # -10 points in the slice, -1 overall
    tiny = np.zeros(len(y), bool)
    tiny[np.flatnonzero(cand != pred)[:10]] = True  # every example harmed, but only 10 of them
    tiny[np.flatnonzero(cand == pred)[:10]] = True
    result = gate_on(y, pred, cand, Thresholds(), masks={"domain": mask, "tiny": tiny})
    by_scope = {(c.name, c.scope): c for c in result.checks}
    assert by_scope[("accuracy", "overall")].status == "pass"
    assert by_scope[("slice accuracy", "domain")].status == "fail"
    assert result.verdict == "fail" and "'domain'" in result.summary
    tiny_check = by_scope[("slice accuracy", "tiny")]
    assert tiny_check.value < -0.4 and tiny_check.status == "warn" and "small slice" in tiny_check.reason
    assert any("'tiny' has 20 examples" in w for w in result.warnings)


def test_flip_rate_invalid_labels_and_latency_checks():
    y, pred = synthetic()
    cand = pred.copy()
    cand[:40] = "LABEL_1"
    result = gate_on(y, pred, cand, Thresholds(max_flip_rate=0.01, max_p99_latency_increase=0.25))
    by_name = {c.name: c for c in result.checks}
    assert by_name["invalid labels"].status == "fail" and by_name["invalid labels"].value == pytest.approx(0.02)
    assert by_name["flip rate"].status == "fail" and by_name["flip rate"].value == pytest.approx(0.02)
    slow = gate_on(y, pred, pred, Thresholds(), batch_seconds=(1.0,))
    assert next(c for c in slow.checks if c.name == "p99 latency").status == "pass"


def test_checks_skip_what_cannot_be_measured():
    y, pred = synthetic()
    result = gate_on(y, pred, pred, Thresholds(), masks={"empty": np.zeros(len(y), bool)})
    statuses = {(c.name, c.scope): c.status for c in result.checks}
    assert statuses[("ECE", "overall")] == "skip"  # no probabilities
    assert statuses[("slice accuracy", "empty")] == "skip"
    assert result.verdict == "pass"


# --- end to end -------------------------------------------------------------------------------


def test_gate_passes_on_itself_and_writes_three_reports(capsys, tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file, thresholds="max_flip_rate = 0.0")
    code, out, err = run(capsys, "gate", gate, "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"))
    assert code == EXIT_OK, err
    assert "PASS" in out and "interleaved" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["schema_version"] == 1 and report["verdict"] == "pass" and report["exit_code"] == 0
    assert report["latency"]["measurement"] == "interleaved"
    assert report["comparison"]["flips"]["flipped"] == 0
    assert (tmp_path / "out" / "report.md").read_text().startswith("## textgate: ✅ **Gate passed**")
    assert "<svg" in (tmp_path / "out" / "report.html").read_text()


def test_postmortem_settings_fail_with_exit_code_1(capsys, tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file, candidate='padding = "max_length"\nmax_length = 4',
                      thresholds="max_flip_rate = 0.02")
    code, out, err = run(capsys, "gate", gate, "--no-cache", "--format", "json")
    assert code == EXIT_GATE_FAILED, err
    report = json.loads(out)
    assert report["verdict"] == "fail" and report["exit_code"] == 1
    assert "flip rate" in report["summary"]
    assert report["example_flips"] and report["example_flips"][0]["text"] in TEXTS


def test_cache_recomputes_only_what_changed(capsys, tmp_path, tiny_model_dir, data_file):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    gate = write_gate(tmp_path, model, data_file)
    cache = str(tmp_path / "cache")
    assert run(capsys, "gate", gate, "--cache-dir", cache)[0] == EXIT_OK
    _, _, err = run(capsys, "gate", gate, "--cache-dir", cache)
    assert err.count("(predictions from cache)") == 2 and "interleaved" not in err
    # Changing only the candidate recomputes only the candidate.
    gate = write_gate(tmp_path, model, data_file, candidate="max_length = 32")
    _, _, err = run(capsys, "gate", gate, "--cache-dir", cache)
    assert err.count("(predictions from cache)") == 1 and "baseline: " in err
    # A changed file under the model folder invalidates its entries.
    config = json.loads((model / "config.json").read_text())
    config["textgate_test_note"] = "edited"
    (model / "config.json").write_text(json.dumps(config))
    _, _, err = run(capsys, "gate", gate, "--cache-dir", cache)
    assert "(predictions from cache)" not in err


def test_gate_on_saved_prediction_files(capsys, tmp_path, tiny_model_dir, data_file):
    preds = tmp_path / "base.parquet"
    assert run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(preds))[0] == EXIT_OK
    labels = tmp_path / "cand.txt"
    labels.write_text("\n".join(["LABEL_0"] * 5 + list(json.loads(line)["label"] for line in
                                 data_file.read_text().splitlines()[5:])) + "\n")
    gate = tmp_path / "files.toml"
    gate.write_text(f'[data]\npath = "{data_file}"\n[baseline]\npredictions = "{preds}"\n'
                    f'[candidate]\npredictions = "{labels}"\n')
    code, out, err = run(capsys, "gate", str(gate), "--format", "json", "--no-cache")
    assert code == EXIT_GATE_FAILED, err
    report = json.loads(out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["invalid labels"] == "fail" and statuses["p99 latency"] == "skip"
    assert report["latency"]["measurement"] == "separate"


def test_false_turns_a_check_off(tmp_path, tiny_model_dir, data_file):
    config = load_gate_config(write_gate(tmp_path, tiny_model_dir, data_file,
                                         thresholds="max_accuracy_drop = false\nmax_invalid_label_rate = false"))
    assert config.thresholds.max_accuracy_drop is None and config.thresholds.max_invalid_label_rate is None
    y, pred = synthetic()
    names = {c.name for c in gate_on(y, pred, pred, config.thresholds).checks}
    assert "accuracy" not in names and "invalid labels" not in names


def test_a_drop_of_exactly_the_threshold_passes():
    y, pred = synthetic()
    result = gate_on(y, pred, inject(y, pred, 40), Thresholds())  # exactly 2.0 points
    accuracy = next(c for c in result.checks if c.name == "accuracy")
    assert accuracy.value == pytest.approx(-0.02) and accuracy.status == "pass"
    assert gate_on(y, pred, inject(y, pred, 41), Thresholds()).verdict == "fail"
