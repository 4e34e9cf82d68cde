"""render_gate_html: one self-contained, escaped HTML page for a gate report, and (slow) a real
headless Chromium that lays it out without script errors."""

from __future__ import annotations

import copy
import random
import re
import shutil
import subprocess

import pytest

from textgate.gate.html import render_gate_html

LABELS = ["negative", "neutral", "positive"]
EVIL = '<script>alert(1)</script> & "quotes"'
CHROMIUM = "/usr/bin/chromium"


def _reliability(seed: int) -> list[dict]:
    rng = random.Random(seed)
    bins = []
    for i in range(15):
        lower, upper = i / 15, (i + 1) / 15
        count = 0 if upper <= 1 / 3 else rng.randint(5, 300)  # top-label confidence is never below 1/3
        middle = (lower + upper) / 2
        bins.append({"lower": lower, "upper": upper, "count": count,
                     "mean_confidence": middle if count else None,
                     "accuracy": min(1.0, middle + rng.uniform(-0.12, 0.05)) if count else None})
    return bins


def _evaluation(accuracy: float, confusion: list[list[int]], seed: int, base_ms: float) -> dict:
    return {
        "metrics": {"n": 2000, "accuracy": accuracy, "label_names": LABELS, "confusion": confusion},
        "calibration": {"ece_equal_width": {"value": 0.0187 + seed / 100, "estimator": "15 equal-width bins"},
                        "reliability": _reliability(seed)},
        "latency": {"batch_ms": {"p50": base_ms, "p95": base_ms * 1.25, "p99": base_ms * 1.32}},
    }


def _accuracy(baseline: float, candidate: float, ci: tuple[float, float], n: int) -> dict:
    return {"name": "accuracy", "baseline": baseline, "candidate": candidate, "delta": candidate - baseline,
            "ci_low": ci[0], "ci_high": ci[1], "higher_is_better": True, "n": n}


def _check(name, scope, metric, baseline, candidate, value, ci, p, threshold, rule, status, reason) -> dict:
    return {"name": name, "scope": scope, "metric": metric, "baseline": baseline, "candidate": candidate,
            "value": value, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "p_value": p,
            "threshold": threshold, "rule": rule, "status": status, "reason": reason}


def sample_gate_report() -> dict:
    """A failing gate report as docs/gate-report.md describes it: 3 labels, a failing slice."""
    rng = random.Random(0)
    flips = {"n": 2000, "flipped": 310, "flip_rate": 0.155, "harmful": 260, "harmful_rate": 0.13,
             "beneficial": 43, "beneficial_rate": 0.0215, "other": 7, "matrix_labels": LABELS,
             "matrix": [[300, 40, 12], [90, 650, 60], [20, 88, 740]], "example_rows": [17, 4, 99]}
    mcnemar = {"baseline_only_correct": 260, "candidate_only_correct": 43, "discordant": 303,
               "p_value": 1.3e-30, "p_exact": 1.1e-30, "method": "mid-p binomial"}
    return {
        "schema_version": 1, "kind": "textgate.gate", "created": "2026-11-25T03:30:00+00:00",
        "verdict": "fail", "exit_code": 1,
        "summary": "FAIL: 2 of 5 checks failed (slice 'slang' accuracy, flip rate)",
        "config": {"path": "examples/tweet-sentiment/gate-postmortem.toml",
                   "thresholds": {"max_accuracy_drop": 0.02, "max_slice_accuracy_drop": 0.05, "max_flip_rate": 0.1,
                                  "max_latency_p95_increase": 0.2},
                   "mode": "threshold", "require_significance": False, "alpha": 0.05, "min_slice_size": 30,
                   "bootstrap_resamples": 2000, "seed": 0},
        "data": {"path": "examples/tweet-sentiment/test.jsonl", "rows": 2000, "label_names": LABELS,
                 "fingerprint": "ab12" * 16, "texts_fingerprint": "cd34" * 16},
        "baseline": {"description": "ModelSpec file model.toml (float32)", "source": "model",
                     "model_fingerprint": "f00d", "settings": {"model": {"dtype": "float32"}}, "cached": False},
        "candidate": {"description": "ModelSpec file candidate.toml (int8 <dynamic>)", "source": "model",
                      "model_fingerprint": "beef", "settings": {"model": {"dtype": "int8"}}, "cached": False},
        "checks": [
            _check("accuracy", "overall", "accuracy", 0.7185, 0.709, -0.0095, (-0.018, -0.001), 0.031, 0.02,
                   "drop <= 0.02", "pass", "accuracy fell 0.9 points [0.1, 1.8], within the 2.0 allowed"),
            _check("slice accuracy", "slang", "accuracy", 0.697, 0.409, -0.288, (-0.36, -0.21), 1.2e-9, 0.05,
                   "drop <= 0.05", "fail", "accuracy fell 28.8 points [21.0, 36.0], more than the 5.0 allowed"),
            _check("slice accuracy", "emoji 😀 <3", "accuracy", 0.74, 0.73, -0.01, (-0.04, 0.02), 0.62, 0.05,
                   "drop <= 0.05", "pass", "accuracy fell 1.0 points [-2.0, 4.0], within the 5.0 allowed"),
            _check("flip rate", "overall", "flip_rate", None, None, 0.155, (0.14, 0.17), None, 0.1,
                   "flip rate <= 0.10", "fail", "15.5% of predictions changed, more than the 10.0% allowed"),
            _check("latency p95", "overall", "latency_p95_batch_ms", 602.3, 640.0, 0.0626, None, None, 0.2,
                   "increase <= 20%", "warn", "p95 batch latency rose 6.3%"),
        ],
        "comparison": {
            "n": 2000, "label_names": LABELS,
            "bootstrap": "paired bootstrap, 2000 resamples, seed 0, 95% percentile interval",
            "metrics": [_accuracy(0.7185, 0.709, (-0.018, -0.001), 2000),
                        {"name": "macro_f1", "baseline": 0.70, "candidate": 0.69, "delta": -0.01, "ci_low": -0.02,
                         "ci_high": 0.0, "higher_is_better": True, "n": 2000}],
            "mcnemar": mcnemar, "flips": flips,
            "label_shift": {"labels": LABELS, "baseline_share": [0.186, 0.39, 0.424],
                            "candidate_share": [0.205, 0.389, 0.406], "delta": [0.019, -0.001, -0.018],
                            "total_variation": 0.019},
            "slices": [
                {"name": "slang", "size": 66, "accuracy": _accuracy(0.697, 0.409, (-0.36, -0.21), 66),
                 "flips": flips, "mcnemar": mcnemar, "note": ""},
                {"name": "emoji 😀 <3", "size": 120, "accuracy": _accuracy(0.74, 0.73, (-0.04, 0.02), 120),
                 "flips": flips, "mcnemar": mcnemar, "note": ""},
            ],
        },
        "evaluations": {
            "baseline": _evaluation(0.7185, [[218, 76, 18], [125, 605, 139], [29, 176, 614]], 0, 478.5),
            "candidate": _evaluation(0.709, [[230, 70, 12], [140, 590, 139], [35, 185, 599]], 1, 492.0),
        },
        "latency": {
            "measured": "in this run, interleaved", "skipped": None, "texts": 200, "rounds": 5,
            "baseline_batch_ms": [rng.gauss(480, 50) for _ in range(40)],
            "candidate_batch_ms": [rng.gauss(495, 60) for _ in range(40)],
            "baseline_ms_per_text": 3.81, "candidate_ms_per_text": 3.92,
            "baseline_round_ms": [3.8, 3.81, 3.79, 3.9, 3.82], "candidate_round_ms": [3.9, 3.92, 3.93, 4.0, 3.91],
        },
        "hardware": {"cpu_model": "AMD EPYC", "machine": "x86_64", "cpu_capability": "AVX2", "bf16": "emulated",
                     "bf16_reason": "the CPU has no AVX512-BF16 or AMX-BF16 instructions", "threads": 2,
                     "isa_cap": None},
        "notes": ["candidate runs in bfloat16: bfloat16 is emulated on this CPU"],
        "example_flips": [
            {"row": 17, "text": EVIL, "label": "positive", "baseline": "positive", "candidate": "neutral",
             "kind": "harmful"},
            {"row": 4, "text": "omg this is fire lol https://t.co/xyz", "label": "positive", "baseline": "positive",
             "candidate": "negative", "kind": "harmful"},
            {"row": 99, "text": "meh. it's ok I guess", "label": "neutral", "baseline": "negative",
             "candidate": "neutral", "kind": "beneficial"},
        ],
        "warnings": ["slice 'rare' has 12 examples (< min_slice_size 30): its checks warn instead of fail"],
    }


def minimal_gate_report() -> dict:
    """The least a valid report carries: no calibration, no latency samples, no slices or examples."""
    return {
        "schema_version": 1, "kind": "textgate.gate", "created": "2026-11-25T03:30:00+00:00",
        "verdict": "pass", "exit_code": 0, "summary": "PASS: 1 of 1 checks passed",
        "checks": [_check("accuracy", "overall", "accuracy", 0.8, 0.81, 0.01, None, 0.5, 0.02, "drop <= 0.02",
                          "pass", "accuracy rose 1.0 points")],
        "comparison": {"metrics": [_accuracy(0.8, 0.81, (-0.01, 0.03), 10)],
                       "flips": {"n": 10, "flipped": 1, "flip_rate": 0.1},
                       "mcnemar": {"p_value": 1.0}, "label_shift": None, "slices": []},
        "evaluations": {"baseline": {"metrics": {"accuracy": 0.8}, "calibration": None},
                        "candidate": {"metrics": {"accuracy": 0.81}}},
        "latency": {"measured": "skipped", "skipped": "the baseline is a predictions file"},
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render_gate_html(sample_gate_report())


def test_page_is_one_self_contained_html5_file(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "<link" not in page and "<img" not in page and "@import" not in page and "url(" not in page
    assert not re.search(r"\b(src|href)\s*=", page)
    # The only absolute URL allowed is the SVG namespace; the tweet's link is escaped user text.
    assert set(re.findall(r"https?://[^\s\"<]+", page)) <= {"http://www.w3.org/2000/svg", "https://t.co/xyz"}
    assert "default-src 'none'" in page  # the CSP forbids every fetch
    assert page.count("<script>") == 1
    assert len(page.encode()) < 1_000_000


def test_user_text_is_escaped(page):
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "emoji 😀 &lt;3" in page and "emoji 😀 <3" not in page
    assert "int8 &lt;dynamic&gt;" in page


def test_sections_in_order_with_verdict_first(page):
    positions = [page.index(f'id="{name}"') for name in ("verdict", "checks", "plots", "flips", "examples",
                                                         "warnings")]
    assert positions == sorted(positions)
    assert '<section class="banner fail" id="verdict">' in page and ">FAIL</span>" in page
    assert "FAIL: 2 of 5 checks failed" in page and "2,000 rows" in page


def test_checks_sorted_by_status_and_formatted(page):
    table = page[page.index('id="checks"'):page.index('id="plots"')]
    statuses = re.findall(r'<span class="badge (\w+)">', table)
    assert statuses == ["fail", "fail", "warn", "pass", "pass"]
    assert "-28.8 pts" in table and "[-36.0, -21.0]" in table  # accuracy deltas in points
    assert "69.7%" in table and "40.9%" in table  # metric values in percent
    assert "1.2e-09" in table and "0.031" in table  # small p-values in scientific notation
    assert "+6.3%" in table and "602.3 ms" in table  # latency: relative increase, sides in ms
    assert "15.5%" in table  # flip rate is a rate, not a delta


def test_check_cells_follow_value_is_and_the_registry_unit():
    from textgate.gate.html import _check_cells

    ece = {"metric": "ece_equal_width", "baseline": 0.02, "candidate": 0.035, "value": 0.015, "value_is": "change",
           "ci_low": 0.01, "ci_high": 0.02}
    before_schema_3 = {**{k: v for k, v in ece.items() if k != "value_is"}, "metric": "ece"}  # the old id
    assert _check_cells(ece) == _check_cells(before_schema_3) == ("2.0%", "3.5%", "+1.5 pts", "[+1.0, +2.0]")
    latency = {"metric": "latency_per_text_ms", "baseline": 3.81, "candidate": 3.92, "value": 0.029,
               "value_is": "ratio", "ci_low": -0.01, "ci_high": 0.06}
    assert _check_cells(latency) == ("3.8 ms", "3.9 ms", "+2.9%", "[-1.0, +6.0]")
    brier = {"metric": "brier", "baseline": 0.3, "candidate": 0.31, "value": 0.01, "value_is": "change"}
    assert _check_cells(brier) == ("0.3000", "0.3100", "+0.0100", "–")


def test_plots_are_titled_svgs_with_axes(page):
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == 6  # 2 confusion, forest, 2 reliability, latency
    assert all("<title>" in svg for svg in svgs)
    assert "predicted label" in svgs[0] and "true label" in svgs[0] and ">605</text>" in svgs[0]
    assert "ECE 0.0187" in svgs[3] and ">confidence</text>" in svgs[3] and ">accuracy</text>" in svgs[3]
    assert "batch wall time (ms)" in svgs[5] and "p99" in svgs[5]
    assert "Both models timed in this run on this machine (AMD EPYC (x86_64), torch AVX2, bf16 emulated" in page
    assert "3.81 ms" in page and "3.80, 3.81, 3.79, 3.90, 3.82" in page
    banner = page[:page.index('id="checks"')] if 'id="checks"' in page else page
    assert "<dt>machine</dt><dd>AMD EPYC (x86_64)" in banner


def test_hardware_notes_are_shown_with_the_warnings(page):
    warnings = page[page.index('id="warnings"'):]
    assert "bfloat16 is emulated on this CPU" in warnings


def test_forest_plot_marks_the_failing_slice(page):
    forest = next(svg for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S) if "Accuracy change" in svg)
    slang = re.search(r'<text [^>]*fill="(#\w+)"[^>]*>slang \(66\)', forest)
    assert slang and slang.group(1) == "#cf222e"
    assert re.search(r'<text [^>]*fill="#1f2328"[^>]*>emoji 😀 &lt;3 \(120\)', forest)
    assert "overall (2,000)" in forest
    assert forest.count('stroke-dasharray="4 3"') == 3  # -threshold for overall and both slices


def test_reliability_skips_empty_bins():
    report = sample_gate_report()
    filled = sum(b["count"] > 0 for b in report["evaluations"]["baseline"]["calibration"]["reliability"])
    svg = re.findall(r"<svg .*?</svg>", render_gate_html(report), flags=re.S)[3]
    assert svg.count('r="3"') == filled < 15


def test_flips_examples_and_configuration(page):
    flips = page[page.index('id="flips"'):page.index('id="examples"')]
    assert "310 (15.5%)" in flips and "260 (13.0%)" in flips and "1.3e-30" in flips
    assert "baseline \\ candidate" in flips and ">650<" in flips and "-1.8 pts" in flips
    examples = page[page.index('id="examples"'):page.index('id="warnings"')]
    assert examples.count("<tr>") == 4 and "positive → neutral" in examples
    assert "<details>" in page and "max_slice_accuracy_drop" in page and "min_slice_size 30" in page


def test_minimal_report_renders_notes():
    page = render_gate_html(minimal_gate_report())
    assert page.startswith("<!DOCTYPE html>") and ">PASS</span>" in page
    for note in ("No confusion matrix for the baseline.", "No calibration for the baseline",
                 "No calibration for the candidate",
                 "Latency was not compared: the baseline is a predictions file.",
                 "No example flips in this report.", "No label-distribution shift.", "No warnings.",
                 "No flip matrix."):
        assert note in page, note
    assert page.count("<svg ") == 1  # only the forest plot, with its overall row


def test_bare_report_does_not_raise():
    page = render_gate_html({"verdict": "fail"})
    assert "No checks were run." in page and "No accuracy comparison" in page


def test_slice_without_examples_is_listed():
    report = sample_gate_report()
    report["comparison"]["slices"].append({"name": "never-matched", "size": 0, "accuracy": None, "note": "empty"})
    page = render_gate_html(report)
    assert "No examples: never-matched." in page and ">no examples<" in page


def test_non_dict_report_is_rejected():
    with pytest.raises(TypeError, match="must be a dict"):
        render_gate_html([])  # type: ignore[arg-type]


def _chromium(tmp_path, html_path, *extra: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--enable-logging=stderr", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000"]
    return subprocess.run([CHROMIUM, *flags, *extra, html_path.as_uri()], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.slow
def test_page_lays_out_in_headless_chromium(tmp_path):
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    html_path = tmp_path / "gate.html"
    html_path.write_text(render_gate_html(sample_gate_report()), encoding="utf-8")
    dumped = _chromium(tmp_path, html_path, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert 'data-rendered="ok"' in dumped.stdout, dumped.stdout[-500:]
    assert "Uncaught" not in dumped.stderr and "Content Security Policy" not in dumped.stderr
    shot = tmp_path / "shot.png"
    taken = _chromium(tmp_path, html_path, f"--screenshot={shot}", "--window-size=1280,2400")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert "Uncaught" not in taken.stderr


def _key_paths(obj, prefix=()):
    """Every dict key path in ``obj``, descending into the first element of lists."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from _key_paths(value, (*prefix, key))
    elif isinstance(obj, list) and obj:
        yield from _key_paths(obj[0], (*prefix, 0))


def test_any_key_may_be_null_or_absent():
    report = sample_gate_report()
    paths = list(_key_paths(report))
    assert len(paths) > 150
    for path in paths:
        for remove in (False, True):
            damaged = copy.deepcopy(report)
            parent = damaged
            for key in path[:-1]:
                parent = parent[key]
            if remove:
                del parent[path[-1]]
            else:
                parent[path[-1]] = None
            assert render_gate_html(damaged).startswith("<!DOCTYPE html>"), path
