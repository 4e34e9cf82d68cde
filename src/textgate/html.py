"""Render a gate report (report.json, schema version 2; older reports render too) as one self-contained HTML file.

The page works offline: inline CSS, plots drawn here as inline SVG, and one tiny script that
only checks the plots laid out. A Content-Security-Policy forbids every fetch, so a report
opened from a CI artifact can never reach the network. Every string from the report is
escaped: tweets carry `<`, `&` and quotes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape as _escape_html
from typing import Any

from textgate.hardware import hardware_line

__all__ = ["escape", "html_table", "render_gate_html", "render_page"]

# Long enough to recognize a slice or label, short enough to leave room for the plot itself.
_MAX_LABEL_CHARS = 30
# Tweets are short; anything far longer is truncated so a pasted document cannot bloat the page.
_MAX_TEXT_CHARS = 600
_MAX_EXAMPLE_FLIPS = 10
# Histogram bins per side on the latency plot: fixed, so the file size does not grow with batches.
_LATENCY_BINS = 30
# Rough width of one 11px character, for sizing margins around labels (no text metrics in SVG).
_CHAR_PX = 6.6
_STATUS_ORDER = {"fail": 0, "warn": 1, "pass": 2, "skip": 2}
# Metrics that are not fractions, so their deltas are plain numbers rather than points.
_UNITLESS_METRICS = frozenset({"nll", "brier", "log_loss", "ece", "total_variation"})  # shown as plain numbers, as in report.md

_COLORS = {
    "pass": "#1a7f37", "fail": "#cf222e", "warn": "#9a6700", "skip": "#6e7781",
    "baseline": "#0969da", "candidate": "#bc4c00", "ink": "#1f2328", "muted": "#656d76",
    "grid": "#d8dee4", "point": "#1f2328",
}

_CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --pass: #1a7f37; --fail: #cf222e;
        --warn: #9a6700; --skip: #6e7781; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 13px; font-weight: 600; letter-spacing: .06em; text-transform: uppercase;
     color: var(--muted); margin: 0 0 8px; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
          margin-top: 16px; }
.banner { border-left: 8px solid var(--fail); }
.banner.pass { border-left-color: var(--pass); }
.verdict { display: inline-block; font-size: 28px; font-weight: 800; color: #fff; background: var(--fail);
           border-radius: 6px; padding: 2px 16px; margin-right: 12px; vertical-align: middle; }
.pass .verdict { background: var(--pass); }
.summary { display: inline; font-size: 17px; font-weight: 600; vertical-align: middle; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 14px 0 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.compact { width: auto; }
.scroll { overflow-x: auto; }
.badge { display: inline-block; min-width: 44px; text-align: center; border-radius: 10px; padding: 0 8px;
         color: #fff; font-size: 12px; font-weight: 700; text-transform: uppercase; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.warn { background: var(--warn); } .badge.skip { background: var(--skip); }
#checks td:nth-child(2), #checks td:nth-child(8) { white-space: nowrap; }
tr.fail td { background: #fff5f5; } tr.warn td { background: #fffbeb; }
.plots { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0; }
figcaption, .caption { color: var(--muted); font-size: 12px; margin-top: 4px; }
svg { display: block; max-width: 100%; height: auto; font-family: inherit; }
.note { color: var(--muted); font-style: italic; margin: 4px 0; }
.stats { display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 0 0 12px; }
.stat b { display: block; font-size: 20px; }
.stat span { color: var(--muted); font-size: 12px; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.side-by-side > div { min-width: 0; max-width: 100%; }
td.text { max-width: 560px; overflow-wrap: anywhere; }
.kind-harmful { color: var(--fail); font-weight: 600; } .kind-beneficial { color: var(--pass); font-weight: 600; }
ul.warnings li { margin: 3px 0; }
details { margin-top: 12px; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px; font-size: 12px;
      overflow-x: auto; }
"""

# The only script: proves in a real browser that every plot laid out with a non-zero box.
_SCRIPT = """
(function () {
  var body = document.body;
  try {
    var empty = [];
    document.querySelectorAll("svg").forEach(function (svg, i) {
      var box = svg.getBoundingClientRect();
      if (!(box.width > 0 && box.height > 0)) { empty.push(i); }
    });
    body.dataset.rendered = empty.length ? "error: empty svg " + empty.join(",") : "ok";
  } catch (e) {
    body.dataset.rendered = "error: " + e;
  }
})();
"""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _dig(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` or None as soon as a step is missing or null."""
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def _dict(obj: Any, *path: str | int) -> dict[str, Any]:
    """The dict at ``path``, or {} when it is missing, null or not a dict."""
    found = _dig(obj, *path)
    return found if isinstance(found, dict) else {}


def _list(obj: Any, *path: str | int) -> list[Any]:
    """The list at ``path``, or [] when it is missing, null or not a list."""
    found = _dig(obj, *path)
    return found if isinstance(found, list) else []


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def escape(value: Any) -> str:
    """``value`` as HTML text, quotes escaped too (safe in attributes); None is ""."""
    return _escape_html("" if value is None else str(value))


def _short(text: str, limit: int = _MAX_LABEL_CHARS) -> str:
    """Ellipsis in the middle: slice names often share a prefix and differ at the end."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def _pct(value: Any, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%" if _is_num(value) else "n/a"


def _pts(value: Any) -> str:
    return f"{100 * value:+.1f} pts" if _is_num(value) else "n/a"


def _ms(value: Any) -> str:
    return f"{value:,.1f} ms" if _is_num(value) else "n/a"


def _count(value: Any) -> str:
    return f"{value:,}" if _is_num(value) else "n/a"


def _p_value(value: Any) -> str:
    if not _is_num(value):
        return "–"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = (),
           wrap: Sequence[int] = (), row_classes: Sequence[str] = (), css: str = "") -> str:
    """An HTML table; cells are already-escaped HTML. Columns in ``numeric`` are right-aligned,
    columns in ``wrap`` hold free text that may break anywhere."""
    def cell(tag: str, i: int, content: str) -> str:
        cls = "num" if i in numeric else "text" if i in wrap else ""
        return f'<{tag} class="{cls}">{content}</{tag}>' if cls else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if r < len(row_classes) and row_classes[r] else ""
        body.append(f"<tr{cls}>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>")
    table_class = f' class="{css}"' if css else ""
    return (f'<div class="scroll"><table{table_class}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile, the same definition as numpy's default (and metrics.py)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(position), math.ceil(position)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


# ---------------------------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------------------------


def _fmt_coord(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class _Scale:
    """Linear map from data ``[lo, hi]`` to pixels ``[px_lo, px_hi]``."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.px_lo + (value - self.lo) / span * (self.px_hi - self.px_lo)


def _nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 10) for i in range(count)]


class _Svg:
    """Accumulates SVG elements for one figure; attribute values and text are escaped here."""

    def __init__(self, width: float, height: float, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self._parts: list[str] = []

    def element(self, tag: str, content: str = "", **attrs: Any) -> None:
        """Add ``<tag attrs>content</tag>``; ``content`` is raw SVG, ``font_size`` becomes ``font-size``."""
        rendered = "".join(
            f' {name.rstrip("_").replace("_", "-")}="'
            + (_fmt_coord(value) if isinstance(value, float) else _escape_html(str(value), quote=True)) + '"'
            for name, value in attrs.items() if value is not None
        )
        self._parts.append(f"<{tag}{rendered}>{content}</{tag}>" if content else f"<{tag}{rendered}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, **attrs: Any) -> None:
        self.element("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2),
                     stroke=attrs.pop("stroke", _COLORS["ink"]), **attrs)

    def rect(self, x: float, y: float, width: float, height: float, **attrs: Any) -> None:
        self.element("rect", x=float(x), y=float(y), width=float(max(width, 0.0)),
                     height=float(max(height, 0.0)), **attrs)

    def circle(self, x: float, y: float, r: float, **attrs: Any) -> None:
        self.element("circle", cx=float(x), cy=float(y), r=float(r), **attrs)

    def text(self, x: float, y: float, text: str, *, hover: str | None = None, **attrs: Any) -> None:
        """Escaped text; ``hover`` adds a tooltip (e.g. the full name behind a truncated label)."""
        content = _escape_html(text) + (f"<title>{_escape_html(hover)}</title>" if hover else "")
        self.element("text", content, x=float(x), y=float(y), fill=attrs.pop("fill", _COLORS["ink"]),
                     font_size=attrs.pop("font_size", 12), **attrs)

    def polyline(self, points: Sequence[tuple[float, float]], **attrs: Any) -> None:
        self.element("polyline", points=" ".join(f"{_fmt_coord(x)},{_fmt_coord(y)}" for x, y in points),
                     fill="none", **attrs)

    def x_axis(self, scale: _Scale, y: float, ticks: Sequence[float], fmt: Callable[[float], str],
               label: str, *, grid_to: float | None = None) -> None:
        self.line(scale.px_lo, y, scale.px_hi, y, stroke=_COLORS["muted"])
        for tick in ticks:
            x = scale(tick)
            if grid_to is not None:
                self.line(x, grid_to, x, y, stroke=_COLORS["grid"], stroke_width=0.6)
            self.line(x, y, x, y + 4, stroke=_COLORS["muted"])
            self.text(x, y + 16, fmt(tick), text_anchor="middle", font_size=11, fill=_COLORS["muted"])
        self.text((scale.px_lo + scale.px_hi) / 2, y + 32, label, text_anchor="middle")

    def y_axis(self, scale: _Scale, x: float, ticks: Sequence[float], fmt: Callable[[float], str],
               label: str, *, grid_to: float | None = None) -> None:
        self.line(x, scale.px_lo, x, scale.px_hi, stroke=_COLORS["muted"])
        for tick in ticks:
            y = scale(tick)
            if grid_to is not None:
                self.line(x, y, grid_to, y, stroke=_COLORS["grid"], stroke_width=0.6)
            self.line(x - 4, y, x, y, stroke=_COLORS["muted"])
            self.text(x - 7, y + 4, fmt(tick), text_anchor="end", font_size=11, fill=_COLORS["muted"])
        middle = (scale.px_lo + scale.px_hi) / 2
        self.text(x - 40, middle, label, text_anchor="middle", transform=f"rotate(-90 {x - 40:.1f} {middle:.1f})")

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{self.width:.0f}" '
                f'height="{self.height:.0f}" viewBox="0 0 {self.width:.0f} {self.height:.0f}">'
                f"<title>{_escape_html(self.title)}</title>{''.join(self._parts)}</svg>")


def _figure(svg: _Svg, caption: str = "") -> str:
    return f"<figure>{svg.render()}" + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "") + "</figure>"


# ---------------------------------------------------------------------------------------------
# 1. Verdict banner
# ---------------------------------------------------------------------------------------------


def _side_description(side: Any) -> str:
    if not isinstance(side, dict):
        return "n/a"
    text = str(side.get("description") or "n/a")
    extras = [f"from {side['source']}" if side.get("source") else "", "cached" if side.get("cached") else ""]
    extras = [e for e in extras if e]
    return text + (f" ({', '.join(extras)})" if extras else "")


def _banner(report: dict[str, Any]) -> str:
    verdict = "pass" if report.get("verdict") == "pass" else "fail"
    data = _dict(report, "data")
    rows = f" · {_count(data['rows'])} rows" if _is_num(data.get("rows")) else ""
    data_line = f"{data.get('path') or 'n/a'}{rows}"
    items = [("baseline", _side_description(report.get("baseline"))),
             ("candidate", _side_description(report.get("candidate"))),
             ("data", data_line), ("machine", _hardware_text(report)),
             ("created", str(report.get("created") or "n/a"))]
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return (f'<section class="banner {verdict}" id="verdict"><h1>textgate gate</h1>'
            f'<span class="verdict">{verdict.upper()}</span>'
            f'<p class="summary">{escape(report.get("summary") or "")}</p><dl class="meta">{meta}</dl></section>')


# ---------------------------------------------------------------------------------------------
# 2. Checks
# ---------------------------------------------------------------------------------------------


def _check_kind(check: dict[str, Any]) -> str:
    """How a check's numbers read: latency (ms, relative change), delta (points), number, or rate (%)."""
    metric, name = str(check.get("metric") or ""), str(check.get("name") or "")
    base, cand, value = check.get("baseline"), check.get("candidate"), check.get("value")
    if "latency" in metric or "latency" in name:
        return "latency"
    if metric in _UNITLESS_METRICS:
        return "number"
    # Tolerance: a value written to report.json may be rounded independently of its two sides.
    if _is_num(base) and _is_num(cand) and _is_num(value) and abs(value - (cand - base)) <= 5e-4:
        return "delta"
    return "rate"


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
        return fmt(v) if _is_num(v) else "–"

    interval = f"[{bound(lo)}, {bound(hi)}]" if _is_num(lo) and _is_num(hi) else "–"
    return show(side, check.get("baseline")), show(side, check.get("candidate")), show(value, check.get("value")), \
        interval


def _checks(report: dict[str, Any]) -> str:
    checks = [c for c in _list(report, "checks") if isinstance(c, dict)]
    if not checks:
        return '<section id="checks"><h2>Checks</h2>' + _note("No checks were run.") + "</section>"
    checks = sorted(checks, key=lambda c: _STATUS_ORDER.get(c.get("status"), 3))
    rows, classes = [], []
    for c in checks:
        status = str(c.get("status") or "skip")
        base, cand, value, interval = _check_cells(c)
        rows.append((escape(c.get("scope") or "overall"), escape(c.get("name")), base, cand, value, interval,
                     _p_value(c.get("p_value")), escape(c.get("rule")),
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


# ---------------------------------------------------------------------------------------------
# 3a. Confusion matrices
# ---------------------------------------------------------------------------------------------


def _blend(share: float) -> str:
    """White to dark blue by ``share`` in [0, 1]."""
    light, dark = (246, 248, 250), (9, 48, 105)
    rgb = (round(a + (b - a) * share) for a, b in zip(light, dark))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _confusion_svg(side: str, labels: Sequence[str], matrix: Sequence[Sequence[Any]]) -> _Svg:
    k = len(labels)
    cell = max(16.0, min(64.0, 300.0 / k))
    names = [_short(label, 16) for label in labels]
    name_px = _CHAR_PX * max(len(n) for n in names)
    tilted = name_px > cell - 4  # column labels wider than a cell are drawn at 45 degrees
    left = 40 + name_px
    top = 30 + (0.72 * name_px if tilted else 14) + 8
    svg = _Svg(left + k * cell + (0.72 * name_px if tilted else 0) + 16, top + k * cell + 12,
               f"Confusion matrix, {side} (rows true label, columns predicted label)")
    svg.text(left + k * cell / 2, 16, f"{side}: predicted label", text_anchor="middle", font_weight=600)
    for j, name in enumerate(names):
        x = left + (j + 0.5) * cell
        svg.text(x, top - 8, name, hover=labels[j], text_anchor="start" if tilted else "middle", font_size=11,
                 transform=f"rotate(-45 {x:.1f} {top - 8:.1f})" if tilted else None)
    middle = top + k * cell / 2
    svg.text(12, middle, "true label", text_anchor="middle", transform=f"rotate(-90 12 {middle:.1f})")
    counts = [[v if _is_num(v) else 0 for v in row] for row in matrix]
    widest = _CHAR_PX * max(len(f"{v:,}") for row in counts for v in row)
    for i, row in enumerate(counts):
        svg.text(left - 6, top + (i + 0.5) * cell + 4, names[i], hover=labels[i], text_anchor="end", font_size=11)
        total = sum(row) or 1
        for j, count in enumerate(row):
            x, y, share = left + j * cell, top + i * cell, count / total
            svg.rect(x, y, cell, cell, fill=_blend(share), stroke="#fff", stroke_width=1)
            if cell >= widest + 4:
                svg.text(x + cell / 2, y + cell / 2 + 4, f"{count:,}", text_anchor="middle",
                         font_size=11 if cell < 48 else 13, fill="#fff" if share > 0.5 else _COLORS["ink"])
    return svg


def _is_square(matrix: Any, k: int) -> bool:
    return (k > 0 and isinstance(matrix, list) and len(matrix) == k
            and all(isinstance(row, list) and len(row) == k for row in matrix))


def _confusion_section(report: dict[str, Any]) -> str:
    figures = []
    for side in ("baseline", "candidate"):
        metrics = _dict(report, "evaluations", side, "metrics")
        matrix = metrics.get("confusion")
        labels = metrics.get("label_names") or _dig(report, "data", "label_names")
        if not _is_square(matrix, len(labels) if isinstance(labels, list) else -1):
            figures.append(_note(f"No confusion matrix for the {side}."))
            continue
        figures.append(_figure(_confusion_svg(side, [str(l) for l in labels], matrix)))
    return ('<h3>Confusion matrices</h3><div class="plots">' + "".join(figures) + "</div>"
            '<p class="caption">Rows: true label; columns: predicted label; shade: share of the row.</p>')


# ---------------------------------------------------------------------------------------------
# 3b. Forest plot of accuracy deltas
# ---------------------------------------------------------------------------------------------


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
    for check in _list(report, "checks"):
        if isinstance(check, dict) and check.get("scope", "overall") == scope and check.get("metric") == "accuracy":
            return str(check.get("status") or "")
    return ""


def _num_or_none(value: Any) -> float | None:
    return float(value) if _is_num(value) else None


def _forest_rows(report: dict[str, Any]) -> list[_ForestRow]:
    thresholds = _dict(report, "config", "thresholds")
    rows = []
    overall = next((m for m in _list(report, "comparison", "metrics")
                    if isinstance(m, dict) and m.get("name") == "accuracy"), None)
    if overall is not None:
        rows.append(_ForestRow("overall", overall.get("n"), _num_or_none(overall.get("delta")),
                               _num_or_none(overall.get("ci_low")), _num_or_none(overall.get("ci_high")),
                               _num_or_none(thresholds.get("max_accuracy_drop")), _accuracy_status(report, "overall")))
    for s in _list(report, "comparison", "slices"):
        if not isinstance(s, dict):
            continue
        acc = _dict(s, "accuracy")
        rows.append(_ForestRow(str(s.get("name")), s.get("size"), _num_or_none(acc.get("delta")),
                               _num_or_none(acc.get("ci_low")), _num_or_none(acc.get("ci_high")),
                               _num_or_none(thresholds.get("max_slice_accuracy_drop")),
                               _accuracy_status(report, str(s.get("name")))))
    return rows


def _forest_label(row: _ForestRow) -> str:
    return f"{_short(row.name)} ({_count(row.size)})"


def _forest_svg(rows: Sequence[_ForestRow]) -> _Svg:
    row_h, top, right, width = 28, 30, 200, 900
    left = max(110.0, 24 + 7.8 * max(len(_forest_label(r)) for r in rows))  # 7.8 px: a bold 12px character
    height = top + row_h * len(rows) + 48
    values = [0.0] + [v for r in rows for v in (r.delta, r.ci_low, r.ci_high) if v is not None]
    values += [-r.threshold for r in rows if r.threshold is not None and r.delta is not None]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 0.005)
    ticks = _nice_ticks(lo - pad, hi + pad)
    scale = _Scale(min(ticks[0], lo - pad), max(ticks[-1], hi + pad), left, width - right)
    svg = _Svg(width, height, "Accuracy change per slice, candidate minus baseline, with 95% intervals")
    bottom = top + row_h * len(rows)
    for i, row in enumerate(rows):
        if row.name == "overall":
            svg.rect(4, top + i * row_h + 1, width - 8, row_h - 2, fill="#f6f8fa")
    svg.text(left - 10, top - 12, "slice (n)", text_anchor="end", fill=_COLORS["muted"])
    svg.text(width - right + 12, top - 12, "change [95% interval]", fill=_COLORS["muted"])
    svg.x_axis(scale, bottom + 4, ticks, lambda t: f"{100 * t:+.0f}" if t else "0",
               "accuracy change, candidate − baseline (points)", grid_to=top - 4)
    svg.line(scale(0), top - 4, scale(0), bottom + 4, stroke=_COLORS["ink"], stroke_width=1.2)
    for i, row in enumerate(rows):
        _forest_row(svg, scale, row, top + i * row_h, row_h, width - right + 12)
    return svg


def _forest_row(svg: _Svg, scale: _Scale, row: _ForestRow, y0: float, row_h: float, text_x: float) -> None:
    y = y0 + row_h / 2
    color = _COLORS.get(row.status, _COLORS["point"]) if row.status in ("fail", "warn") else _COLORS["point"]
    svg.text(scale.px_lo - 10, y + 4, _forest_label(row), hover=row.name, text_anchor="end", fill=color,
             font_weight=700 if row.status == "fail" or row.name == "overall" else None)
    if row.delta is None:
        svg.text(scale(0) + 8, y + 4, "no examples", fill=_COLORS["muted"], font_style="italic")
        return
    if row.threshold is not None:
        x = scale(-row.threshold)
        svg.line(x, y0 + 3, x, y0 + row_h - 3, stroke=_COLORS["fail"], stroke_dasharray="4 3", stroke_width=1.4)
    if row.ci_low is not None and row.ci_high is not None:
        svg.line(scale(row.ci_low), y, scale(row.ci_high), y, stroke=color, stroke_width=2.2)
        for bound in (row.ci_low, row.ci_high):
            svg.line(scale(bound), y - 5, scale(bound), y + 5, stroke=color, stroke_width=1.6)
    svg.circle(scale(row.delta), y, 5, fill=color)
    interval = (f" [{100 * row.ci_low:+.1f}, {100 * row.ci_high:+.1f}]"
                if row.ci_low is not None and row.ci_high is not None else "")
    svg.text(text_x, y + 4, _pts(row.delta) + interval, fill=color, font_weight=700 if row.status == "fail" else None)


def _forest_section(report: dict[str, Any]) -> str:
    rows = _forest_rows(report)
    if not rows:
        return "<h3>Accuracy by slice</h3>" + _note("No accuracy comparison in this report.")
    empty = [r.name for r in rows if r.delta is None]
    caption = ("Dot: candidate − baseline accuracy; bar: 95% paired bootstrap interval; red dashes: the allowed "
               "drop (max_accuracy_drop overall, max_slice_accuracy_drop per slice); red rows failed a check.")
    if empty:
        caption += " No examples: " + ", ".join(empty) + "."
    return f"<h3>Accuracy by slice</h3>{_figure(_forest_svg(rows), caption)}"


# ---------------------------------------------------------------------------------------------
# 3c. Reliability diagrams
# ---------------------------------------------------------------------------------------------


def _filled_bins(bins: Sequence[Any]) -> list[dict[str, Any]]:
    return [b for b in bins if isinstance(b, dict) and _is_num(b.get("count")) and b["count"] > 0
            and _is_num(b.get("accuracy")) and _is_num(b.get("mean_confidence"))]


def _reliability_svg(title: str, color: str, filled: Sequence[dict[str, Any]], ece_text: str) -> _Svg:
    """Accuracy against confidence per non-empty bin (``_filled_bins``), the diagonal dashed."""
    size, left, top = 260, 56, 34
    svg = _Svg(left + size + 20, top + size + 48, f"Reliability diagram, {title}: {ece_text}")
    svg.text(left + size / 2, 18, f"{title} · {ece_text}", text_anchor="middle", font_weight=600)
    x, y = _Scale(0, 1, left, left + size), _Scale(0, 1, top + size, top)
    ticks = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    svg.x_axis(x, top + size, ticks, lambda t: f"{t:.1f}", "confidence", grid_to=top)
    svg.y_axis(y, left, ticks, lambda t: f"{t:.1f}", "accuracy", grid_to=left + size)
    svg.line(x(0), y(0), x(1), y(1), stroke=_COLORS["muted"], stroke_dasharray="5 4")
    largest = max(b["count"] for b in filled)
    for b in filled:
        lower = b["lower"] if _is_num(b.get("lower")) else 0.0
        upper = b["upper"] if _is_num(b.get("upper")) else 1.0
        # Opacity shows how many examples a bin holds, so a one-example bin does not look decisive.
        svg.rect(x(lower) + 0.5, y(b["accuracy"]), x(upper) - x(lower) - 1, y(0) - y(b["accuracy"]),
                 fill=color, fill_opacity=round(0.2 + 0.5 * b["count"] / largest, 2))
    svg.polyline([(x(b["mean_confidence"]), y(b["accuracy"])) for b in filled], stroke=_COLORS["ink"],
                 stroke_width=1.2)
    for b in filled:
        svg.circle(x(b["mean_confidence"]), y(b["accuracy"]), 3, fill=_COLORS["ink"])
    return svg


def _reliability_section(report: dict[str, Any]) -> str:
    figures = []
    for side in ("baseline", "candidate"):
        calibration = _dict(report, "evaluations", side, "calibration")
        filled = _filled_bins(_list(calibration, "reliability"))
        if not filled:
            figures.append(_note(f"No calibration for the {side} (no probabilities)."))
            continue
        ece = _dig(calibration, "ece_equal_width", "value")
        figures.append(_figure(_reliability_svg(side, _COLORS[side], filled,
                                                f"ECE {ece:.4f}" if _is_num(ece) else "ECE n/a")))
    return ('<h3>Reliability</h3><div class="plots">' + "".join(figures) + "</div>"
            '<p class="caption">Bars: accuracy per equal-width confidence bin (darker = more examples; empty bins '
            "omitted); dots: mean confidence vs accuracy; dashed: perfect calibration.</p>")


# ---------------------------------------------------------------------------------------------
# 3d. Latency
# ---------------------------------------------------------------------------------------------


def _ms_list(values: Any) -> list[float]:
    return [float(v) for v in values if _is_num(v)] if isinstance(values, list) else []


def _latency_svg(samples: dict[str, list[float]]) -> _Svg:
    width, left, right, top, band, gap = 860, 90, 30, 16, 92, 14
    present = {side: values for side, values in samples.items() if values}
    lo = min(min(v) for v in present.values())
    hi = max(max(v) for v in present.values())
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    ticks = _nice_ticks(lo, hi)
    scale = _Scale(min(lo, ticks[0]), max(hi, ticks[-1]), left, width - right)
    height = top + len(present) * (band + gap) + 40
    svg = _Svg(width, height, "Per-batch latency, baseline and candidate, with p50, p95 and p99")
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


def _latency_band(svg: _Svg, scale: _Scale, side: str, values: Sequence[float], counts: Sequence[int],
                  edges: Sequence[float], y0: float, band: float, tallest: int) -> None:
    color = _COLORS[side]
    base_y = y0 + band
    svg.rect(scale.px_lo, y0, scale.px_hi - scale.px_lo, band, fill="#fbfcfd", stroke=_COLORS["grid"])
    svg.text(scale.px_lo - 8, y0 + band / 2, side, text_anchor="end", fill=color, font_weight=600)
    svg.text(scale.px_lo - 8, y0 + band / 2 + 15, f"{len(values)} batches", text_anchor="end", font_size=11,
             fill=_COLORS["muted"])
    for count, a, b in zip(counts, edges, edges[1:]):
        if count:
            h = (band - 30) * count / tallest
            svg.rect(scale(a) + 0.5, base_y - h, scale(b) - scale(a) - 1, h, fill=color, fill_opacity=0.55)
    for k, q in enumerate((50, 95, 99)):
        value = _percentile(values, q)
        x = scale(value)
        svg.line(x, y0 + 4 + 9 * k, x, base_y, stroke=color, stroke_width=1.5,
                 stroke_dasharray=None if q == 50 else "4 2")
        # Staggered labels: p95 and p99 are often a few pixels apart.
        svg.text(x + 3, y0 + 12 + 9 * k, f"p{q} {value:,.0f}", font_size=10, fill=color)


def _latency_section(report: dict[str, Any]) -> str:
    latency = _dict(report, "latency")
    head = "<h3>Latency</h3>"
    skipped = latency.get("skipped")
    if skipped or not latency:
        return head + _note(f"Latency was not compared: {skipped or 'no measurement in this report'}.")
    samples = {side: _ms_list(latency.get(f"{side}_batch_ms")) for side in ("baseline", "candidate")}
    caption = (f'<p class="caption">Both models timed in this run on this machine '
               f'({escape(_hardware_text(report))}): {_count(latency.get("texts"))} texts, 1 warm-up round and '
               f'{_count(latency.get("rounds"))} timed rounds, batches alternating. Cost per text = sum of each '
               "batch's median over rounds / texts.</p>")
    rows = []
    for side in ("baseline", "candidate"):
        values = samples[side]
        batch = [_ms(_percentile(values, q)) if values else "n/a" for q in (50, 95, 99)]
        rounds = ", ".join(f"{v:.2f}" for v in _ms_list(latency.get(f"{side}_round_ms")))
        per_text = latency.get(f"{side}_ms_per_text")
        rows.append((side, str(len(values)), *batch, f"{per_text:.2f} ms" if _is_num(per_text) else "n/a",
                     escape(rounds)))
    table = html_table(("side", "batches timed", "batch p50", "batch p95", "batch p99", "ms per text",
                        "ms per text, each round"), rows, numeric=range(1, 6), css="compact")
    return head + caption + (_figure(_latency_svg(samples)) if any(samples.values()) else "") + table


def _hardware_text(report: dict[str, Any]) -> str:
    return hardware_line(report.get("hardware"))


def _plots(report: dict[str, Any]) -> str:
    return ('<section id="plots"><h2>Plots</h2>' + _confusion_section(report) + _forest_section(report)
            + _reliability_section(report) + _latency_section(report) + "</section>")


# ---------------------------------------------------------------------------------------------
# 4. Flips, 5. examples, 6. warnings and configuration
# ---------------------------------------------------------------------------------------------


def _count_rate(flips: dict[str, Any], count: str, rate: str) -> str:
    if not _is_num(flips.get(count)):
        return "–"
    return _count(flips[count]) + (f" ({_pct(flips[rate])})" if _is_num(flips.get(rate)) else "")


def _stat(value: str, label: str) -> str:
    return f'<div class="stat"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _flip_matrix(flips: dict[str, Any]) -> str:
    labels, matrix = flips.get("matrix_labels"), flips.get("matrix")
    if not _is_square(matrix, len(labels) if isinstance(labels, list) else -1):
        return _note("No flip matrix.")
    rows = [(f"<b>{escape(label)}</b>", *(_count(v) for v in row)) for label, row in zip(labels, matrix)]
    headers = ("baseline \\ candidate", *(_short(str(label), 16) for label in labels))
    return ("<div><h3>Flip matrix</h3>" + html_table(headers, rows, numeric=range(1, len(labels) + 1), css="compact")
            + '<p class="caption">Rows: baseline prediction; columns: candidate prediction.</p></div>')


def _label_shift(shift: Any) -> str:
    if not _list(shift, "labels"):
        return _note("No label-distribution shift.")
    columns = (_list(shift, "baseline_share"), _list(shift, "candidate_share"), _list(shift, "delta"))
    rows = [(escape(label), _pct(_dig(columns[0], i)), _pct(_dig(columns[1], i)), _pts(_dig(columns[2], i)))
            for i, label in enumerate(shift["labels"])]
    return ("<div><h3>Predicted-label shift</h3>"
            + html_table(("label", "baseline share", "candidate share", "change"), rows, numeric=(1, 2, 3), css="compact")
            + f'<p class="caption">Total variation distance: {_pct(shift.get("total_variation"))}.</p></div>')


def _flips(report: dict[str, Any]) -> str:
    flips = _dict(report, "comparison", "flips")
    mcnemar = _dict(report, "comparison", "mcnemar")
    stats = "".join((
        _stat(_count_rate(flips, "flipped", "flip_rate"), "flipped predictions"),
        _stat(_count_rate(flips, "harmful", "harmful_rate"), "harmful: right → wrong"),
        _stat(_count_rate(flips, "beneficial", "beneficial_rate"), "beneficial: wrong → right"),
        _stat(_count_rate(flips, "other", "other_rate"), "other: wrong → another wrong"),
        _stat(_p_value(mcnemar.get("p_value")), "McNemar mid-p" + (
            f" ({_count(mcnemar['discordant'])} discordant pairs)" if _is_num(mcnemar.get("discordant")) else "")),
    ))
    return (f'<section id="flips"><h2>Flips</h2><div class="stats">{stats}</div><div class="side-by-side">'
            f'{_flip_matrix(flips)}{_label_shift(_dig(report, "comparison", "label_shift"))}</div></section>')


def _example_flips(report: dict[str, Any]) -> str:
    examples = [e for e in _list(report, "example_flips") if isinstance(e, dict)][:_MAX_EXAMPLE_FLIPS]
    head = '<section id="examples"><h2>Example flips</h2>'
    if not examples:
        return head + _note("No example flips in this report.") + "</section>"
    rows = []
    for e in examples:
        kind = str(e.get("kind") or "")
        row = e.get("row")
        rows.append((_count(row + 1 if _is_num(row) else None), escape(e.get("label")), f"{escape(e.get('baseline'))} → {escape(e.get('candidate'))}",
                     f'<span class="kind-{escape(kind)}">{escape(kind)}</span>',
                     escape(_short(str(e.get("text") or ""), _MAX_TEXT_CHARS))))
    table = html_table(("row", "gold label", "baseline → candidate", "kind", "text"), rows, numeric=(0,), wrap=(4,))
    return head + table + "</section>"


def _warnings_and_config(report: dict[str, Any]) -> str:
    warnings = [str(w) for w in [*_list(report, "notes"), *_list(report, "warnings")]]
    listing = ('<ul class="warnings">' + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
               if warnings else _note("No warnings."))
    blocks = [("configuration", report.get("config")), ("data", report.get("data")),
              ("baseline", report.get("baseline")), ("candidate", report.get("candidate"))]
    details = "".join(
        f"<h3>{escape(name)}</h3><pre>{escape(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"
        for name, value in blocks if value is not None)
    return (f'<section id="warnings"><h2>Warnings</h2>{listing}<details><summary>Configuration, thresholds and '
            f"settings of both sides</summary>{details or _note('No configuration recorded.')}</details></section>")


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------


def render_gate_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page for a gate report dict (the report.json schema, version 2)."""
    if not isinstance(report, dict):
        raise TypeError(f"The 'report' argument of render_gate_html must be a dict (report.json). "
                        f"Got {type(report).__name__} instead.")
    verdict = "PASS" if report.get("verdict") == "pass" else "FAIL"
    body = "".join((_banner(report), _checks(report), _plots(report), _flips(report), _example_flips(report),
                    _warnings_and_config(report)))
    return render_page(f"textgate gate: {verdict}", body, script=_SCRIPT)


def render_page(title: str, body: str, *, script: str = "", css: str = "") -> str:
    """A self-contained page in the gate report's style: ``body`` is already-escaped HTML,
    ``script`` the page's only script (allowed by its hash), ``css`` added to the shared CSS.
    Only this exact script may run (hash) and nothing may be fetched: the page stays inert offline."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}{css}</style></head>\n"
        f"<body><main>{body}</main>\n<script>{script}</script></body></html>\n"
    )
