"""Self-contained HTML pages that work offline: inline CSS, inline SVG, one script allowed by
its hash, and a Content-Security-Policy that forbids every fetch, so a report opened from a CI
artifact can never reach the network. Every string from a report is escaped (tweets carry
``<``, ``&`` and quotes). Also the small formatters the pages share (a missing or non-finite
number is shown as "n/a")."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from html import escape as _escape_html
from typing import Any

__all__ = [
    "COLORS",
    "LAYOUT_CHECK_SCRIPT",
    "dig",
    "dig_dict",
    "dig_list",
    "escape",
    "fmt_count",
    "fmt_ms",
    "fmt_p_value",
    "fmt_pct",
    "fmt_pts",
    "html_table",
    "is_number",
    "note",
    "percentile",
    "render_page",
    "shorten",
]

# Long enough to recognize a slice or label, short enough to leave room for the plot itself.
_MAX_LABEL_CHARS = 30

COLORS = {
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
LAYOUT_CHECK_SCRIPT = """
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


def dig(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` or None as soon as a step is missing or null."""
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def dig_dict(obj: Any, *path: str | int) -> dict[str, Any]:
    """The dict at ``path``, or {} when it is missing, null or not a dict."""
    found = dig(obj, *path)
    return found if isinstance(found, dict) else {}


def dig_list(obj: Any, *path: str | int) -> list[Any]:
    """The list at ``path``, or [] when it is missing, null or not a list."""
    found = dig(obj, *path)
    return found if isinstance(found, list) else []


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def escape(value: Any) -> str:
    """``value`` as HTML text, quotes escaped too (safe in attributes); None is ""."""
    return _escape_html("" if value is None else str(value))


def shorten(text: str, limit: int = _MAX_LABEL_CHARS) -> str:
    """Ellipsis in the middle: slice names often share a prefix and differ at the end."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def fmt_pct(value: Any, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%" if is_number(value) else "n/a"


def fmt_pts(value: Any) -> str:
    return f"{100 * value:+.1f} pts" if is_number(value) else "n/a"


def fmt_ms(value: Any) -> str:
    return f"{value:,.1f} ms" if is_number(value) else "n/a"


def fmt_count(value: Any) -> str:
    return f"{value:,}" if is_number(value) else "n/a"


def fmt_p_value(value: Any) -> str:
    if not is_number(value):
        return "–"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def note(text: str) -> str:
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


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile, the same definition as numpy's default (and textgate.evaluation.metrics)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(position), math.ceil(position)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


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
