"""textgate gate: config validation, the checks and verdict, the cache, and the CLI end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import LABELS

from textgate.cli import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, main
from textgate.errors import ConfigError
from textgate.evaluation.registry import metric_info
from textgate.gate import Thresholds, check_gate, load_gate_config
from textgate.gate.compare import compare_predictions
from textgate.gate.config import RENAMED_THRESHOLDS, THRESHOLD_METRICS
from textgate.latency import BatchTimings, compare_latency
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
max_latency_increase = 10
{thresholds}

[settings]
bootstrap_resamples = 200
latency_texts = 40
latency_rounds = 2
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
        ({"candidate": "calibration = 3"}, r"Field 'candidate.calibration'.*valid string"),
        ({"candidate": 'colour = "red"'}, r"Field 'candidate.colour'.*unknown key.*calibration, lock"),
        ({"extra": 'colour = "red"'}, r"Unknown key 'colour'.*allowed top-level keys"),
    ],
)
def test_config_errors_name_the_field(tmp_path, tiny_model_dir, data_file, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_gate_config(write_gate(tmp_path, tiny_model_dir, data_file, **kwargs))


def test_a_bad_side_key_exits_2_naming_the_field(capsys, tmp_path, tiny_model_dir, data_file):
    code, _, err = run(capsys, "gate", write_gate(tmp_path, tiny_model_dir, data_file, candidate="lock = 3"))
    assert code == EXIT_USAGE and "Field 'candidate.lock'" in err


def test_side_paths_resolve_relative_to_the_file_that_names_them(tmp_path, tiny_model_dir, data_file):
    """Keys from a spec file are relative to it; inline keys, overrides included, to the gate file."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "model.toml").write_text(
        f'model = "{tiny_model_dir}"\ncalibration = "cal.toml"\nlock = "textgate.lock"\n')
    gate = tmp_path / "gate.toml"
    gate.write_text(f'[data]\npath = "{data_file}"\n[baseline]\nspec = "specs/model.toml"\n'
                    '[candidate]\nspec = "specs/model.toml"\ncalibration = "mine/cal.toml"\nlock = "mine/textgate.lock"\n'
                    'dtype = "bfloat16"\n')
    config = load_gate_config(gate)
    base, cand = config.model_spec("baseline"), config.model_spec("candidate")
    specs, mine = (tmp_path / "specs").resolve(), (tmp_path / "mine").resolve()
    assert (base.calibration, base.lock, base.dtype) == (str(specs / "cal.toml"), str(specs / "textgate.lock"),
                                                         "float32")
    assert (cand.calibration, cand.lock, cand.dtype) == (str(mine / "cal.toml"), str(mine / "textgate.lock"),
                                                         "bfloat16")
    assert base.model == cand.model == str(tiny_model_dir)


def test_calibration_and_lock_in_a_gate_side_are_applied(capsys, tmp_path, tiny_model_copy, data_file):
    from textgate.calibrate import calibrate_temperature, write_calibration_file
    from textgate.lock import build_lock, write_lock
    from textgate.model import ModelSpec, identify_model

    plain = ModelSpec(model=str(tiny_model_copy))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) * 3
    logits[np.arange(300), y] += 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    fitted = calibrate_temperature(np.array(LABELS, dtype=object)[y], p, label_names=LABELS, n_resamples=100)
    write_calibration_file(tmp_path / "cal.toml", fitted, model_fingerprint=identify_model(plain).fingerprint,
                           label_names=LABELS, data_path="fit.jsonl", data_fingerprint="ab")
    calibrated = plain.model_copy(update={"calibration": str(tmp_path / "cal.toml")})
    write_lock(build_lock(calibrated, lock_dir=tmp_path), tmp_path / "textgate.lock")  # pins the calibration too
    gate = write_gate(tmp_path, tiny_model_copy, data_file, candidate='calibration = "cal.toml"\nlock = "textgate.lock"')
    code, out, err = run(capsys, "gate", gate, "--no-cache", "--no-latency", "--format", "json")
    assert code in (EXIT_OK, EXIT_GATE_FAILED), err
    report = json.loads(out)
    assert report["candidate"]["settings"]["model"]["temperature"] == pytest.approx(fitted.temperature)
    assert report["candidate"]["model_fingerprint"] != report["baseline"]["model_fingerprint"]
    weights = tiny_model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # the baseline has no lock and still loads
    code, _, err = run(capsys, "gate", gate, "--no-cache", "--no-latency")
    assert code == EXIT_USAGE and "model.safetensors" in err and "textgate.lock" in err


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
                      candidate='override_id2label = true\n[candidate.label_map]\n0 = "negative"\n1 = "neutral"\n'
                                '2 = "positive-ish"')
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


def gate_on(y, base_pred, cand_pred, thresholds, masks=None, latency=None, latency_cause=None):
    def predictions(predicted):
        return Predictions(label_names=NAMES, predicted=np.asarray(predicted, dtype=object))

    base, cand = predictions(base_pred), predictions(cand_pred)
    comparison = compare_predictions(y, base, cand, label_names=NAMES, slice_masks=masks or {}, n_resamples=500)
    return check_gate(comparison, thresholds, latency=latency, latency_skipped=None if latency else "no timings",
                      latency_cause=latency_cause)


def synthetic_latency(slowdown, *, rounds=5, batches=8, noise=0.03, seed=0):
    """Timings of two sides on the same batches: the candidate ``slowdown`` times the baseline's
    cost, each batch and round with multiplicative noise, one round hit by a slow spell."""
    rng = np.random.default_rng(seed)
    sizes = np.full(batches, 32)
    cost = rng.uniform(0.05, 0.2, size=batches)  # seconds per batch: long and short batches
    def side(factor):
        seconds = factor * cost * rng.lognormal(0, noise, size=(rounds, batches))
        seconds[rounds // 2] *= 3  # a slow spell of the machine hits one round
        return BatchTimings(seconds, sizes)
    return compare_latency(side(1.0), side(slowdown), n_resamples=500)


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
    assert {c.name for c in result.checks} >= {"accuracy", "invalid labels", "latency per text"}


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
    result = gate_on(y, pred, cand, Thresholds(max_flip_rate=0.01, max_latency_increase=0.25))
    by_name = {c.name: c for c in result.checks}
    assert by_name["invalid labels"].status == "fail" and by_name["invalid labels"].value == pytest.approx(0.02)
    assert by_name["flip rate"].status == "fail" and by_name["flip rate"].value == pytest.approx(0.02)
    assert by_name["latency per text"].status == "skip" and by_name["latency per text"].reason == "no timings"


def latency_check(result):
    return next(c for c in result.checks if c.name == "latency per text")


@pytest.mark.parametrize(("slowdown", "status"), [(1.0, "pass"), (1.1, "pass"), (1.5, "fail"), (7.0, "fail")])
def test_latency_check_on_synthetic_timings(slowdown, status):
    y, pred = synthetic()
    latency = synthetic_latency(slowdown)
    check = latency_check(gate_on(y, pred, pred, Thresholds(max_latency_increase=0.25), latency=latency))
    assert check.status == status
    assert check.value == pytest.approx(slowdown - 1, abs=0.05)  # the slow round does not move the median
    assert check.ci_low <= check.value <= check.ci_high
    assert "timed in this run" in check.reason


def test_latency_check_names_the_likely_cause_only_when_it_fails():
    y, pred = synthetic()
    cause = "candidate runs in bfloat16: bfloat16 is emulated on this CPU"
    failed = latency_check(gate_on(y, pred, pred, Thresholds(), latency=synthetic_latency(7.0), latency_cause=cause))
    assert failed.status == "fail" and failed.reason.endswith("Likely cause: " + cause)
    passed = latency_check(gate_on(y, pred, pred, Thresholds(), latency=synthetic_latency(1.0), latency_cause=cause))
    assert passed.status == "pass" and "Likely cause" not in passed.reason


def test_latency_check_follows_the_mode():
    y, pred = synthetic()
    significance = Thresholds(max_latency_increase=0.25, require_significance=True)
    assert latency_check(gate_on(y, pred, pred, significance, latency=synthetic_latency(1.5))).status == "fail"
    assert latency_check(gate_on(y, pred, pred, significance, latency=synthetic_latency(1.0))).status == "pass"
    margin = Thresholds(max_latency_increase=0.25, mode="non-inferiority")
    assert latency_check(gate_on(y, pred, pred, margin, latency=synthetic_latency(1.2, noise=0.3))).status == "fail"
    assert latency_check(gate_on(y, pred, pred, margin, latency=synthetic_latency(1.0))).status == "pass"


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED_THRESHOLDS.items()))
def test_a_renamed_threshold_key_is_still_read_with_a_warning_naming_the_new_one(old, new):
    with pytest.warns(FutureWarning, match=f"'{old}' is deprecated.*now '{new}'"):
        assert getattr(Thresholds(**{old: 0.015}), new) == 0.015
    with pytest.warns(FutureWarning, match=new):
        assert getattr(Thresholds(**{old: False}), new) is None
    with pytest.raises(ValueError, match=f"'{old}' is the old name of '{new}'; give only '{new}'"):
        Thresholds(**{old: 0.1, new: 0.1})


def test_a_gate_file_with_an_old_threshold_key_loads_with_a_warning(tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file, thresholds="max_ece_increase = 0.03")
    with pytest.warns(FutureWarning, match="'max_ece_increase' is deprecated.*'max_ece_equal_width_increase'"):
        config = load_gate_config(gate)
    assert config.thresholds.max_ece_equal_width_increase == 0.03
    both = write_gate(tmp_path, tiny_model_dir, data_file,
                      thresholds="max_ece_increase = 0.03\nmax_ece_equal_width_increase = 0.03")
    with pytest.raises(ConfigError, match=r"Field 'thresholds' .*give only 'max_ece_equal_width_increase'"):
        load_gate_config(both)


def test_the_cli_says_a_renamed_threshold_key_in_one_line(capsys, tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file)
    (tmp_path / "gate.toml").write_text((tmp_path / "gate.toml").read_text().replace("max_latency", "max_p99_latency"))
    code, _, err = run(capsys, "gate", gate, "--no-cache", "--no-latency")
    assert code == EXIT_OK, err
    assert "textgate: warning: Threshold 'max_p99_latency_increase' is deprecated" in err
    assert "now 'max_latency_increase'" in err and "FutureWarning" not in err


def test_every_threshold_limits_a_registry_metric_in_its_direction():
    limits = {name for name in Thresholds.model_fields if name.startswith("max_")}
    assert set(THRESHOLD_METRICS) == limits
    for key, metric in THRESHOLD_METRICS.items():
        info = metric_info(metric)
        assert info.unit and info.direction
        if key.endswith("_drop"):
            assert info.direction == "higher", key
        else:  # an increase or a level: a rate, a shift, a cost
            assert info.direction == "lower", key
    assert not set(RENAMED_THRESHOLDS) & limits and set(RENAMED_THRESHOLDS.values()) <= limits


def test_every_gate_check_id_is_a_registry_metric_with_a_direction_and_unit():
    y, pred = synthetic()
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=len(y)).astype(np.float32)

    def predictions(predicted):
        return Predictions(label_names=NAMES, predicted=np.asarray(predicted, dtype=object),
                           probabilities=probabilities)

    mask = np.zeros(len(y), bool)
    mask[:100] = True
    comparison = compare_predictions(y, predictions(pred), predictions(inject(y, pred, 30)), label_names=NAMES,
                                     slice_masks={"first": mask, "none": np.zeros(len(y), bool)}, n_resamples=200)
    every = Thresholds(**{key: 0.5 for key in THRESHOLD_METRICS})
    checks = check_gate(comparison, every, latency=synthetic_latency(1.0)).checks
    assert {c.metric.partition(":")[0] for c in checks} == set(THRESHOLD_METRICS.values())
    for check in checks:
        info = metric_info(check.metric)
        assert info.direction in ("higher", "lower") and info.unit
        assert check.name == (info.label if check.scope == "overall" else f"slice {info.label}")
        assert check.value_is == "ratio" if info.unit == "ms" else check.value_is in ("change", "level")


def test_checks_skip_what_cannot_be_measured():
    y, pred = synthetic()
    result = gate_on(y, pred, pred, Thresholds(), masks={"empty": np.zeros(len(y), bool)})
    statuses = {(c.name, c.scope): c.status for c in result.checks}
    assert statuses[("ECE equal-width", "overall")] == "skip"  # no probabilities
    assert statuses[("slice accuracy", "empty")] == "skip"
    assert result.verdict == "pass"


# --- end to end -------------------------------------------------------------------------------


def test_gate_passes_on_itself_and_writes_three_reports(capsys, tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file, thresholds="max_flip_rate = 0.0")
    code, out, err = run(capsys, "gate", gate, "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"))
    assert code == EXIT_OK, err
    assert "PASS" in out and "interleaved" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["schema_version"] == 3 and report["verdict"] == "pass" and report["exit_code"] == 0
    assert report["latency"]["measured"] == "in this run, interleaved"
    assert report["latency"]["texts"] == 32 and report["latency"]["rounds"] == 2  # 2 windows of 16
    assert len(report["latency"]["baseline_batch_ms"]) == 2 * report["latency"]["baseline_batches"]
    assert report["hardware"]["cpu_model"] and report["hardware"]["bf16"] in ("native", "emulated")
    assert report["baseline"]["settings"]["hardware"]["cpu_capability"] == report["hardware"]["cpu_capability"]
    assert "machine: " in (tmp_path / "out" / "report.md").read_text()
    assert all(metric_info(c["metric"]) and c["value_is"] in ("change", "ratio", "level") for c in report["checks"])
    assert "| ECE equal-width |" in (tmp_path / "out" / "report.md").read_text()
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
    code, out, err = run(capsys, "gate", gate, "--cache-dir", cache, "--format", "json")
    assert err.count("(predictions from cache)") == 2 and "running baseline and candidate" not in err
    # Cached predictions, but latency is still timed in this run, on this machine.
    assert "timing both models on 32 texts" in err and json.loads(out)["latency"]["skipped"] is None
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
    assert statuses["invalid labels"] == "fail" and statuses["latency per text"] == "skip"
    assert "predictions file" in report["latency"]["skipped"]


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


def test_timing_windows_are_neighbours_in_length_from_every_stratum():
    from textgate.latency import timing_windows

    counts = np.random.default_rng(0).integers(5, 100, size=2000)
    rows, groups = timing_windows(counts, 128, window=16, seed=3)
    assert len(rows) == 128 and len(set(rows)) == 128 and set(groups) == set(range(8))
    order = np.argsort(counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    for g in range(8):
        ranks = np.sort(rank[rows[groups == g]])
        assert np.all(np.diff(ranks) == 1)  # a run of neighbours in length
        assert g * 250 <= ranks[0] and ranks[-1] < (g + 1) * 250  # inside its stratum
    small_rows, small_groups = timing_windows(counts[:20], 128, window=16)
    assert sorted(small_rows) == list(range(20)) and small_groups.max() == 0


def test_no_latency_skips_timing_and_says_so(capsys, tmp_path, tiny_model_dir, data_file):
    gate = write_gate(tmp_path, tiny_model_dir, data_file)
    cache = str(tmp_path / "cache")
    assert run(capsys, "gate", gate, "--cache-dir", cache)[0] == EXIT_OK  # fills the cache
    code, out, err = run(capsys, "gate", gate, "--cache-dir", cache, "--no-latency", "--format", "json")
    assert code == EXIT_OK, err
    report = json.loads(out)
    assert {c["name"]: c["status"] for c in report["checks"]}["latency per text"] == "skip"
    assert "--no-latency" in report["latency"]["skipped"]
    assert "timing both models" not in err
    assert err.count("baseline:") == 1 and "(predictions from cache)" in err  # no model loaded for timing
