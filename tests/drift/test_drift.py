"""textgate.drift: every check finds a planted shift and stays quiet on identical windows; the
statistics agree with scipy/scikit-learn (and the serve gauge's own); the drift file; the
report's JSON, Markdown and HTML; the CLI's exit codes and messages."""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest
from conftest import DEMO, LABELS

from textgate.cli import EXIT_OK, EXIT_USAGE, main
from textgate.drift import (
    CHECK_IDS,
    DriftConfig,
    DriftSettings,
    DriftWindow,
    detect_drift,
    load_drift_config,
)
from textgate.drift import stats as drift_stats
from textgate.drift.descriptors import describe_texts
from textgate.drift.html import render_drift_html
from textgate.drift.report import drift_report_dict, render_drift_markdown
from textgate.errors import ConfigError, DataError
from textgate.predictions import Predictions, save_predictions
from textgate.slices import SliceSpec

EXIT_DRIFT = 1
N = 400
WORDS = "i love hate this movie film good bad great game phone day night happy sad the a is was".split()
SLANG = SliceSpec(name="slang", kind="regex", pattern=r"\b(lol|omg)\b")


# --- synthetic windows ----------------------------------------------------------------------

def make_window(seed: int, *, n: int = N, plant: str | None = None) -> DriftWindow:
    """A window with every part a check needs; ``plant`` shifts one of them strongly."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(4, 12))))
        if rng.random() < 0.1:
            words.append("lol")
        if plant == "length":
            words += list(rng.choice(WORDS, size=10))
        if plant == "characters":
            words = [w * 3 for w in words]  # same word count, longer words (and elongated letters)
        extras = {"url": "https://t.co/x", "mention": "@user", "hashtag": "#win", "emoji": "\U0001F602",
                  "elongated": "soooo", "non_ascii": "caf\u00e9"}
        for key, token in extras.items():
            if rng.random() < (0.6 if plant == key else 0.1):
                words.append(token)
        if plant == "slice_share" and rng.random() < 0.5:
            words.append("omg")
        text = " ".join(words)
        if plant == "empty" and rng.random() < 0.3:
            text = "  "
        texts.append(text)
    label_p = [0.6, 0.2, 0.2] if plant == "true_labels" else [1 / 3] * 3
    labels = np.array(rng.choice(LABELS, size=n, p=label_p), dtype=object)
    predicted_p = [0.6, 0.2, 0.2] if plant == "predicted_labels" else [1 / 3] * 3
    predicted_ids = rng.choice(3, size=n, p=predicted_p)
    top = rng.uniform(0.4, 0.8 if plant == "confidence" else 1.0, size=n)
    probabilities = np.zeros((n, 3), dtype=np.float32)
    probabilities[np.arange(n), predicted_ids] = top
    for row, label in enumerate(predicted_ids):
        others = [j for j in range(3) if j != label]
        probabilities[row, others] = (1 - top[row]) / 2
    tokens = np.array([len(t.split()) + 2 for t in texts])
    truncated = rng.random(n) < (0.4 if plant == "truncation" else 0.02)
    predictions = Predictions(label_names=LABELS, predicted=np.array(LABELS, dtype=object)[predicted_ids],
                              probabilities=probabilities, token_counts=tokens, truncated=truncated)
    embeddings = rng.normal(size=(n, 16)).astype(np.float32)
    if plant == "embedding":
        embeddings[:, :4] += 1.0
    unknown = rng.random(n) < (0.5 if plant == "unknown_tokens" else 0.1)
    return DriftWindow(source=f"window-{seed}", kind="data", rows=n, texts=tuple(texts), labels=labels,
                       label_names=LABELS, predictions=predictions, embeddings=embeddings, unknown_tokens=unknown)


@pytest.fixture(scope="module")
def reference() -> DriftWindow:
    return make_window(1)


def check(report, check_id: str, scope: str = "overall"):
    return next(c for c in report.checks if c.id == check_id and c.scope == scope)


@pytest.mark.parametrize("check_id", sorted(CHECK_IDS))
def test_each_check_finds_a_planted_shift(reference, check_id):
    current = make_window(2, plant=check_id)
    report = detect_drift(reference, current, slices=(SLANG,))
    scope = "slang" if check_id == "slice_share" else "overall"
    found = check(report, check_id, scope)
    assert found.status == "drift", found.reason
    assert found.p_adjusted is not None and found.p_adjusted <= 0.05 and found.in_family
    assert report.verdict == "drift" and report.exit_code == 1
    assert report.summary.startswith("DRIFT: ")


@pytest.mark.parametrize("check_id", sorted(CHECK_IDS))
def test_each_check_stays_quiet_on_identical_distributions(reference, check_id):
    """The same rows in another order: every statistic is that of identical samples."""
    current = reference.take(np.random.default_rng(3).permutation(reference.rows))
    report = detect_drift(reference, current, slices=(SLANG,))
    scope = "slang" if check_id == "slice_share" else "overall"
    found = check(report, check_id, scope)
    assert found.status == "pass", found.reason
    if check_id != "embedding":  # a held-out classifier still sees different rows of each side
        assert found.effect == pytest.approx(0.0, abs=1e-12) or found.effect_name == "AUC"
    assert report.verdict == "no drift" and report.exit_code == 0
    assert report.summary.startswith("NO DRIFT: ")


def test_two_samples_of_one_distribution_raise_no_alarm(reference):
    report = detect_drift(reference, make_window(7), slices=(SLANG,))
    assert report.verdict == "no drift", [c.reason for c in report.drifted]
    assert report.family_size == sum(c.in_family for c in report.checks) > 20


def test_the_family_wise_rate_holds_on_many_null_windows():
    """Twenty A/A comparisons of small windows: Holm keeps alarms rare (<= 5% in expectation;
    a deterministic set of seeds, so this is a smoke test, benchmarks/ measures the rate)."""
    alarms = sum(detect_drift(make_window(100 + i, n=150), make_window(200 + i, n=150)).verdict == "drift"
                 for i in range(20))
    assert alarms <= 2


def test_missing_parts_skip_their_checks_with_a_reason(reference):
    bare = DriftWindow(source="texts only", kind="data", rows=reference.rows, texts=reference.texts)
    report = detect_drift(reference, bare)
    skipped = {c.id: c.reason for c in report.checks if c.status == "skip"}
    assert set(skipped) == {"predicted_labels", "true_labels", "confidence", "truncation", "unknown_tokens",
                            "embedding"}
    assert "on both sides" in skipped["confidence"]
    assert check(report, "length").name == "length (words)"  # no token counts on one side: words
    assert any("only one side has predictions" in n for n in report.notes)


def test_nothing_in_common_is_bad_input(reference):
    outputs = DriftWindow(source="p.parquet", kind="predictions", rows=10,
                          predictions=Predictions(label_names=LABELS, predicted=np.array(["neutral"] * 10,
                                                                                         dtype=object)))
    texts = DriftWindow(source="t.jsonl", kind="data", rows=3, texts=("a", "b", "c"))
    with pytest.raises(DataError, match="Nothing to compare"):
        detect_drift(outputs, texts)


def test_small_slices_skip_their_checks_but_keep_the_share_test(reference):
    rare = SliceSpec(name="rare", kind="regex", pattern=r"\bcaf")
    report = detect_drift(reference, make_window(2), slices=(rare,),
                          config=DriftConfig(thresholds={"min_slice_size": 60}))
    inside = [c for c in report.checks if c.scope == "rare"]
    assert check(report, "slice_share", "rare").status == "pass"
    assert all(c.status == "skip" and "min_slice_size 60" in c.reason for c in inside if c.id != "slice_share")


def test_skip_setting_and_effect_minimum(reference):
    current = make_window(2, plant="url")
    config = DriftConfig(settings=DriftSettings(skip=("emoji",)), thresholds={"min_rate_change": 0.9})
    report = detect_drift(reference, current, config=config)
    assert not any(c.id == "emoji" for c in report.checks)
    url = check(report, "url")
    assert url.status == "pass" and "below the minimum 0.9" in url.reason


def test_verdict_names_the_label_shift_first(reference):
    current = make_window(2, plant="true_labels")
    current = replace(current, texts=tuple(t + " #tag" for t in current.texts), descriptors=None)
    report = detect_drift(reference, current)
    assert report.summary.startswith("DRIFT: true labels shifted: negative")
    assert "also" in report.summary  # the largest other change is named too


# --- statistics -----------------------------------------------------------------------------

def test_categorical_test_is_pearsons_chi_squared_and_psi():
    from scipy.stats import chi2_contingency

    ref, cur = [300, 100, 100], [200, 150, 150]
    result = drift_stats.categorical_test(ref, cur)
    expected = chi2_contingency([ref, cur], correction=False)
    assert result.statistic == pytest.approx(expected.statistic) and result.p_value == pytest.approx(expected.pvalue)
    r, c = np.array(ref) / 500, np.array(cur) / 500
    assert result.effect == pytest.approx(np.sum((c - r) * np.log(c / r)))
    assert result.shift == pytest.approx(0.2)


def test_proportion_test_interval_covers_the_difference():
    result = drift_stats.proportion_test(20, 400, 80, 400)
    assert result.effect == pytest.approx(0.15)
    assert result.ci_low < 0.15 < result.ci_high and result.ci_low > 0.1
    assert result.p_value < 1e-8
    same = drift_stats.proportion_test(40, 400, 40, 400)
    assert same.p_value == pytest.approx(1.0) and same.ci_low < 0 < same.ci_high


def test_auc_test_is_roc_auc_with_a_delong_interval():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=300), rng.normal(0.5, size=200)
    result = drift_stats.auc_test(ref, cur)
    auc = roc_auc_score(np.r_[np.zeros(300), np.ones(200)], np.r_[ref, cur])
    assert result.effect == pytest.approx(auc)
    assert result.ci_low < auc < result.ci_high and result.ci_high - result.ci_low < 0.2
    assert result.p_value < 1e-4


def test_distribution_test_is_ks_with_wasserstein_and_welch():
    from scipy.stats import ks_2samp, wasserstein_distance

    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=500), rng.normal(0.3, size=400)
    result = drift_stats.distribution_test(ref, cur)
    assert result.effect == pytest.approx(ks_2samp(cur, ref).statistic)
    assert dict(result.extra)["wasserstein"] == pytest.approx(wasserstein_distance(ref, cur))
    assert result.ci_low < cur.mean() - ref.mean() < result.ci_high


def test_holm_adjustment():
    adjusted = drift_stats.holm_adjust([0.01, 0.04, 0.03, 0.5])
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_descriptors():
    d = describe_texts(["see https://x.co/a", "@user hi", "#win &#39;", "lol \U0001F602", "soooo good",
                        "www.site.com", "caf\u00e9", " \u200b ", "plain text"])
    assert d.url.tolist() == [True, False, False, False, False, True, False, False, False]
    assert d.mention.tolist()[:2] == [False, True]
    assert d.hashtag.tolist()[2] and not describe_texts(["it&#39;s"]).hashtag[0]
    assert d.emoji.tolist()[3] and sum(d.emoji) == 1
    assert d.elongated.tolist() == [False, False, False, False, True, False, False, False, False]  # not "www"
    assert d.non_ascii.tolist()[3] and d.non_ascii.tolist()[6]
    assert d.empty.tolist()[7] and sum(d.empty) == 1
    assert d.words.tolist()[-1] == 2 and d.characters.tolist()[-1] == 10


# --- the drift file -------------------------------------------------------------------------

def test_drift_file_reads_thresholds_settings_and_slices(tmp_path):
    path = tmp_path / "drift.toml"
    path.write_text('[[slice]]\nname = "slang"\nregex = "lol"\n\n[thresholds]\nalpha = 0.01\nmin_psi = false\n\n'
                    '[settings]\nskip = ["emoji"]\nseed = 3\n')
    config = load_drift_config(path)
    assert config.thresholds.alpha == 0.01 and config.thresholds.min_psi == 0.0
    assert config.settings.skip == ("emoji",) and config.slices[0].name == "slang"


@pytest.mark.parametrize(("text", "field", "message"), [
    ("[thresholds]\nalpha = 0.7\n", "thresholds.alpha", "less than 0.5"),
    ("[thresholds]\nmax_psi = 0.1\n", "thresholds.max_psi", "Allowed keys: alpha"),
    ("[settings]\nskip = [\"colour\"]\n", "settings.skip", "unknown check id 'colour'"),
    ("[settings]\nseed = true\n", "settings.seed", "valid integer"),
    ("[checks]\n", "checks", "Allowed keys: thresholds, settings, slice, length_buckets"),
    ("alpha = ", "--config", "not valid TOML"),
])
def test_drift_file_errors_name_the_field(tmp_path, text, field, message):
    path = tmp_path / "drift.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_drift_config(path)
    assert caught.value.field == field


# --- reports --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_document(reference):
    evil = SliceSpec(name='<script>alert(1)</script> & "q"', kind="regex", pattern="lol")
    return drift_report_dict(detect_drift(reference, make_window(2, plant="true_labels"), slices=(evil,)))


def test_report_json_schema(report_document):
    doc = json.loads(json.dumps(report_document, allow_nan=False))
    assert doc["kind"] == "textgate.drift" and doc["schema_version"] == 1
    assert doc["verdict"] == "drift" and doc["exit_code"] == 1 and doc["summary"].startswith("DRIFT")
    assert {"reference", "current", "config", "multiple_testing", "checks", "slices", "histograms", "notes",
            "hardware", "created"} <= set(doc)
    assert doc["multiple_testing"]["method"] == "holm" and doc["multiple_testing"]["alpha"] == 0.05
    fields = {"id", "name", "scope", "status", "reason", "test", "statistic", "p_value", "p_adjusted", "effect_name",
              "effect", "threshold", "ci_low", "ci_high", "reference", "current", "shift", "counts", "in_family",
              "reference_n", "current_n"}
    assert all(fields <= set(c) for c in doc["checks"])
    labels = next(c for c in doc["checks"] if c["id"] == "true_labels" and c["scope"] == "overall")
    assert [c["category"] for c in labels["counts"]] == list(LABELS)
    assert sum(c["reference"] for c in labels["counts"]) == N
    assert doc["histograms"][0]["id"] == "confidence" and sum(doc["histograms"][0]["current"]) == N


def test_markdown_and_html_reports(report_document):
    markdown = render_drift_markdown(report_document)
    assert markdown.startswith("## textgate drift: ⚠️ **Drift**") and "### Checks" in markdown
    page = render_drift_html(report_document)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 4  # label shares (true labels, predicted labels), confidence, rates
    for svg in svgs:
        root = ET.fromstring(svg)
        width, height = float(root.get("width")), float(root.get("height"))
        for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
            x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
            assert 0 <= x and x + w <= width + 1 and 0 <= y and y + h <= height + 1
        for line in root.iter("{http://www.w3.org/2000/svg}line"):
            assert all(0 <= float(line.get(k)) <= width + 1 for k in ("x1", "x2"))
            assert all(0 <= float(line.get(k)) <= height + 1 for k in ("y1", "y2"))
        for text in root.iter("{http://www.w3.org/2000/svg}text"):  # labels start inside the figure
            assert 0 <= float(text.get("x")) <= width and 0 <= float(text.get("y")) <= height


# --- the CLI --------------------------------------------------------------------------------

def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_val_vs_test_says_the_label_shift_plainly(capsys, tmp_path):
    code, out, err = run(capsys, "drift", str(DEMO / "val.jsonl"), str(DEMO / "test.jsonl"),
                         "--slices", str(DEMO / "slices.toml"), "--out-dir", str(tmp_path / "out"))
    assert code == EXIT_DRIFT, err
    first = out.splitlines()[0]
    assert first.startswith("DRIFT: true labels shifted: negative 15.6% → 32.3%, positive 40.9% → 19.3%"), first
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verdict"] == "drift" and report["reference"]["rows"] == 2000 and report["current"]["rows"] == 12284
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.json", "report.md", "report.html"}


def test_cli_identical_files_exit_0(capsys, tmp_path):
    path = tmp_path / "same.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_window(5, n=120).texts))
    code, out, err = run(capsys, "drift", str(path), str(path), "--format", "json")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["verdict"] == "no drift" and doc["exit_code"] == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["missing.jsonl", "{data}"], "Dataset file missing.jsonl does not exist"),
    (["{data}", "{data}", "--config", "nope.toml"], "Drift file nope.toml does not exist"),
    (["{data}", "{data}", "--slice", "noname"], "must be NAME=REGEX"),
    (["{data}", "{bad}"], "not valid JSON"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, message):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "hello there"}\n{"text": "lol omg"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    args = [a.format(data=data, bad=bad) for a in argv]
    code, out, err = run(capsys, "drift", *args)
    assert code == EXIT_USAGE and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_cli_bad_config_names_the_field(capsys, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "hello there"}\n')
    config = tmp_path / "drift.toml"
    config.write_text("[thresholds]\nalpha = 2\n")
    code, _, err = run(capsys, "drift", str(data), str(data), "--config", str(config))
    assert code == EXIT_USAGE and "Field 'thresholds.alpha'" in err


def test_cli_with_a_model_and_with_predictions_files(capsys, tiny_model_dir, tmp_path):
    rng = np.random.default_rng(0)
    words = "i love hate this movie good bad great game lol omg meh".split()
    for name, extra in (("ref.jsonl", ""), ("cur.jsonl", " sucks sucks fire")):
        rows = [{"text": " ".join(rng.choice(words, size=6)) + extra, "label": LABELS[i % 3]} for i in range(80)]
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run(capsys, "drift", str(tmp_path / "ref.jsonl"), str(tmp_path / "cur.jsonl"), "--model",
                         str(tiny_model_dir), "--format", "json", "--no-progress")
    assert code in (EXIT_OK, EXIT_DRIFT), err
    doc = json.loads(out)
    ran = {c["id"] for c in doc["checks"] if c["status"] != "skip"}
    assert {"predicted_labels", "true_labels", "confidence", "truncation", "length", "unknown_tokens",
            "embedding"} <= ran
    assert doc["reference"]["embeddings"] and doc["current"]["predictions"]
    from textgate.infer import predict
    from textgate.model import ModelSpec, load_classifier

    classifier = load_classifier(ModelSpec(model=str(tiny_model_dir)))
    for name in ("ref", "cur"):
        texts = [json.loads(line)["text"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        save_predictions(predict(classifier, texts, progress=False), tmp_path / f"{name}.parquet")
    code, out, err = run(capsys, "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"),
                         "--format", "json")
    assert code in (EXIT_OK, EXIT_DRIFT), err
    doc = json.loads(out)
    assert doc["reference"]["kind"] == "predictions"
    skipped = {c["id"] for c in doc["checks"] if c["status"] == "skip"}
    assert {"url", "characters", "embedding", "true_labels"} <= skipped
    assert check_by_id(doc, "length")["name"] == "length (tokens)"


def check_by_id(doc: dict, check_id: str) -> dict:
    return next(c for c in doc["checks"] if c["id"] == check_id and c["scope"] == "overall")


def test_the_documented_drift_file_is_valid(tmp_path):
    """The example in textgate.drift.config's docstring is a drift file that loads."""
    from textgate.drift import config as module

    example = module.__doc__.split("Every key is optional.", 1)[1].split("A check drifts", 1)[0]
    path = tmp_path / "drift.toml"
    path.write_text(textwrap.dedent(example))
    config = load_drift_config(path)
    assert config.settings.skip == ("emoji",) and [s.name for s in config.slices][0] == "slang"
    assert len(config.slices) == 4  # slang and three length buckets
