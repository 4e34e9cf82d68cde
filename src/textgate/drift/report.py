"""Drift reports: report.json (``kind: "textgate.drift"``, schema below), report.md, the
terminal tables (both drawn from the same `Table`s) and report.html (:mod:`textgate.drift.html`).

report.json, schema_version 1: ``verdict`` ("drift" | "no drift"), ``exit_code``, ``summary``
(the first line of the human output), ``reference`` / ``current`` (what each window held),
``config`` (thresholds, settings, slices), ``multiple_testing`` (method, alpha, family_size),
``checks`` (one object per check and scope: id, name, scope, status, reason, test, statistic,
p_value, p_adjusted, effect_name, effect, threshold, ci_low, ci_high, reference, current, shift,
wasserstein, unit, counts, in_family, change, reference_n, current_n), ``slices``,
``histograms`` (confidence: bin edges and counts per side), ``notes``, ``hardware``, ``created``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textgate.drift import cells
from textgate.drift.run import DriftReport
from textgate.hardware import detect_hardware, hardware_line
from textgate.report.files import report_header, write_report_files
from textgate.report.tables import Table, markdown_table, print_tables

__all__ = ["DRIFT_REPORT_SCHEMA_VERSION", "drift_report_dict", "drift_tables", "render_drift_markdown",
           "render_drift_terminal", "write_drift_reports"]

DRIFT_REPORT_SCHEMA_VERSION = 1


def drift_report_dict(report: DriftReport) -> dict[str, Any]:
    """The JSON document (module docstring); the CLI prints it for --format json."""
    plain = report.to_dict()
    return {
        **report_header("textgate.drift", DRIFT_REPORT_SCHEMA_VERSION),
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "summary": report.summary,
        "reference": plain["reference"],
        "current": plain["current"],
        "config": plain["config"],
        "multiple_testing": {"method": "holm", "alpha": report.config["thresholds"]["alpha"],
                             "family_size": report.family_size,
                             "controls": "the chance that any check reports drift when the windows come "
                                         "from one population (family-wise error rate)"},
        "checks": plain["checks"],  # DriftReport.to_dict flattens each check's test result
        "slices": plain["slices"],
        "histograms": plain["histograms"],
        "notes": plain["notes"],
        "hardware": detect_hardware().to_dict(),
    }


def drift_tables(report: dict[str, Any]) -> list[Table]:
    """The report as titled tables, in reading order (terminal and Markdown)."""
    run = [c for c in report["checks"] if c["status"] != "skip"]
    tables = [Table("Checks", ("status", "check", "scope", "reference", "current", "effect", "95% interval",
                               "adjusted p"),
                    tuple((c["status"], c["name"], c["scope"], cells.side_value(c, "reference"),
                           cells.side_value(c, "current"), cells.effect_text(c), cells.interval_text(c),
                           cells.p_text(c["p_adjusted"])) for c in run),
                    caption=(f"Holm over {report['multiple_testing']['family_size']} checks at a family-wise "
                             f"false-alarm rate of {report['multiple_testing']['alpha']:g}; intervals: of the "
                             "difference for rates, of the difference of means for distributions, of the AUC"))]
    for check in report["checks"]:
        if check["counts"] and check["scope"] == "overall":
            tables.append(Table(f"{check['name'].capitalize()} (counts)",
                                ("label", "reference", "current", "Δ share"),
                                tuple((c["category"], f"{c['reference']:,} ({100 * c['reference_share']:.1f}%)",
                                       f"{c['current']:,} ({100 * c['current_share']:.1f}%)",
                                       f"{100 * (c['current_share'] - c['reference_share']):+.1f} pts")
                                      for c in check["counts"])))
    if report["slices"]:
        tables.append(Table("Slices", cells.SLICE_HEADERS, cells.slice_rows(report)))
    return tables


def render_drift_markdown(report: dict[str, Any]) -> str:
    verdict = "⚠️ **Drift**" if report["verdict"] == "drift" else "✅ **No drift**"
    ref, cur = report["reference"], report["current"]
    out = [f"## textgate drift: {verdict}", "", report["summary"], "",
           f"- reference: `{ref['source']}` ({ref['rows']:,} rows, {ref['kind']})",
           f"- current: `{cur['source']}` ({cur['rows']:,} rows, {cur['kind']})",
           f"- machine: {hardware_line(report.get('hardware'))}", ""]
    for table in drift_tables(report):
        out += [f"### {table.title}", "", *markdown_table(table), ""]
        if table.caption:
            out += [f"<sub>{table.caption}</sub>", ""]
    notes = [*report["notes"], *filter(None, [cells.skipped_note(report)])]
    if notes:
        out += ["### Notes", "", *[f"- {n}" for n in notes], ""]
    out += [f"<sub>textgate drift · report schema {report['schema_version']}</sub>", ""]
    return "\n".join(out)


def render_drift_terminal(report: dict[str, Any], console: Any) -> None:
    """The verdict line first, then the tables and notes."""
    from rich.markup import escape

    style = "bold red" if report["verdict"] == "drift" else "bold green"
    console.print(f"[{style}]{escape(report['summary'])}[/]", highlight=False, soft_wrap=True)
    print_tables(drift_tables(report), [*report["notes"], *filter(None, [cells.skipped_note(report)])], console)


def write_drift_reports(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """report.json, report.md and report.html in ``out_dir``."""
    from textgate.drift.html import render_drift_html

    return write_report_files(out_dir, report, markdown=render_drift_markdown(report), html=render_drift_html(report))
