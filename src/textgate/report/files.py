"""A report's versioned header, and its three files in one folder: ``report.json`` (the
document), ``report.md`` and the self-contained ``report.html``, each written atomically."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from textgate.outputs import write_text_atomic

__all__ = ["report_header", "write_report_files"]


def report_header(kind: str, schema_version: int) -> dict[str, Any]:
    """What every report.json starts with: its schema version, its kind (``textgate.<command>``)
    and when it was made (UTC), so that a stored report is read by the rules it was written by."""
    return {"schema_version": schema_version, "kind": kind,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def write_report_files(out_dir: Path, document: dict[str, Any], *, markdown: str, html: str) -> list[Path]:
    """Write the three files into ``out_dir`` (created if missing); their paths, in that order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("report.json", json.dumps(document, indent=2, allow_nan=False) + "\n"),
                       ("report.md", markdown), ("report.html", html)):
        written.append(write_text_atomic(out_dir / name, text))
    return written
