"""Render a gate report (report.json, schema version 3; older reports render too) as one
self-contained HTML page (the toolkit: :mod:`textgate.report.html`, :mod:`textgate.report.svg`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textgate.errors import ConfigError
from textgate.evaluation.registry import metric_info
from textgate.hardware import hardware_line
from textgate.report.html import (
    COLORS,
    LAYOUT_CHECK_SCRIPT,
    dig,
    dig_dict,
    dig_list,
    escape,
    fmt_count,
    fmt_ms,
    fmt_p_value,
    fmt_pct,
    fmt_pts,
    html_table,
    is_number,
    note,
    percentile,
    render_page,
    shorten,
)
from textgate.report.svg import (
    CHAR_PX,
    Scale,
    Svg,
    figure,
    filled_bins,
    nice_ticks,
    reliability_svg,
)

__all__ = ["render_gate_html"]

# Tweets are short; anything far longer is truncated so a pasted document cannot bloat the page.
_MAX_TEXT_CHARS = 600
_MAX_EXAMPLE_FLIPS = 10
# Histogram bins per side on the latency plot: fixed, so the file size does not grow with batches.
_LATENCY_BINS = 30
_STATUS_ORDER = {"fail": 0, "warn": 1, "pass": 2, "skip": 2}


def _side_description(side: Any) -> str:
    if not isinstance(side, dict):
        return "n/a"
    text = str(side.get("description") or "n/a")
    extras = [f"from {side['source']}" if side.get("source") else "", "cached" if side.get("cached") else ""]
    extras = [e for e in extras if e]
    return text + (f" ({', '.join(extras)})" if extras else "")


def _banner(report: dict[str, Any]) -> str:
    verdict = "pass" if report.get("verdict") == "pass" else "fail"
    data = dig_dict(report, "data")
    rows = f" · {fmt_count(data['rows'])} rows" if is_number(data.get("rows")) else ""
    data_line = f"{data.get('path') or 'n/a'}{rows}"
    items = [("baseline", _side_description(report.get("baseline"))),
             ("candidate", _side_description(report.get("candidate"))),
             ("data", data_line), ("machine", _hardware_text(report)),
             ("created", str(report.get("created") or "n/a"))]
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return (f'<section class="banner {verdict}" id="verdict"><h1>textgate gate</h1>'
            f'<span class="verdict">{verdict.upper()}</span>'
            f'<p class="summary">{escape(report.get("summary") or "")}</p><dl class="meta">{meta}</dl></section>')


def _check_kind(check: dict[str, Any]) -> str:
    """How a check's numbers read: latency (ms, relative change), delta (points), number, or rate
    (%): from the check's value_is and its metric's unit in the registry."""
    try:
        unit = metric_info(str(check.get("metric") or "")).unit
    except ConfigError:  # a metric this version does not know
        unit = "fraction"
    value_is = check.get("value_is") or _old_value_is(check)
    if value_is == "ratio":
        return "latency"
    if unit == "number":
        return "number"
    return "delta" if value_is == "change" else "rate"


def _old_value_is(check: dict[str, Any]) -> str:
    """value_is of a check in a report before schema 3, which did not record it."""
    base, cand, value = check.get("baseline"), check.get("candidate"), check.get("value")
    if "latency" in str(check.get("metric") or "") or "latency" in str(check.get("name") or ""):
        return "ratio"
    # Tolerance: a value written to report.json may be rounded independently of its two sides.
    if is_number(base) and is_number(cand) and is_number(value) and abs(value - (cand - base)) <= 5e-4:
        return "change"
    return "level"


# Per check kind: how to show the two sides, the value, and one bound of its interval (all numbers).
_CHECK_FORMATS: dict[str, tuple[Callable[[float], str], Callable[[float], str], Callable[[float], str]]] = {
    "latency": (lambda v: f"{v:,.1f} ms", lambda v: f"{100 * v:+.1f}%", lambda v: f"{100 * v:+.1f}"),
    "number": (lambda v: f"{v:.4f}", lambda v: f"{v:+.4f}", lambda v: f"{v:+.4f}"),
    "delta": (lambda v: f"{100 * v:.1f}%", lambda v: f"{100 * v:+.1f} pts", lambda v: f"{100 * v:+.1f}"),
    "rate": (lambda v: f"{100 * v:.1f}%", lambda v: f"{100 * v:.1f}%", lambda v: f"{100 * v:.1f}"),
}


def _check_cells(check: dict[str, Any]) -> tuple[str, str, str, str]:
    """baseline, candidate, value and interval of one check, formatted for its kind; "–" where null."""
    side, value, bound = _CHECK_FORMATS[_check_kind(check)]
    lo, hi = check.get("ci_low"), check.get("ci_high")

    def show(fmt: Callable[[float], str], v: Any) -> str:
        return fmt(v) if is_number(v) else "–"

    interval = f"[{bound(lo)}, {bound(hi)}]" if is_number(lo) and is_number(hi) else "–"
    return show(side, check.get("baseline")), show(side, check.get("candidate")), show(value, check.get("value")), \
        interval


def _checks(report: dict[str, Any]) -> str:
    checks = [c for c in dig_list(report, "checks") if isinstance(c, dict)]
    if not checks:
        return '<section id="checks"><h2>Checks</h2>' + note("No checks were run.") + "</section>"
    checks = sorted(checks, key=lambda c: _STATUS_ORDER.get(c.get("status"), 3))
    rows, classes = [], []
    for c in checks:
        status = str(c.get("status") or "skip")
        base, cand, value, interval = _check_cells(c)
        rows.append((escape(c.get("scope") or "overall"), escape(c.get("name")), base, cand, value, interval,
                     fmt_p_value(c.get("p_value")), escape(c.get("rule")),
                     f'<span class="badge {escape(status)}">{escape(status)}</span>', escape(c.get("reason"))))
        classes.append(status if status in ("fail", "warn") else "")
    counts = {s: sum(c.get("status") == s for c in checks) for s in ("fail", "warn", "pass", "skip")}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    headers = ("scope", "check", "baseline", "candidate", "value", "95% interval", "p-value", "rule", "status",
               "reason")
    return (f'<section id="checks"><h2>Checks ({len(checks)}: {tally})</h2>'
            + html_table(headers, rows, numeric=(2, 3, 4, 5, 6), row_classes=classes)
            + '<p class="caption">Accuracy-style values are candidate − baseline in percentage points; latency '
              "values are relative increases; p-values are McNemar mid-p.</p></section>")


def _blend(share: float) -> str:
    """White to dark blue by ``share`` in [0, 1]."""
    light, dark = (246, 248, 250), (9, 48, 105)
    rgb = (round(a + (b - a) * share) for a, b in zip(light, dark))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _confusion_svg(side: str, labels: Sequence[str], matrix: Sequence[Sequence[Any]]) -> Svg:
    k = len(labels)
    cell = max(16.0, min(64.0, 300.0 / k))
    names = [shorten(label, 16) for label in labels]
    name_px = CHAR_PX * max(len(n) for n in names)
    tilted = name_px > cell - 4  # column labels wider than a cell are drawn at 45 degrees
    left = 40 + name_px
    top = 30 + (0.72 * name_px if tilted else 14) + 8
    svg = Svg(left + k * cell + (0.72 * name_px if tilted else 0) + 16, top + k * cell + 12,
               f"Confusion matrix, {side} (rows true label, columns predicted label)")
    svg.text(left + k * cell / 2, 16, f"{side}: predicted label", text_anchor="middle", font_weight=600)
    for j, name in enumerate(names):
        x = left + (j + 0.5) * cell
        svg.text(x, top - 8, name, hover=labels[j], text_anchor="start" if tilted else "middle", font_size=11,
                 transform=f"rotate(-45 {x:.1f} {top - 8:.1f})" if tilted else None)
    middle = top + k * cell / 2
    svg.text(12, middle, "true label", text_anchor="middle", transform=f"rotate(-90 12 {middle:.1f})")
    counts = [[v if is_number(v) else 0 for v in row] for row in matrix]
    widest = CHAR_PX * max(len(f"{v:,}") for row in counts for v in row)
    for i, row in enumerate(counts):
        svg.text(left - 6, top + (i + 0.5) * cell + 4, names[i], hover=labels[i], text_anchor="end", font_size=11)
        total = sum(row) or 1
        for j, count in enumerate(row):
            x, y, share = left + j * cell, top + i * cell, count / total
            svg.rect(x, y, cell, cell, fill=_blend(share), stroke="#fff", stroke_width=1)
            if cell >= widest + 4:
                svg.text(x + cell / 2, y + cell / 2 + 4, f"{count:,}", text_anchor="middle",
                         font_size=11 if cell < 48 else 13, fill="#fff" if share > 0.5 else COLORS["ink"])
    return svg


def _is_square(matrix: Any, k: int) -> bool:
    return (k > 0 and isinstance(matrix, list) and len(matrix) == k
            and all(isinstance(row, list) and len(row) == k for row in matrix))


def _confusion_section(report: dict[str, Any]) -> str:
    figures = []
    for side in ("baseline", "candidate"):
        metrics = dig_dict(report, "evaluations", side, "metrics")
        matrix = metrics.get("confusion")
        labels = metrics.get("label_names") or dig(report, "data", "label_names")
        if not _is_square(matrix, len(labels) if isinstance(labels, list) else -1):
            figures.append(note(f"No confusion matrix for the {side}."))
            continue
        figures.append(figure(_confusion_svg(side, [str(l) for l in labels], matrix)))
    return ('<h3>Confusion matrices</h3><div class="plots">' + "".join(figures) + "</div>"
            '<p class="caption">Rows: true label; columns: predicted label; shade: share of the row.</p>')


@dataclass(frozen=True)
class _ForestRow:
    name: str
    size: Any
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float | None
    status: str


def _accuracy_status(report: dict[str, Any], scope: str) -> str:
    for check in dig_list(report, "checks"):
        if isinstance(check, dict) and check.get("scope", "overall") == scope and check.get("metric") == "accuracy":
            return str(check.get("status") or "")
    return ""


def _num_or_none(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _forest_rows(report: dict[str, Any]) -> list[_ForestRow]:
    thresholds = dig_dict(report, "config", "thresholds")
    rows = []
    overall = next((m for m in dig_list(report, "comparison", "metrics")
                    if isinstance(m, dict) and m.get("name") == "accuracy"), None)
    if overall is not None:
        rows.append(_ForestRow("overall", overall.get("n"), _num_or_none(overall.get("delta")),
                               _num_or_none(overall.get("ci_low")), _num_or_none(overall.get("ci_high")),
                               _num_or_none(thresholds.get("max_accuracy_drop")), _accuracy_status(report, "overall")))
    for s in dig_list(report, "comparison", "slices"):
        if not isinstance(s, dict):
            continue
        acc = dig_dict(s, "accuracy")
        rows.append(_ForestRow(str(s.get("name")), s.get("size"), _num_or_none(acc.get("delta")),
                               _num_or_none(acc.get("ci_low")), _num_or_none(acc.get("ci_high")),
                               _num_or_none(thresholds.get("max_slice_accuracy_drop")),
                               _accuracy_status(report, str(s.get("name")))))
    return rows


def _forest_label(row: _ForestRow) -> str:
    return f"{shorten(row.name)} ({fmt_count(row.size)})"


def _forest_svg(rows: Sequence[_ForestRow]) -> Svg:
    row_h, top, right, width = 28, 30, 200, 900
    left = max(110.0, 24 + 7.8 * max(len(_forest_label(r)) for r in rows))  # 7.8 px: a bold 12px character
    height = top + row_h * len(rows) + 48
    values = [0.0] + [v for r in rows for v in (r.delta, r.ci_low, r.ci_high) if v is not None]
    values += [-r.threshold for r in rows if r.threshold is not None and r.delta is not None]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 0.005)
    ticks = nice_ticks(lo - pad, hi + pad)
    scale = Scale(min(ticks[0], lo - pad), max(ticks[-1], hi + pad), left, width - right)
    svg = Svg(width, height, "Accuracy change per slice, candidate minus baseline, with 95% intervals")
    bottom = top + row_h * len(rows)
    for i, row in enumerate(rows):
        if row.name == "overall":
            svg.rect(4, top + i * row_h + 1, width - 8, row_h - 2, fill="#f6f8fa")
    svg.text(left - 10, top - 12, "slice (n)", text_anchor="end", fill=COLORS["muted"])
    svg.text(width - right + 12, top - 12, "change [95% interval]", fill=COLORS["muted"])
    svg.x_axis(scale, bottom + 4, ticks, lambda t: f"{100 * t:+.0f}" if t else "0",
               "accuracy change, candidate − baseline (points)", grid_to=top - 4)
    svg.line(scale(0), top - 4, scale(0), bottom + 4, stroke=COLORS["ink"], stroke_width=1.2)
    for i, row in enumerate(rows):
        _forest_row(svg, scale, row, top + i * row_h, row_h, width - right + 12)
    return svg


def _forest_row(svg: Svg, scale: Scale, row: _ForestRow, y0: float, row_h: float, text_x: float) -> None:
    y = y0 + row_h / 2
    color = COLORS.get(row.status, COLORS["point"]) if row.status in ("fail", "warn") else COLORS["point"]
    svg.text(scale.px_lo - 10, y + 4, _forest_label(row), hover=row.name, text_anchor="end", fill=color,
             font_weight=700 if row.status == "fail" or row.name == "overall" else None)
    if row.delta is None:
        svg.text(scale(0) + 8, y + 4, "no examples", fill=COLORS["muted"], font_style="italic")
        return
    if row.threshold is not None:
        x = scale(-row.threshold)
        svg.line(x, y0 + 3, x, y0 + row_h - 3, stroke=COLORS["fail"], stroke_dasharray="4 3", stroke_width=1.4)
    if row.ci_low is not None and row.ci_high is not None:
        svg.line(scale(row.ci_low), y, scale(row.ci_high), y, stroke=color, stroke_width=2.2)
        for bound in (row.ci_low, row.ci_high):
            svg.line(scale(bound), y - 5, scale(bound), y + 5, stroke=color, stroke_width=1.6)
    svg.circle(scale(row.delta), y, 5, fill=color)
    interval = (f" [{100 * row.ci_low:+.1f}, {100 * row.ci_high:+.1f}]"
                if row.ci_low is not None and row.ci_high is not None else "")
    svg.text(text_x, y + 4, fmt_pts(row.delta) + interval, fill=color,
             font_weight=700 if row.status == "fail" else None)


def _forest_section(report: dict[str, Any]) -> str:
    rows = _forest_rows(report)
    if not rows:
        return "<h3>Accuracy by slice</h3>" + note("No accuracy comparison in this report.")
    empty = [r.name for r in rows if r.delta is None]
    caption = ("Dot: candidate − baseline accuracy; bar: 95% paired bootstrap interval; red dashes: the allowed "
               "drop (max_accuracy_drop overall, max_slice_accuracy_drop per slice); red rows failed a check.")
    if empty:
        caption += " No examples: " + ", ".join(empty) + "."
    return f"<h3>Accuracy by slice</h3>{figure(_forest_svg(rows), caption)}"


def _reliability_section(report: dict[str, Any]) -> str:
    figures = []
    for side in ("baseline", "candidate"):
        calibration = dig_dict(report, "evaluations", side, "calibration")
        filled = filled_bins(dig_list(calibration, "reliability"))
        if not filled:
            figures.append(note(f"No calibration for the {side} (no probabilities)."))
            continue
        ece = dig(calibration, "ece_equal_width", "value")
        figures.append(figure(reliability_svg(side, COLORS[side], filled,
                                                f"ECE {ece:.4f}" if is_number(ece) else "ECE n/a")))
    return ('<h3>Reliability</h3><div class="plots">' + "".join(figures) + "</div>"
            '<p class="caption">Bars: accuracy per equal-width confidence bin (darker = more examples; empty bins '
            "omitted); dots: mean confidence vs accuracy; dashed: perfect calibration.</p>")


def _ms_list(values: Any) -> list[float]:
    return [float(v) for v in values if is_number(v)] if isinstance(values, list) else []


def _latency_svg(samples: dict[str, list[float]]) -> Svg:
    width, left, right, top, band, gap = 860, 90, 30, 16, 92, 14
    present = {side: values for side, values in samples.items() if values}
    lo = min(min(v) for v in present.values())
    hi = max(max(v) for v in present.values())
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    ticks = nice_ticks(lo, hi)
    scale = Scale(min(lo, ticks[0]), max(hi, ticks[-1]), left, width - right)
    height = top + len(present) * (band + gap) + 40
    svg = Svg(width, height, "Per-batch latency, baseline and candidate, with p50, p95 and p99")
    edges = [scale.lo + (scale.hi - scale.lo) * i / _LATENCY_BINS for i in range(_LATENCY_BINS + 1)]
    histograms = {side: _histogram(values, edges) for side, values in present.items()}
    tallest = max(max(h) for h in histograms.values()) or 1
    bottom = top + len(present) * (band + gap) - gap
    svg.x_axis(scale, bottom + 2, ticks, lambda t: f"{t:,.0f}", "batch wall time (ms)", grid_to=top)
    for i, (side, values) in enumerate(present.items()):
        y0 = top + i * (band + gap)
        _latency_band(svg, scale, side, values, histograms[side], edges, y0, band, tallest)
    return svg


def _histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    lo, span = edges[0], edges[-1] - edges[0]
    for v in values:
        counts[min(int((v - lo) / span * len(counts)), len(counts) - 1)] += 1
    return counts


def _latency_band(svg: Svg, scale: Scale, side: str, values: Sequence[float], counts: Sequence[int],
                  edges: Sequence[float], y0: float, band: float, tallest: int) -> None:
    color = COLORS[side]
    base_y = y0 + band
    svg.rect(scale.px_lo, y0, scale.px_hi - scale.px_lo, band, fill="#fbfcfd", stroke=COLORS["grid"])
    svg.text(scale.px_lo - 8, y0 + band / 2, side, text_anchor="end", fill=color, font_weight=600)
    svg.text(scale.px_lo - 8, y0 + band / 2 + 15, f"{len(values)} batches", text_anchor="end", font_size=11,
             fill=COLORS["muted"])
    for count, a, b in zip(counts, edges, edges[1:]):
        if count:
            h = (band - 30) * count / tallest
            svg.rect(scale(a) + 0.5, base_y - h, scale(b) - scale(a) - 1, h, fill=color, fill_opacity=0.55)
    for k, q in enumerate((50, 95, 99)):
        value = percentile(values, q)
        x = scale(value)
        svg.line(x, y0 + 4 + 9 * k, x, base_y, stroke=color, stroke_width=1.5,
                 stroke_dasharray=None if q == 50 else "4 2")
        # Staggered labels: p95 and p99 are often a few pixels apart.
        svg.text(x + 3, y0 + 12 + 9 * k, f"p{q} {value:,.0f}", font_size=10, fill=color)


def _latency_section(report: dict[str, Any]) -> str:
    latency = dig_dict(report, "latency")
    head = "<h3>Latency</h3>"
    skipped = latency.get("skipped")
    if skipped or not latency:
        return head + note(f"Latency was not compared: {skipped or 'no measurement in this report'}.")
    samples = {side: _ms_list(latency.get(f"{side}_batch_ms")) for side in ("baseline", "candidate")}
    caption = (f'<p class="caption">Both models timed in this run on this machine '
               f'({escape(_hardware_text(report))}): {fmt_count(latency.get("texts"))} texts, 1 warm-up round and '
               f'{fmt_count(latency.get("rounds"))} timed rounds, batches alternating. Cost per text = sum of each '
               "batch's median over rounds / texts.</p>")
    rows = []
    for side in ("baseline", "candidate"):
        values = samples[side]
        batch = [fmt_ms(percentile(values, q)) if values else "n/a" for q in (50, 95, 99)]
        rounds = ", ".join(f"{v:.2f}" for v in _ms_list(latency.get(f"{side}_round_ms")))
        per_text = latency.get(f"{side}_ms_per_text")
        rows.append((side, str(len(values)), *batch, f"{per_text:.2f} ms" if is_number(per_text) else "n/a",
                     escape(rounds)))
    table = html_table(("side", "batches timed", "batch p50", "batch p95", "batch p99", "ms per text",
                        "ms per text, each round"), rows, numeric=range(1, 6), css="compact")
    return head + caption + (figure(_latency_svg(samples)) if any(samples.values()) else "") + table


def _hardware_text(report: dict[str, Any]) -> str:
    return hardware_line(report.get("hardware"))


def _plots(report: dict[str, Any]) -> str:
    return ('<section id="plots"><h2>Plots</h2>' + _confusion_section(report) + _forest_section(report)
            + _reliability_section(report) + _latency_section(report) + "</section>")


def _count_rate(flips: dict[str, Any], count: str, rate: str) -> str:
    if not is_number(flips.get(count)):
        return "–"
    return fmt_count(flips[count]) + (f" ({fmt_pct(flips[rate])})" if is_number(flips.get(rate)) else "")


def _stat(value: str, label: str) -> str:
    return f'<div class="stat"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _flip_matrix(flips: dict[str, Any]) -> str:
    labels, matrix = flips.get("matrix_labels"), flips.get("matrix")
    if not _is_square(matrix, len(labels) if isinstance(labels, list) else -1):
        return note("No flip matrix.")
    rows = [(f"<b>{escape(label)}</b>", *(fmt_count(v) for v in row)) for label, row in zip(labels, matrix)]
    headers = ("baseline \\ candidate", *(shorten(str(label), 16) for label in labels))
    return ("<div><h3>Flip matrix</h3>" + html_table(headers, rows, numeric=range(1, len(labels) + 1), css="compact")
            + '<p class="caption">Rows: baseline prediction; columns: candidate prediction.</p></div>')


def _label_shift(shift: Any) -> str:
    if not dig_list(shift, "labels"):
        return note("No label-distribution shift.")
    columns = (dig_list(shift, "baseline_share"), dig_list(shift, "candidate_share"), dig_list(shift, "delta"))
    rows = [(escape(label), fmt_pct(dig(columns[0], i)), fmt_pct(dig(columns[1], i)), fmt_pts(dig(columns[2], i)))
            for i, label in enumerate(shift["labels"])]
    return ("<div><h3>Predicted-label shift</h3>"
            + html_table(("label", "baseline share", "candidate share", "change"), rows, numeric=(1, 2, 3), css="compact")
            + f'<p class="caption">Total variation distance: {fmt_pct(shift.get("total_variation"))}.</p></div>')


def _flips(report: dict[str, Any]) -> str:
    flips = dig_dict(report, "comparison", "flips")
    mcnemar = dig_dict(report, "comparison", "mcnemar")
    stats = "".join((
        _stat(_count_rate(flips, "flipped", "flip_rate"), "flipped predictions"),
        _stat(_count_rate(flips, "harmful", "harmful_rate"), "harmful: right → wrong"),
        _stat(_count_rate(flips, "beneficial", "beneficial_rate"), "beneficial: wrong → right"),
        _stat(_count_rate(flips, "other", "other_rate"), "other: wrong → another wrong"),
        _stat(fmt_p_value(mcnemar.get("p_value")), "McNemar mid-p" + (
            f" ({fmt_count(mcnemar['discordant'])} discordant pairs)" if is_number(mcnemar.get("discordant")) else "")),
    ))
    return (f'<section id="flips"><h2>Flips</h2><div class="stats">{stats}</div><div class="side-by-side">'
            f'{_flip_matrix(flips)}{_label_shift(dig(report, "comparison", "label_shift"))}</div></section>')


def _example_flips(report: dict[str, Any]) -> str:
    examples = [e for e in dig_list(report, "example_flips") if isinstance(e, dict)][:_MAX_EXAMPLE_FLIPS]
    head = '<section id="examples"><h2>Example flips</h2>'
    if not examples:
        return head + note("No example flips in this report.") + "</section>"
    rows = []
    for e in examples:
        kind = str(e.get("kind") or "")
        row = e.get("row")
        rows.append((fmt_count(row + 1 if is_number(row) else None), escape(e.get("label")),
                     f"{escape(e.get('baseline'))} → {escape(e.get('candidate'))}",
                     f'<span class="kind-{escape(kind)}">{escape(kind)}</span>',
                     escape(shorten(str(e.get("text") or ""), _MAX_TEXT_CHARS))))
    table = html_table(("row", "gold label", "baseline → candidate", "kind", "text"), rows, numeric=(0,), wrap=(4,))
    return head + table + "</section>"


def _warnings_and_config(report: dict[str, Any]) -> str:
    warnings = [str(w) for w in [*dig_list(report, "notes"), *dig_list(report, "warnings")]]
    listing = ('<ul class="warnings">' + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
               if warnings else note("No warnings."))
    blocks = [("configuration", report.get("config")), ("data", report.get("data")),
              ("baseline", report.get("baseline")), ("candidate", report.get("candidate"))]
    details = "".join(
        f"<h3>{escape(name)}</h3><pre>{escape(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"
        for name, value in blocks if value is not None)
    return (f'<section id="warnings"><h2>Warnings</h2>{listing}<details><summary>Configuration, thresholds and '
            f"settings of both sides</summary>{details or note('No configuration recorded.')}</details></section>")


def render_gate_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page for a gate report dict (the report.json schema, version 2)."""
    if not isinstance(report, dict):
        raise TypeError(f"The 'report' argument of render_gate_html must be a dict (report.json). "
                        f"Got {type(report).__name__} instead.")
    verdict = "PASS" if report.get("verdict") == "pass" else "FAIL"
    body = "".join((_banner(report), _checks(report), _plots(report), _flips(report), _example_flips(report),
                    _warnings_and_config(report)))
    return render_page(f"textgate gate: {verdict}", body, script=LAYOUT_CHECK_SCRIPT)
