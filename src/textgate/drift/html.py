"""Render a drift report (report.json, schema version 1) as one self-contained HTML page with
inline SVG plots: label shares side by side, confidence histograms and descriptor deltas (the
toolkit: :mod:`textgate.report.html`, :mod:`textgate.report.svg`)."""

from __future__ import annotations

from typing import Any

from textgate.drift import cells
from textgate.hardware import hardware_line
from textgate.report.html import (
    COLORS,
    LAYOUT_CHECK_SCRIPT,
    dig_list,
    escape,
    fmt_count,
    html_table,
    note,
    render_page,
    shorten,
)
from textgate.report.svg import CHAR_PX, Scale, Svg, figure, nice_ticks

__all__ = ["render_drift_html"]

_SIDES = (("reference", COLORS["baseline"]), ("current", COLORS["candidate"]))
_BADGE = {"drift": "fail", "pass": "pass", "skip": "skip"}


def render_drift_html(report: dict[str, Any]) -> str:
    body = [_banner(report), _checks(report), _label_plots(report), _confidence_plots(report),
            _delta_plot(report), _slices(report), _notes(report)]
    return render_page(f"textgate drift: {report.get('verdict', '')}", "".join(body), script=LAYOUT_CHECK_SCRIPT)


def _banner(report: dict[str, Any]) -> str:
    drift = report.get("verdict") == "drift"
    testing = report.get("multiple_testing") or {}
    items = [(side, f"{report[side]['source']} · {fmt_count(report[side]['rows'])} rows ({report[side]['kind']})")
             for side in ("reference", "current")]
    items += [("false alarms", f"Holm over {testing.get('family_size', 'n/a')} checks, family-wise rate "
                               f"{testing.get('alpha', 'n/a')}"),
              ("machine", hardware_line(report.get("hardware"))), ("created", str(report.get("created") or "n/a"))]
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return (f'<section class="banner {"" if drift else "pass"}" id="verdict"><h1>textgate drift</h1>'
            f'<span class="verdict">{"DRIFT" if drift else "NO DRIFT"}</span>'
            f'<p class="summary">{escape(report.get("summary") or "")}</p><dl class="meta">{meta}</dl></section>')


def _checks(report: dict[str, Any]) -> str:
    checks = [c for c in dig_list(report, "checks") if isinstance(c, dict) and c.get("status") != "skip"]
    rows, classes = [], []
    for c in checks:
        status = str(c.get("status"))
        rows.append([f'<span class="badge {_BADGE.get(status, "skip")}">{escape(status)}</span>', escape(c["name"]),
                     escape(c["scope"]), escape(cells.side_value(c, "reference")), escape(cells.side_value(c, "current")),
                     escape(cells.effect_text(c)), escape(cells.interval_text(c)), escape(cells.p_text(c.get("p_adjusted"))),
                     escape(c.get("reason") or "")])
        classes.append("fail" if status == "drift" else "")
    table = html_table(["status", "check", "scope", "reference", "current", "effect", "95% interval", "adjusted p",
                        "reason"], rows, numeric=(3, 4, 5, 6, 7), wrap=(8,), row_classes=classes)
    skipped = cells.skipped_note(report)
    return (f'<section id="checks"><h2>Checks</h2>{table}' + (note(skipped) if skipped else "") + "</section>")


def _label_plots(report: dict[str, Any]) -> str:
    checks = [c for c in dig_list(report, "checks") if c.get("counts") and c.get("scope") == "overall"]
    if not checks:
        return ""
    figures = "".join(figure(_shares_svg(c), f"{c['name']}: {c.get('change') or ''}") for c in checks)
    return f'<section id="labels"><h2>Label shares</h2><div class="plots">{figures}</div></section>'


def _shares_svg(check: dict[str, Any]) -> Svg:
    """Per category, the reference and current shares as two horizontal bars."""
    counts = check["counts"]
    left = 16 + CHAR_PX * max(len(shorten(str(c["category"]))) for c in counts)
    plot_w, bar, gap, top = 300, 11, 10, 48
    height = top + len(counts) * (2 * bar + gap) + 40
    svg = Svg(left + plot_w + 60, height, f"{check['name']}: shares of reference and current")
    svg.text(left, 18, f"{check['name']} · {check.get('effect_name')} {check.get('effect') or 0:.3f}", font_weight=600)
    for i, (side, color) in enumerate(_SIDES):
        svg.rect(left + 90 * i, 26, 10, 10, fill=color)
        svg.text(left + 90 * i + 14, 35, side, font_size=11)
    top_share = max(max(c["reference_share"], c["current_share"]) for c in counts)
    ticks = nice_ticks(0, max(top_share, 0.05), 4)
    x = Scale(0, max(ticks[-1], top_share), left, left + plot_w)
    y = top
    for c in counts:
        svg.text(left - 8, y + bar + 4, shorten(str(c["category"])), text_anchor="end", hover=str(c["category"]))
        for side, color in _SIDES:
            share = c[f"{side}_share"]
            svg.rect(x(0), y, x(share) - x(0), bar, fill=color)
            svg.text(x(share) + 4, y + bar - 2, f"{100 * share:.1f}%", font_size=10, fill=COLORS["muted"])
            y += bar
        y += gap
    svg.x_axis(x, y + 2, ticks, lambda t: f"{100 * t:.0f}%", "share of rows")
    return svg


def _confidence_plots(report: dict[str, Any]) -> str:
    hists = [h for h in dig_list(report, "histograms") if isinstance(h, dict) and h.get("id") == "confidence"]
    if not hists:
        return ""
    figures = "".join(figure(_histogram_svg(h), "share of rows per confidence bin (top-label probability)")
                      for h in hists)
    return f'<section id="confidence"><h2>Confidence</h2><div class="plots">{figures}</div></section>'


def _histogram_svg(hist: dict[str, Any]) -> Svg:
    edges = hist["edges"]
    shares = {side: [v / max(sum(hist[side]), 1) for v in hist[side]] for side, _ in _SIDES}
    left, top, w, h = 56, 30, 420, 200
    svg = Svg(left + w + 20, top + h + 48, "Confidence histograms, reference and current")
    highest = max(max(s) for s in shares.values()) or 0.1
    ticks = nice_ticks(0, highest, 4)
    x, y = Scale(edges[0], edges[-1], left, left + w), Scale(0, max(ticks[-1], highest), top + h, top)
    svg.x_axis(x, top + h, nice_ticks(edges[0], edges[-1], 5), lambda t: f"{t:.1f}", "confidence", grid_to=top)
    svg.y_axis(y, left, ticks, lambda t: f"{100 * t:.0f}%", "share", grid_to=left + w)
    for (side, color), opacity in zip(_SIDES, (0.35, 0.0)):
        points = [(x(edges[0]), y(0))]
        for i, share in enumerate(shares[side]):
            points += [(x(edges[i]), y(share)), (x(edges[i + 1]), y(share))]
        points.append((x(edges[-1]), y(0)))
        if opacity:
            svg.element("polygon", points=" ".join(f"{a:.1f},{b:.1f}" for a, b in points), fill=color,
                        fill_opacity=opacity)
        svg.polyline(points, stroke=color, stroke_width=1.6)
    for i, (side, color) in enumerate(_SIDES):
        svg.rect(left + 10 + 110 * i, 10, 10, 10, fill=color)
        svg.text(left + 24 + 110 * i, 19, side, font_size=11)
    return svg


def _delta_plot(report: dict[str, Any]) -> str:
    rates = [c for c in dig_list(report, "checks") if c.get("effect_name") == "difference"
             and c.get("status") != "skip" and c.get("scope") == "overall"]
    if not rates:
        return ""
    return (f'<section id="descriptors"><h2>Rates: current minus reference</h2><div class="plots">'
            f"{figure(_deltas_svg(rates), 'points; whiskers: 95% Newcombe interval; red: drift')}</div></section>")


def _deltas_svg(checks: list[dict[str, Any]]) -> Svg:
    left = 16 + CHAR_PX * max(len(shorten(c["name"])) for c in checks)
    w, row, top = 360, 22, 16
    bound = max(max(abs(c.get("ci_low") or 0), abs(c.get("ci_high") or 0), abs(c["effect"])) for c in checks)
    bound = max(bound, 0.01)
    ticks = nice_ticks(-bound, bound, 6)
    x = Scale(-bound, bound, left, left + w)
    svg = Svg(left + w + 30, top + row * len(checks) + 48, "Rate differences, current minus reference")
    bottom = top + row * len(checks)
    svg.line(x(0), top, x(0), bottom, stroke=COLORS["muted"])
    for i, c in enumerate(checks):
        y = top + i * row
        color = COLORS["fail"] if c["status"] == "drift" else COLORS["skip"]
        svg.text(left - 8, y + 15, shorten(c["name"]), text_anchor="end", hover=c["name"])
        low, high = sorted((x(0), x(c["effect"])))
        svg.rect(low, y + 5, high - low, 12, fill=color, fill_opacity=0.8)
        if c.get("ci_low") is not None and c.get("ci_high") is not None:
            svg.line(x(c["ci_low"]), y + 11, x(c["ci_high"]), y + 11, stroke=COLORS["ink"], stroke_width=1.2)
    svg.x_axis(x, bottom + 4, ticks, lambda t: f"{100 * t:+.0f}", "difference in points")
    return svg


def _slices(report: dict[str, Any]) -> str:
    rows = [[escape(cell) for cell in row] for row in cells.slice_rows(report)]
    if not rows:
        return ""
    return (f'<section id="slices"><h2>Slices</h2>'
            f"{html_table(list(cells.SLICE_HEADERS), rows, numeric=(1, 2), wrap=(3,))}</section>")


def _notes(report: dict[str, Any]) -> str:
    notes = dig_list(report, "notes")
    if not notes:
        return ""
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return f'<section id="notes"><h2>Notes</h2><ul class="warnings">{items}</ul></section>'
