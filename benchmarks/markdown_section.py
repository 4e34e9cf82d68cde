"""Write one benchmark's section of BENCHMARKS.md: the text between its start and end markers.

Every benchmark's ``--write`` goes through :func:`replace_section`, so the file keeps whatever
prose sits around the markers (the "Reading the numbers" paragraphs) and only the measured part
is replaced.
"""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def replace_section(lines: list[str], *, start: str, end: str, heading: str, after: str | None = None,
                    path: Path = BENCHMARKS_MD) -> None:
    """Write ``lines`` (the section, its first line ``start`` and its last ``end``) over the
    current section. A file without the markers gets the section after the line ``after`` when
    that is present, else appended under ``heading``."""
    if not lines or lines[0] != start or lines[-1] != end:
        raise ValueError(f"a section must begin with {start!r} and end with {end!r}")
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start not in text:
        if after is not None and after in text:
            text = text.replace(after, f"{after}\n\n{start}\n{end}", 1)
        else:
            text = text.rstrip("\n") + f"\n\n{heading}\n\n{start}\n{end}\n"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(head + "\n".join(lines) + tail)
