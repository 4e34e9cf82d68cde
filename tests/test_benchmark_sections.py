"""benchmarks/markdown_section.py: every benchmark's --write replaces only its own section."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # not a package

from markdown_section import replace_section


def marks(name: str) -> dict[str, str]:
    return {"start": f"<!-- {name}:start -->", "end": f"<!-- {name}:end -->"}


def section(name: str, *body: str) -> list[str]:
    return [marks(name)["start"], *body, marks(name)["end"]]


def test_a_section_is_replaced_and_the_prose_around_it_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## A\n\n<!-- a:start -->\nold\n<!-- a:end -->\n\nReading the numbers: a.\n")
    replace_section(section("a", "new", "table"), **marks("a"), heading="## A", path=path)
    assert path.read_text() == ("# Benchmarks\n\n## A\n\n<!-- a:start -->\nnew\ntable\n<!-- a:end -->\n\n"
                                "Reading the numbers: a.\n")


def test_a_new_section_goes_after_its_anchor_or_at_the_end(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## A\n\n<!-- a:start -->\nA\n<!-- a:end -->\n\nprose\n")
    replace_section(section("b", "B"), **marks("b"), heading="## B", after="<!-- a:end -->", path=path)
    replace_section(section("c", "C"), **marks("c"), heading="## C", after="<!-- missing -->", path=path)
    assert path.read_text() == ("# Benchmarks\n\n## A\n\n<!-- a:start -->\nA\n<!-- a:end -->\n\n"
                                "<!-- b:start -->\nB\n<!-- b:end -->\n\nprose\n\n## C\n\n<!-- c:start -->\nC\n<!-- c:end -->\n")
    replace_section(section("d", "D"), **marks("d"), heading="## D", path=tmp_path / "new.md")
    assert (tmp_path / "new.md").read_text().startswith("# Benchmarks\n\n## D\n\n<!-- d:start -->\nD\n")


def test_a_section_without_its_markers_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must begin with '<!-- a:start -->'"):
        replace_section(["no markers"], **marks("a"), heading="## A", path=tmp_path / "B.md")
