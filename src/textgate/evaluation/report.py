"""Render an EvalReport: report.json, report.md, and a rich table in the terminal.

Both human renderers draw the same `Table`s (:mod:`textgate.report.tables`), so the terminal and
the Markdown never disagree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from textgate.evaluation.registry import METRICS
from textgate.evaluation.run import EvalReport, accuracy_ci95
from textgate.hardware import hardware_line
from textgate.outputs import write_text_atomic
from textgate.report.tables import Table, markdown_table, print_tables

__all__ = ["eval_tables", "render_markdown", "render_terminal", "write_eval_reports"]


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{100 * bounds[0]:.1f}, {100 * bounds[1]:.1f}]"


def eval_tables(report: EvalReport) -> list[Table]:
    """The report as titled tables, in reading order."""
    tables = [_overview(report), _per_class(report), _confusion(report)]
    if report.slices:
        tables.append(_slices(report))
    if report.calibration is not None:
        tables.append(_calibration(report))
    if report.latency is not None:
        tables.append(_latency(report))
    return tables


def _show(metric: str, value: float | None) -> str:
    """A value of a registry metric, in its unit."""
    unit = METRICS[metric].unit
    if unit == "fraction":
        return _pct(value)
    if unit == "texts/s":
        return "n/a" if value is None or math.isnan(value) else f"{value:,.1f} texts/s"
    return _num(value, 2 if unit == "ms" else 4)


def _label(metric: str) -> str:
    return METRICS[metric].label


def _overview(report: EvalReport) -> Table:
    m = report.classification
    rows = [
        ("examples", f"{m.n:,}"),
        (_label("accuracy"), f"{_show('accuracy', m.accuracy)} {_interval(accuracy_ci95(m))}"),
        (_label("macro_recall"), _show("macro_recall", m.macro.recall)),
        (_label("macro_f1"), _show("macro_f1", m.macro.f1)),
        (_label("weighted_f1"), _show("weighted_f1", m.weighted.f1)),
        (_label("invalid_label_rate"), f"{m.invalid.count:,} ({_show('invalid_label_rate', m.invalid.rate)})"
         + (": " + ", ".join(f"{v} x{c}" for v, c in m.invalid.values[:5]) if m.invalid.count else "")),
    ]
    if report.calibration is not None:
        rows.append((_label("ece_equal_width"), _show("ece_equal_width", report.calibration.ece_equal_width.value)))
    if report.latency is not None:
        rows.append((_label("throughput_per_s"), _show("throughput_per_s", report.latency.throughput_per_s)))
    settings = report.predictions.get("settings") or {}
    if "engine" in settings:
        rows.append(("machine", hardware_line(settings.get("hardware"))))
    return Table("Overall", ("metric", "value"), tuple(rows))


def _per_class(report: EvalReport) -> Table:
    m = report.classification
    rows = [(c.label, _num(c.precision), _num(c.recall), _num(c.f1), f"{c.support:,}") for c in m.per_class]
    rows.append(("macro avg", _num(m.macro.precision), _num(m.macro.recall), _num(m.macro.f1), f"{m.n:,}"))
    rows.append(("weighted avg", _num(m.weighted.precision), _num(m.weighted.recall), _num(m.weighted.f1),
                 f"{m.n:,}"))
    caption = "; ".join(m.undefined)
    return Table("Per class", ("label", "precision", "recall", "F1", "support"), tuple(rows), caption)


def _confusion(report: EvalReport) -> Table:
    m = report.classification
    invalid_by_row = report.classification.n - m.confusion.sum()
    rows = tuple((name, *(f"{v:,}" for v in row)) for name, row in zip(m.label_names, m.confusion))
    caption = "rows: true label, columns: predicted label"
    if invalid_by_row:
        caption += f"; {invalid_by_row:,} invalid predictions are not shown"
    return Table("Confusion matrix", ("true \\ predicted", *m.label_names), rows, caption)


def _slices(report: EvalReport) -> Table:
    rows = []
    for s in report.slices:
        if s.metrics is None:
            rows.append((s.name, "0", "0.00%", "n/a", "n/a", "n/a", "n/a", s.note))
            continue
        delta = s.metrics.accuracy - report.classification.accuracy
        rows.append((s.name, f"{s.size:,}", _pct(s.fraction), _pct(s.metrics.accuracy),
                     _interval(accuracy_ci95(s.metrics)), f"{100 * delta:+.2f} pts",
                     _pct(s.metrics.macro.recall), s.note))
    caption = "95% CI: Wilson interval of the slice's accuracy"
    if any(spec.kind == "length" for spec in report.slice_definitions):
        caption += f"; length slices count {report.length_unit}"
    return Table("Slices", ("slice", "size", "share", "accuracy", "95% CI", "vs overall", "macro recall",
                            "note"), tuple(rows), caption)


def _calibration(report: EvalReport) -> Table:
    c = report.calibration
    metrics = ("ece_equal_width", "ece_equal_mass", "mce", "brier", "nll")  # the record's fields, same ids
    rows = tuple((_label(name), _show(name, getattr(c, name).value), getattr(c, name).estimator) for name in metrics)
    return Table("Calibration", ("metric", "value", "estimator"), rows)


def _latency(report: EvalReport) -> Table:
    lat = report.latency
    rows = (
        ("per batch (ms)", _num(lat.batch_ms.p50, 1), _num(lat.batch_ms.p95, 1), _num(lat.batch_ms.p99, 1)),
        ("per text, amortized (ms)", _num(lat.per_example_ms.p50, 2), _num(lat.per_example_ms.p95, 2),
         _num(lat.per_example_ms.p99, 2)),
    )
    caption = (f"{lat.examples:,} texts in {lat.batches:,} batches, {lat.total_seconds:.2f} s, "
               f"{lat.throughput_per_s:,.1f} texts/s")
    return Table("Latency", ("", "p50", "p95", "p99"), rows, caption)


def _settings_lines(report: EvalReport) -> list[str]:
    settings = report.predictions.get("settings") or {}
    model = settings.get("model") or {}
    engine = settings.get("engine") or {}
    versions = settings.get("versions") or {}
    lines = [f"data: {report.data['path']} ({report.data['rows']:,} rows, fingerprint "
             f"{report.data['fingerprint'][:16]})"]
    if model:
        lines.append(f"model: {model.get('model')}" + (f" + adapter {model['adapter']}" if model.get("adapter") else "")
                     + f" (fingerprint {report.predictions['model_fingerprint']})")
        lines.append(f"settings: dtype {model.get('dtype')}, max_length {model.get('effective_max_length')}, "
                     f"padding {model.get('padding')}, truncation {model.get('truncation')}")
    if engine:
        lines.append(f"engine: {engine.get('compute')}, token budget {engine.get('token_budget')}, "
                     f"{engine.get('batches')} batches, {engine.get('torch_threads')} threads")
    if versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if not model:
        lines.append("predictions: from a file made outside textgate's engine")
    return lines


def render_markdown(report: EvalReport) -> str:
    m = report.classification
    out = [
        "# textgate eval",
        "",
        f"**Accuracy {_pct(m.accuracy)} · macro recall {_pct(m.macro.recall)} · macro F1 "
        f"{_pct(m.macro.f1)}** on {m.n:,} examples.",
        "",
    ]
    for table in eval_tables(report):
        out += [f"## {table.title}", "", *markdown_table(table)]
        out += (["", f"_{table.caption}_"] if table.caption else []) + [""]
    if report.notes:
        out += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    out += ["## Run", ""] + [f"- {line}" for line in _settings_lines(report)] + [""]
    return "\n".join(out)


def render_terminal(report: EvalReport, console: Any) -> None:
    """Print the report's tables with rich to ``console``."""
    print_tables(eval_tables(report), report.notes, console)
    for line in _settings_lines(report):
        console.print(f"[dim]{line}[/]")


def write_eval_reports(report: EvalReport, out_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.md into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_text_atomic(json_path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    write_text_atomic(md_path, render_markdown(report))
    return json_path, md_path
