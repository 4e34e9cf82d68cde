"""Output paths: the checks every command runs before working, and atomic writes."""

from __future__ import annotations

import pytest

from textgate.errors import OutputError
from textgate.outputs import (
    atomic_path,
    check_output_dir,
    check_output_file,
    write_text_atomic,
)


def test_a_new_file_in_a_new_folder_is_fine(tmp_path):
    assert check_output_file(tmp_path / "a" / "b" / "out.parquet", option="--out") == tmp_path / "a" / "b" / "out.parquet"
    assert not (tmp_path / "a").exists()  # checking creates nothing
    check_output_dir(tmp_path / "reports" / "x", option="--out-dir")


def test_file_and_folder_mix_ups_name_the_option(tmp_path):
    file = tmp_path / "f.txt"
    file.write_text("x")
    with pytest.raises(OutputError, match="--out .* is a folder, but a file is needed") as caught:
        check_output_file(tmp_path, option="--out")
    assert caught.value.option == "--out"
    with pytest.raises(OutputError, match="--out-dir .* is an existing file, but a folder is needed"):
        check_output_dir(file, option="--out-dir")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_file(file / "sub" / "out.json", option="--out")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(file / "sub", option="--out-dir")


def test_the_probe_leaves_nothing_behind(tmp_path):
    check_output_dir(tmp_path, option="--out-dir")
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "report.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
