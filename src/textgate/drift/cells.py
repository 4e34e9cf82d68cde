"""How a drift report's numbers read, cell by cell: the formatting the terminal and Markdown
tables (:mod:`textgate.drift.report`) and the HTML page (:mod:`textgate.drift.html`) share.
Each function takes a check, or the report, as report.json holds it."""

from __future__ import annotations

from typing import Any

__all__ = ["SLICE_HEADERS", "effect_text", "interval_text", "p_text", "side_value", "skipped_note", "slice_rows"]

_RATE_EFFECT = "difference"


def _is_rate(check: dict[str, Any]) -> bool:
    return check.get("effect_name") == _RATE_EFFECT


def _number(check: dict[str, Any], value: Any, *, signed: bool, unit: str = "") -> str:
    """A rate in percent (a difference of rates in points), else a plain number with its unit."""
    if value is None:
        return "-"
    if _is_rate(check):
        return f"{100 * value:+.1f} pts" if signed else f"{100 * value:.1f}%"
    return f"{value:.1f} {unit}" if unit else f"{value:.3f}"


def side_value(check: dict[str, Any], side: str) -> str:
    """A side's rate or mean, as the report shows it ("-" for label distributions)."""
    unit = "" if check.get("effect_name") == "AUC" else check.get("unit") or ""
    return _number(check, check.get(side), signed=False, unit=unit)


def effect_text(check: dict[str, Any]) -> str:
    """The effect with its name: "+21.4 pts", "KS 0.331", "PSI 0.289", "AUC 0.612"."""
    name = check.get("effect_name")
    label = "" if _is_rate(check) or check.get("effect") is None else ("KS" if name == "KS distance" else name)
    return (f"{label} " if label else "") + _number(check, check.get("effect"), signed=True)


def interval_text(check: dict[str, Any]) -> str:
    """The 95% interval: of the difference for rates (points), of the difference of means for
    distributions (Welch), of the AUC for the domain classifier; "-" for label distributions."""
    low, high = check.get("ci_low"), check.get("ci_high")
    if low is None or high is None:
        return "-"
    if _is_rate(check):
        return f"[{100 * low:+.1f}, {100 * high:+.1f}] pts"
    if check.get("effect_name") == "AUC":
        return f"[{low:.3f}, {high:.3f}]"
    return f"[{low:+.3g}, {high:+.3g}]"


def p_text(value: Any) -> str:
    if value is None:
        return "-"
    if value < 1e-300:
        return "<1e-300"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


SLICE_HEADERS = ("slice", "reference rows", "current rows", "drifted")


def slice_rows(report: dict[str, Any]) -> tuple[tuple[str, str, str, str], ...]:
    """Per slice: its name, rows per side, and its drifted checks (or why it was skipped)."""
    drifted: dict[str, list[str]] = {}
    for c in report.get("checks") or []:
        if c.get("status") == "drift" and c.get("scope") != "overall":
            drifted.setdefault(c["scope"], []).append(c["name"])
    return tuple((s["name"], _rows(s.get("reference_rows")), _rows(s.get("current_rows")),
                  s.get("skipped") or ", ".join(drifted.get(s["name"], [])) or "none")
                 for s in report.get("slices") or [])


def _rows(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def skipped_note(report: dict[str, Any]) -> str | None:
    """One line for every skipped check, grouped by reason."""
    by_reason: dict[str, list[str]] = {}
    for c in report["checks"]:
        if c["status"] == "skip":
            names = by_reason.setdefault(c["reason"], [])
            label = c["name"] if c["scope"] == "overall" else f"{c['name']} ({c['scope']})"
            if label not in names:
                names.append(label)
    if not by_reason:
        return None
    return "skipped: " + "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())
