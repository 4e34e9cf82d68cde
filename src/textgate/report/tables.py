"""Tables that the terminal (rich) and Markdown renderers draw alike, so they never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Table", "markdown_table", "print_tables"]


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


def markdown_table(table: Table) -> list[str]:
    """The lines of ``table`` as a Markdown table: header, separator, rows (``|`` in a cell
    escaped). Title and caption are the caller's, as each report places them its own way."""
    lines = ["| " + " | ".join(table.headers) + " |", "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table.rows]
    return lines


def print_tables(tables: Sequence[Table], notes: Sequence[str], console: Any) -> None:
    """Print ``tables`` with rich (first column left, the rest right-aligned), then the notes."""
    from rich.table import Table as RichTable

    for table in tables:
        rich_table = RichTable(title=table.title, caption=table.caption or None, title_justify="left")
        for i, header in enumerate(table.headers):
            rich_table.add_column(header, justify="left" if i == 0 else "right")
        for row in table.rows:
            rich_table.add_row(*row)
        console.print(rich_table)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
