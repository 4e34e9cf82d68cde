"""Render a calibration run: report.json (schema version 1), report.md, report.html with
reliability diagrams before/after (inline SVG, the gate report's style), and terminal tables.

The terminal and the Markdown draw the same `Table`s, so they never disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgate.calibrate.heldout import CalibrationResult
from textgate.calibrate.mc_dropout import McDropoutRun
from textgate.evaluation.metrics import DEFAULT_N_BINS
from textgate.hardware import hardware_line
from textgate.report.files import write_report_files
from textgate.report.html import (
    COLORS,
    LAYOUT_CHECK_SCRIPT,
    escape,
    html_table,
    note,
    render_page,
)
from textgate.report.svg import figure, filled_bins, reliability_svg
from textgate.report.tables import Table, markdown_table, print_tables

__all__ = [
    "CALIBRATION_REPORT_SCHEMA_VERSION",
    "_LABELS",
    "calibration_report_dict",
    "calibration_tables",
    "_delta",
    "_ci",
    "_value",
    "render_calibration_html",
    "render_calibration_markdown",
    "render_calibration_terminal",
    "write_calibration_reports",
]

# Version of report.json; bump on any incompatible change and keep readers of older ones.
CALIBRATION_REPORT_SCHEMA_VERSION = 1
# Fractions shown as percentages; NLL and Brier are not fractions.
_PERCENT_METRICS = frozenset({"ece_equal_width", "ece_equal_mass", "mce", "accuracy"})
_LABELS = {"ece_equal_width": f"ECE ({DEFAULT_N_BINS} equal-width bins)",
           "ece_equal_mass": f"ECE ({DEFAULT_N_BINS} equal-mass bins)",
           "mce": "MCE", "brier": "Brier", "nll": "NLL", "accuracy": "accuracy"}


def calibration_report_dict(result: CalibrationResult, *, model: dict[str, Any], data: dict[str, Any],
                            mc_dropout: McDropoutRun | None = None,
                            calibration_file: str | None = None,
                            hardware: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report (also what --format json prints). ``mc_dropout`` is what
    :func:`textgate.calibrate.mc_dropout_curve` returned (its seed and row count included),
    normally on the same held-out rows."""
    report: dict[str, Any] = {
        "schema_version": CALIBRATION_REPORT_SCHEMA_VERSION,
        "kind": "textgate.calibration",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "temperature": result.temperature,
        "fit": result.fit.to_dict(),
        "holdout": {"kind": result.holdout, "description": result.holdout_description, "fit_rows": result.n_fit,
                    "eval_rows": result.n_eval, "fold_temperatures": list(result.fold_temperatures)},
        "metrics": [m.to_dict() for m in result.metrics],
        "bootstrap": result.bootstrap,
        "before": result.before.to_dict(),
        "after": result.after.to_dict(),
        "mc_dropout": None,
        "model": model,
        "data": data,
        "calibration_file": calibration_file,
        "hardware": hardware,
        "notes": list(result.notes),
    }
    if mc_dropout is not None:
        report["mc_dropout"] = {
            **mc_dropout.summary(),  # seed, rows (the texts MC dropout ran on), points, timings
            "method": ("mean of N stochastic passes with dropout active (eager attention, attention "
                       "dropout included), uncalibrated model; seconds: the wall time of those N passes; "
                       "one deterministic pass (T = 1 or temperature-scaled) timed before and after them"),
        }
    return report


# ---------------------------------------------------------------------------------------------
# Tables (terminal and Markdown)
# ---------------------------------------------------------------------------------------------


def _value(name: str, value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%" if name in _PERCENT_METRICS else f"{value:.4f}"


def _delta(name: str, value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:+.2f} pts" if name in _PERCENT_METRICS else f"{value:+.4f}"


def _ci(name: str, bounds: Sequence[Any], signed: bool = False) -> str:
    show = _delta if signed else _value
    return f"[{show(name, bounds[0])}, {show(name, bounds[1])}]"


# The same formatting for other renderers of these figures (benchmarks/calibration.py writes
# BENCHMARKS.md with them): metric labels, values, signed changes and intervals.
METRIC_LABELS = _LABELS
format_value, format_delta, format_interval = _value, _delta, _ci


def calibration_tables(report: dict[str, Any]) -> list[Table]:
    holdout = report["holdout"]
    rows = tuple(
        (_LABELS.get(m["name"], m["name"]), _value(m["name"], m["before"]), _ci(m["name"], m["before_ci"]),
         _value(m["name"], m["after"]), _ci(m["name"], m["after_ci"]), _delta(m["name"], m["delta"]),
         _ci(m["name"], m["delta_ci"], signed=True))
        for m in report["metrics"]
    )
    folds = holdout["fold_temperatures"]
    caption = (f"T = {report['temperature']:.4f}; held out: {holdout['description']}; "
               f"{holdout['eval_rows']:,} evaluated rows"
               + (f"; fold temperatures {', '.join(f'{t:.3f}' for t in folds)}" if len(folds) > 1 else "")
               + f". {report['bootstrap']}.")
    tables = [Table("Temperature scaling, held out", ("metric", "before", "95% CI", "after", "95% CI", "change",
                                                      "95% CI"), rows, caption)]
    mc = report.get("mc_dropout")
    if mc:
        metrics = {m["name"]: m for m in report["metrics"]}
        ts_rows = [("uncalibrated (T = 1)", "1", "before"), (f"temperature scaling (T = {report['temperature']:.3f})",
                                                               "1", "after")]
        mc_rows = [(label, passes, _value("ece_equal_width", metrics["ece_equal_width"][side]),
                    _value("nll", metrics["nll"][side]), _value("brier", metrics["brier"][side]),
                    _value("accuracy", metrics["accuracy"][side]), f"{mc['deterministic_seconds_per_pass']:.2f}")
                   for label, passes, side in ts_rows]
        mc_rows += [("MC dropout", str(p["passes"]), _value("ece_equal_width", p["ece_equal_width"]),
                     _value("nll", p["nll"]), _value("brier", p["brier"]), _value("accuracy", p["accuracy"]),
                     f"{p['seconds']:.2f}") for p in mc["points"]]
        tables.append(Table("MC dropout vs temperature scaling, same held-out rows",
                            ("method", "passes", "ECE", "NLL", "Brier", "accuracy", "seconds"), tuple(mc_rows),
                            f"{mc['rows']:,} rows, seed {mc['seed']}; {mc['method']}."))
    return tables


def _run_lines(report: dict[str, Any]) -> list[str]:
    model, data = report["model"], report["data"]
    lines = [f"model: {model.get('description')} (fingerprint {model.get('fingerprint')})",
             f"calibration data: {data.get('path')} ({data.get('rows'):,} rows, fingerprint {data.get('fingerprint')})"]
    if data.get("eval_path"):
        lines.append(f"evaluation data: {data['eval_path']} ({data.get('eval_rows'):,} rows)")
    lines.append(f"fit: {report['fit']['method']}")
    lines.append(f"machine: {hardware_line(report.get('hardware'))}")
    if report.get("calibration_file"):
        lines.append(f"calibration file: {report['calibration_file']}")
    return lines


def render_calibration_markdown(report: dict[str, Any]) -> str:
    ece = next(m for m in report["metrics"] if m["name"] == "ece_equal_width")
    out = ["# textgate calibrate", "", (f"**Temperature T = {report['temperature']:.4f}** (ECE "
                                        f"{_value(ece['name'], ece['before'])} → {_value(ece['name'], ece['after'])} "
                                        "on held-out rows)."), ""]
    for table in calibration_tables(report):
        out += [f"## {table.title}", "", *markdown_table(table), "", f"_{table.caption}_", ""]
    out += [f"## Reliability ({DEFAULT_N_BINS} equal-width bins)", "",
            "| bin | n before | conf before | acc before | n after | conf after | acc after |",
            "|---|---|---|---|---|---|---|"]
    for b, a in zip(report["before"]["reliability"], report["after"]["reliability"], strict=True):
        out.append(f"| ({b['lower']:.3f}, {b['upper']:.3f}] | {b['count']} | {_value('accuracy', b['mean_confidence'])} "
                   f"| {_value('accuracy', b['accuracy'])} | {a['count']} | {_value('accuracy', a['mean_confidence'])} "
                   f"| {_value('accuracy', a['accuracy'])} |")
    out.append("")
    if report["notes"]:
        out += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    out += ["## Run", ""] + [f"- {line}" for line in _run_lines(report)] + [""]
    return "\n".join(out)


def render_calibration_terminal(report: dict[str, Any], console: Any) -> None:
    print_tables(calibration_tables(report), report["notes"], console)
    for line in _run_lines(report):
        console.print(f"[dim]{line}[/]")


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def _ece_text(ece: Any) -> str:
    return f"ECE {100 * ece:.2f}%" if isinstance(ece, (int, float)) and math.isfinite(ece) else "ECE n/a"


def _html_table(table: Table) -> str:
    return (f"<h3>{escape(table.title)}</h3>"
            + html_table(table.headers, [[escape(c) for c in row] for row in table.rows],
                     numeric=range(1, len(table.headers)))
            + f'<p class="caption">{escape(table.caption)}</p>')


def render_calibration_html(report: dict[str, Any]) -> str:
    """One self-contained page: summary, tables, reliability diagrams before/after, run details."""
    figures = []
    for side, title, color in (("before", "before (T = 1)", COLORS["baseline"]),
                               ("after", f"after (T = {report['temperature']:.3f})", COLORS["candidate"])):
        filled = filled_bins(report[side]["reliability"])
        ece = report[side]["ece_equal_width"]["value"]
        figures.append(figure(reliability_svg(title, color, filled, _ece_text(ece))) if filled else note(f"No bins {side}."))
    body = (f'<section class="banner pass"><h1>textgate calibrate</h1><h2>Temperature T = '
            f"{report['temperature']:.4f}</h2><p>{escape(report['holdout']['description'])}</p></section>"
            "<section>" + "".join(_html_table(t) for t in calibration_tables(report)) + "</section>"
            '<section><h2>Reliability</h2><div class="plots">' + "".join(figures) + "</div>"
            '<p class="caption">Held-out rows. Bars: accuracy per equal-width confidence bin (darker = more '
            "examples; empty bins omitted); dots: mean confidence vs accuracy; dashed: perfect calibration.</p>"
            "</section>"
            + ("<section><h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report["notes"]) + "</ul></section>"
               if report["notes"] else "")
            + "<section><h2>Run</h2><ul>" + "".join(f"<li>{escape(line)}</li>" for line in _run_lines(report))
            + "</ul></section>")
    return render_page(f"textgate calibrate: T = {report['temperature']:.3f}", body, script=LAYOUT_CHECK_SCRIPT)


def write_calibration_reports(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path]:
    """Write report.json, report.md and report.html into ``out_dir``."""
    return tuple(write_report_files(out_dir, report, markdown=render_calibration_markdown(report),
                                    html=render_calibration_html(report)))
