"""Files an audit writes: ranked issues (CSV, JSONL), summary.json, review.html, argilla.jsonl.

issues.csv is also the corrections file of ``textgate audit apply``: a reviewer fills in
``corrected_label`` (or marks ``accept``) in a spreadsheet and hands it back. Each row carries
``text_sha256`` so a correction can never land on a text that changed since the audit.

``text_sha256`` is textgate's one text hash, ``text_hash(text, hash_key)``
(``textgate._internal.hashing``: HMAC-SHA256, 64 hex digits), the prediction log's too: with the
log's key (``textgate audit --hash-key-file``) an audit row joins the log rows of the same text;
without one it is made with ``UNKEYED``. summary.json records which (``text_hash``). Text
cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) are
written with a leading ``'``; the JSONL files carry the texts unchanged.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgate._internal.hashing import UNKEYED, text_hash, text_hash_settings
from textgate.audit.find import AuditResult, Finding
from textgate.outputs import atomic_path, write_text_atomic

__all__ = [
    "AUDIT_SCHEMA_VERSION",
    "ISSUE_COLUMNS",
    "argilla_record",
    "audit_summary",
    "render_review_html",
    "spreadsheet_safe",
    "write_audit_outputs",
]

# 2: text_sha256 is the full, optionally keyed HMAC-SHA256 (1: SHA-256 cut to 16 hex digits).
AUDIT_SCHEMA_VERSION = 2
ISSUE_COLUMNS = ("rank", "row", "given_label", "suggested_label", "score", "method", "given_probability",
                 "suggested_probability", "text_sha256", "text", "accept", "corrected_label")
# The Argilla dataset this export fits: a TextField and a LabelQuestion with these names.
ARGILLA_TEXT_FIELD = "text"
ARGILLA_QUESTION = "label"
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A review page with more rows than this is slow to filter and nobody reviews that many at once.
_MAX_HTML_ROWS = 5000
_MAX_HTML_TEXT = 2000


def audit_summary(result: AuditResult, *, data: Mapping[str, Any], probabilities: Mapping[str, Any],
                  hash_key: bytes = UNKEYED) -> dict[str, Any]:
    """summary.json: what was audited, how, and how many issues confident learning estimates.
    ``hash_key``: the key the rows' ``text_sha256`` are made with (recorded as keyed or not)."""
    return {
        "schema_version": AUDIT_SCHEMA_VERSION,
        "kind": "textgate.audit",
        "n_examples": result.n_examples,
        "label_names": list(result.label_names),
        "method": result.method,
        "flagged": len(result.findings),
        "estimated_issues": result.estimated_issues,
        "estimated_issue_rate": (None if result.estimated_issues is None
                                 else round(result.estimated_issues / result.n_examples, 6)),
        "pairs": result.pairs(),
        "confident_joint": None if result.confident_joint is None else result.confident_joint.tolist(),
        "settings": result.settings,
        "probabilities": dict(probabilities),
        "data": dict(data),
        "text_hash": text_hash_settings(hash_key),
    }


def _issue_record(finding: Finding, text: str, hash_key: bytes) -> dict[str, Any]:
    return {"rank": finding.rank, "row": finding.row, "given_label": finding.given_label,
            "suggested_label": finding.suggested_label, "score": round(finding.score, 6), "method": finding.method,
            "given_probability": round(finding.given_probability, 6),
            "suggested_probability": round(finding.suggested_probability, 6),
            "text_sha256": text_hash(text, hash_key), "text": text}


def argilla_record(finding: Finding, text: str, *, hash_key: bytes = UNKEYED,
                   text_sha256: str | None = None) -> dict[str, Any]:
    """One record in the shape of Argilla 2.x ``Record.to_dict()`` / ``Record.from_dict()``: the
    text as field ``text``, the suggested label as a suggestion for question ``label`` (score:
    its probability, in [0, 1]), and the audit's numbers as metadata. ``text_sha256``: the
    text's ``text_hash`` under ``hash_key``, when the caller has it already."""
    return {
        "id": f"row-{finding.row}",
        "fields": {ARGILLA_TEXT_FIELD: text},
        "metadata": {"row": finding.row, "given_label": finding.given_label, "method": finding.method,
                     "rank": finding.rank, "score": round(finding.score, 6),
                     "text_sha256": text_hash(text, hash_key) if text_sha256 is None else text_sha256},
        "suggestions": {ARGILLA_QUESTION: {"value": finding.suggested_label,
                                           "score": round(finding.suggested_probability, 6),
                                           "agent": f"textgate audit ({finding.method})"}},
        "responses": {},
        "vectors": {},
    }


def write_audit_outputs(result: AuditResult, texts: Sequence[str], out_dir: Path | str,
                        summary: Mapping[str, Any], *, hash_key: bytes = UNKEYED) -> list[Path]:
    """Write issues.csv, issues.jsonl, summary.json, review.html and argilla.jsonl to ``out_dir``.

    ``hash_key``: the secret of the rows' ``text_sha256`` (the prediction log's key, so the rows
    join the log; ``UNKEYED`` by default), the one ``audit_summary`` was given."""
    recorded = summary.get("text_hash")
    if recorded is not None and recorded != text_hash_settings(hash_key):
        raise ValueError(f"The summary records text_hash {recorded} but the rows would be hashed "
                         f"{text_hash_settings(hash_key)}; pass the same hash_key to audit_summary.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [_issue_record(f, texts[f.row], hash_key) for f in result.findings]
    paths = [out / name for name in ("issues.csv", "issues.jsonl", "summary.json", "review.html", "argilla.jsonl")]
    with atomic_path(paths[0]) as partial, partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ISSUE_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "text": spreadsheet_safe(record["text"]), "accept": "", "corrected_label": ""})
    _write_jsonl(paths[1], records)
    write_text_atomic(paths[2], json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_text_atomic(paths[3], render_review_html(summary, records))
    _write_jsonl(paths[4], [argilla_record(f, r["text"], text_sha256=r["text_sha256"])
                            for f, r in zip(result.findings, records)])
    return paths


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    with atomic_path(path) as partial, partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def spreadsheet_safe(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula (``= + - @``,
    tab or CR first); any other text unchanged."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


# --- review.html ------------------------------------------------------------------------------

_REVIEW_CSS = """
.controls { display: flex; gap: 12px; align-items: center; margin-bottom: 10px; }
select { font: inherit; padding: 2px 6px; }
.given { color: var(--fail); font-weight: 600; } .suggested { color: var(--pass); font-weight: 600; }
"""

# Filters the issues table by (given, suggested) pair; the page's only script.
_REVIEW_SCRIPT = """
(function () {
  var select = document.getElementById("pair");
  var rows = document.querySelectorAll("#issues tbody tr");
  var shown = document.getElementById("shown");
  function apply() {
    var n = 0;
    rows.forEach(function (row) {
      var show = !select.value || row.dataset.pair === select.value;
      row.hidden = !show;
      if (show) { n += 1; }
    });
    shown.textContent = String(n);
  }
  select.addEventListener("change", apply);
  apply();
  document.body.dataset.rendered = "ok";
})();
"""


def _pair_key(given: str, likely: str) -> str:
    return f"{given} \u2192 {likely}"


def render_review_html(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """One self-contained page: the estimate per label pair and the ranked issues, filterable
    by (given, suggested) pair. Every text is escaped; nothing is fetched."""
    from textgate.report.html import escape, html_table, render_page

    estimated = summary.get("estimated_issues")
    head = (f"<h1>textgate audit</h1><h2>{len(records):,} likely label errors flagged among "
            f"{summary.get('n_examples', 0):,} examples ({escape(summary.get('method'))})</h2>"
            f"<p>Confident learning estimates {escape('n/a' if estimated is None else f'{estimated:,}')} "
            "mislabeled examples. Score: higher = more likely mislabeled. Rows are 0-based positions "
            "in the data file.</p>")
    pairs = list(summary.get("pairs") or [])
    pair_rows = [[escape(p["given"]), escape(p["likely"]),
                  escape("n/a" if p["estimated"] is None else f"{p['estimated']:,}"), escape(f"{p['flagged']:,}")]
                 for p in pairs]
    pair_table = html_table(["given label", "likely label", "estimated issues", "flagged"], pair_rows,
                        numeric=(2, 3), css="compact") if pairs else "<p class=\"note\">No issues.</p>"
    options = "".join(f'<option value="{escape(_pair_key(p["given"], p["likely"]))}">'
                      f'{escape(_pair_key(p["given"], p["likely"]))} ({p["flagged"]:,})</option>'
                      for p in pairs if p["flagged"])
    shown = records[:_MAX_HTML_ROWS]
    body_rows = []
    for r in shown:
        text = r["text"] if len(r["text"]) <= _MAX_HTML_TEXT else r["text"][:_MAX_HTML_TEXT] + "…"
        body_rows.append(
            f'<tr data-pair="{escape(_pair_key(r["given_label"], r["suggested_label"]))}">'
            f'<td class="num">{r["rank"]}</td><td class="num">{r["row"]}</td><td class="text">{escape(text)}</td>'
            f'<td class="given">{escape(r["given_label"])}</td><td class="suggested">{escape(r["suggested_label"])}</td>'
            f'<td class="num">{r["suggested_probability"]:.3f}</td><td class="num">{r["score"]:.3f}</td></tr>')
    cut = (f'<p class="note">Showing the first {_MAX_HTML_ROWS:,} of {len(records):,}; issues.csv has all.</p>'
           if len(records) > _MAX_HTML_ROWS else "")
    issues = (
        f'<section><h2>Ranked issues</h2><div class="controls"><label for="pair">Filter by pair</label>'
        f'<select id="pair"><option value="">all pairs</option>{options}</select>'
        f'<span><b id="shown">{len(shown):,}</b> shown</span></div>{cut}'
        '<div class="scroll"><table id="issues"><thead><tr><th class="num">rank</th><th class="num">row</th>'
        '<th>text</th><th>given</th><th>suggested</th><th class="num">p(suggested)</th>'
        f'<th class="num">score</th></tr></thead><tbody>{"".join(body_rows)}</tbody></table></div></section>')
    settings = f'<section><details><summary>Settings</summary><pre>{escape(json.dumps({k: summary.get(k) for k in ("settings", "probabilities", "data")}, indent=2))}</pre></details></section>'
    body = f"<section>{head}<h3>Estimated issues per label pair</h3>{pair_table}</section>{issues}{settings}"
    return render_page("textgate audit", body, script=_REVIEW_SCRIPT, css=_REVIEW_CSS)
