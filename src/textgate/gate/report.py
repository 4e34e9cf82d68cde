"""Gate reports: report.json (schema in docs/gate-report.md), report.md for a PR comment, and
report.html (one self-contained file with plots)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from textgate.evaluation.registry import metric_info
from textgate.gate.run import GateRun
from textgate.hardware import hardware_line
from textgate.report.files import write_report_files

__all__ = ["GATE_REPORT_SCHEMA_VERSION", "gate_report_dict", "render_gate_markdown", "write_gate_reports"]

# 3: metric ids from textgate.evaluation.registry (ece -> ece_equal_width, total_variation ->
# label_shift, slice_flip_rate -> flip_rate), thresholds' new keys, each check's value_is;
# 2: latency timed in the run, hardware, notes.
GATE_REPORT_SCHEMA_VERSION = 3
_TEXT_LIMIT = 280  # characters of an example's text shown in reports (one tweet)


def gate_report_dict(run: GateRun) -> dict[str, Any]:
    result, comparison = run.result, run.comparison
    return {
        "schema_version": GATE_REPORT_SCHEMA_VERSION,
        "kind": "textgate.gate",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        "summary": result.summary,
        "config": {**run.config.settings_dict(), "thresholds": run.config.thresholds.model_dump()},
        "data": {"path": str(run.dataset.path), "rows": len(run.dataset), "label_names": list(run.dataset.label_names),
                 "fingerprint": run.dataset.fingerprint,
                 "texts_fingerprint": run.evaluations["baseline"].data["texts_fingerprint"]},
        "baseline": _side(run.baseline),
        "candidate": _side(run.candidate),
        "checks": [check.to_dict() for check in result.checks],
        "comparison": comparison.to_dict(),
        "evaluations": {name: _evaluation(report) for name, report in run.evaluations.items()},
        "latency": _latency(run),
        "hardware": run.hardware.to_dict(),
        "notes": list(run.notes),
        "example_flips": _example_flips(run),
        "warnings": list(result.warnings),
    }


def _side(side) -> dict[str, Any]:
    return {"description": side.description, "source": side.source,
            "model_fingerprint": side.predictions.model_fingerprint, "settings": side.predictions.settings,
            "cached": side.cached}


def _evaluation(report) -> dict[str, Any]:
    full = report.to_dict()
    return {key: full[key] for key in ("metrics", "accuracy_ci95", "calibration", "latency", "slices", "notes")}


def _latency(run: GateRun) -> dict[str, Any]:
    """Both models timed in this run on the same texts (textgate.latency), or why not."""
    if run.latency is None:
        return {"measured": "skipped", "skipped": run.latency_skipped}
    return {"measured": "in this run, interleaved", "skipped": None, **run.latency.to_dict()}


def _example_flips(run: GateRun) -> list[dict[str, Any]]:
    flips = run.comparison.flips
    base, cand = run.baseline.predictions.predicted, run.candidate.predictions.predicted
    rows = []
    for row in flips.example_rows:
        gold = run.dataset.labels[row]
        kind = "harmful" if base[row] == gold else "beneficial" if cand[row] == gold else "other"
        rows.append({"row": int(row), "text": run.dataset.texts[row][:_TEXT_LIMIT], "label": str(gold),
                     "baseline": str(base[row]), "candidate": str(cand[row]), "kind": kind})
    return rows


# --- Markdown ---------------------------------------------------------------------------------


def _fmt(value: float | None, metric: str) -> str:
    """A level of ``metric`` (a side's value, a rate), in the registry's unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    unit = metric_info(metric).unit
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "fraction":
        return f"{100 * value:.2f}%"
    if unit == "texts/s":
        return f"{value:,.1f} texts/s"
    return f"{value:.4f}"


def _change(value: float, metric: str, digits: int = 2, *, unit: bool = True) -> str:
    """candidate - baseline of ``metric``: points for a fraction."""
    if metric_info(metric).unit == "fraction":
        return f"{100 * value:+.{digits}f}" + (" pts" if unit else "")
    return f"{value:+.4f}"


def _value(check: dict[str, Any]) -> str:
    value = check["value"]
    if value is None:
        return "-"
    if check["value_is"] == "ratio":
        return f"{100 * value:+.1f}%"
    if check["value_is"] == "change":
        return _change(value, check["metric"])
    return _fmt(value, check["metric"])


def _interval(check: dict[str, Any]) -> str:
    low, high, metric = check["ci_low"], check["ci_high"], check["metric"]
    if low is None:
        return "-"
    if check["value_is"] == "ratio":
        return f"[{100 * low:+.1f}%, {100 * high:+.1f}%]"
    if check["value_is"] == "change":
        return f"[{_change(low, metric, 1, unit=False)}, {_change(high, metric, 1, unit=False)}]"
    if metric_info(metric).unit == "fraction":
        return f"[{100 * low:.1f}%, {100 * high:.1f}%]"
    return f"[{_fmt(low, metric)}, {_fmt(high, metric)}]"


_ICON = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "skip": "➖ skip"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_gate_markdown(report: dict[str, Any]) -> str:
    verdict = "❌ **Gate failed**" if report["verdict"] == "fail" else "✅ **Gate passed**"
    out = [f"## textgate: {verdict}", "", report["summary"], "",
           f"- baseline: {report['baseline']['description']}", f"- candidate: {report['candidate']['description']}",
           f"- data: `{report['data']['path']}` ({report['data']['rows']:,} examples)",
           f"- machine: {hardware_line(report.get('hardware'))}", "",
           "### Checks", "", "| status | check | scope | baseline | candidate | value | 95% interval | p | rule |",
           "|---|---|---|---|---|---|---|---|---|"]
    for check in report["checks"]:
        p = "-" if check["p_value"] is None else f"{check['p_value']:.2g}"
        out.append(f"| {_ICON[check['status']]} | {check['name']} | {_cell(check['scope'])} | "
                   f"{_fmt(check['baseline'], check['metric'])} | {_fmt(check['candidate'], check['metric'])} | "
                   f"{_value(check)} | {_interval(check)} | {p} | {check['rule']} |")
    out += ["", *_metrics_section(report), *_worst_slices(report), *_flip_section(report), *_examples(report)]
    if report["warnings"] or report.get("notes"):
        out += ["### Warnings", "", *[f"- {w}" for w in [*report.get("notes", []), *report["warnings"]]], ""]
    latency = report["latency"]
    timed = (f"latency timed in this run ({latency['texts']} texts x {latency['rounds']} rounds, interleaved)"
             if latency["skipped"] is None else f"latency not compared: {latency['skipped']}")
    out += [f"<sub>textgate gate · {report['comparison']['bootstrap']} · McNemar exact mid-p · {timed} · "
            f"report schema {report['schema_version']}</sub>", ""]
    return "\n".join(out)


def _metrics_section(report: dict[str, Any]) -> list[str]:
    out = ["<details><summary>All paired metrics</summary>", "",
           "| metric | baseline | candidate | Δ | 95% interval |", "|---|---|---|---|---|"]
    for m in report["comparison"]["metrics"]:
        name = m["name"]
        out.append(f"| {_cell(metric_info(name).label)} | {_fmt(m['baseline'], name)} | {_fmt(m['candidate'], name)} | "
                   f"{_change(m['delta'], name)} | [{_change(m['ci_low'], name, unit=False)}, "
                   f"{_change(m['ci_high'], name, unit=False)}] |")
    return out + ["", "</details>", ""]


def _worst_slices(report: dict[str, Any]) -> list[str]:
    slices = [s for s in report["comparison"]["slices"] if s["accuracy"] is not None]
    if not slices:
        return []
    slices.sort(key=lambda s: s["accuracy"]["delta"])
    out = ["### Worst slices", "", "| slice | size | baseline | candidate | Δ accuracy | 95% interval | flips |",
           "|---|---|---|---|---|---|---|"]
    for s in slices[:5]:
        a = s["accuracy"]
        out.append(f"| {_cell(s['name'])} | {s['size']:,} | {100 * a['baseline']:.1f}% | {100 * a['candidate']:.1f}% | "
                   f"{100 * a['delta']:+.1f} pts | [{100 * a['ci_low']:+.1f}, {100 * a['ci_high']:+.1f}] | "
                   f"{100 * s['flips']['flip_rate']:.1f}% |")
    return out + [""]


def _flip_section(report: dict[str, Any]) -> list[str]:
    flips, mcnemar = report["comparison"]["flips"], report["comparison"]["mcnemar"]
    return ["### Flips", "",
            f"{flips['flipped']:,} of {flips['n']:,} predictions changed ({100 * flips['flip_rate']:.2f}%): "
            f"{flips['harmful']:,} correct → wrong, {flips['beneficial']:,} wrong → correct, "
            f"{flips['other']:,} wrong → another wrong label. McNemar mid-p = {mcnemar['p_value']:.3g}.", ""]


def _examples(report: dict[str, Any]) -> list[str]:
    if not report["example_flips"]:
        return []
    out = ["<details><summary>Example flips</summary>", "", "| row | kind | gold | baseline → candidate | text |",
           "|---|---|---|---|---|"]
    for ex in report["example_flips"]:
        out.append(f"| {ex['row'] + 1} | {ex['kind']} | {ex['label']} | {ex['baseline']} → {ex['candidate']} | "
                   f"{_cell(ex['text'])} |")
    return out + ["", "</details>", ""]


def write_gate_reports(report: dict[str, Any], out_dir: Path) -> list[Path]:
    from textgate.gate.html import render_gate_html

    return write_report_files(out_dir, report, markdown=render_gate_markdown(report), html=render_gate_html(report))


def render_gate_terminal(report: dict[str, Any], console: Any) -> None:
    """The verdict and the checks table, with rich."""
    from rich.table import Table

    style = "bold red" if report["verdict"] == "fail" else "bold green"
    console.print(f"[{style}]{report['summary']}[/]")
    table = Table(title_justify="left")
    for header in ("status", "check", "scope", "baseline", "candidate", "value", "95% interval", "rule"):
        table.add_column(header, justify="left" if header in ("status", "check", "scope", "rule") else "right")
    colors = {"fail": "red", "warn": "yellow", "pass": "green", "skip": "dim"}
    for check in report["checks"]:
        table.add_row(f"[{colors[check['status']]}]{check['status']}[/]", check["name"], check["scope"],
                      _fmt(check["baseline"], check["metric"]), _fmt(check["candidate"], check["metric"]),
                      _value(check), _interval(check), check["rule"])
    console.print(table)
    for check in report["checks"]:
        if check["status"] in ("fail", "warn"):
            console.print(f"[{colors[check['status']]}]{check['status']}[/] {check['name']} "
                          f"({check['scope']}): {check['reason']}")
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
