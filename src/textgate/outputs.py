"""Output paths: checked before any work starts, written atomically.

Every command that writes a file or a folder calls :func:`check_output_file` or
:func:`check_output_dir` for it first, so a typo in ``--out`` costs a second, not a whole
inference run. Writers go through :func:`write_text_atomic` / :func:`atomic_path`: the content
lands in a temporary file beside the target and is moved into place, so an interrupted run
(Ctrl-C, a full disk) never leaves a half-written file behind.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from textgate.errors import OutputError

__all__ = ["PARTIAL_SUFFIX", "atomic_path", "check_output_dir", "check_output_file", "target_name",
           "write_text_atomic"]

PARTIAL_SUFFIX = ".partial"
_PARTIAL_NAME = re.compile(r"\.(.+)\.\d+" + re.escape(PARTIAL_SUFFIX))


def check_output_file(path: Path | str, *, option: str) -> Path:
    """Raise OutputError unless a file can be written at ``path`` (its folder may not exist yet)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder, but a file is needed here; give a file "
                          "path (it may be inside that folder).", option=option, path=path)
    _check_folder_writable(path.parent, option=option, target=path)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path} exists and is read-only; make it writable or choose "
                          "another path.", option=option, path=path)
    return path


def check_output_dir(path: Path | str, *, option: str) -> Path:
    """Raise OutputError unless ``path`` is (or can be created as) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is an existing file, but a folder is needed here; "
                          "choose a folder path (it is created if missing) or move the file.",
                          option=option, path=path)
    _check_folder_writable(path, option=option, target=path)
    return path


def _check_folder_writable(folder: Path, *, option: str, target: Path) -> None:
    existing = folder
    while not existing.exists():
        if existing == existing.parent:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {target}: {existing} is a file, not a folder, so nothing can be "
                          "written below it; choose another path.", option=option, path=target)
    try:  # a real probe: os.access says yes to root on read-only mounts
        with tempfile.TemporaryFile(dir=existing, prefix=".textgate-probe-"):
            pass
    except OSError as exc:
        reason = "the file system is read-only" if exc.errno == errno.EROFS else exc.strerror or str(exc)
        raise OutputError(f"{option} {target}: cannot write in {existing} ({reason}); choose a "
                          "writable location.", option=option, path=target) from exc


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def target_name(path: Path | str) -> str:
    """The name a file will have once written: ``path``'s own, or the target of an
    :func:`atomic_path` temporary file (so a writer can pick compression from ``.gz``)."""
    name = Path(path).name
    match = _PARTIAL_NAME.fullmatch(name)
    return match[1] if match else name


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return path
