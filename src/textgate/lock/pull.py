"""Pulling a model for an offline deploy (`textgate pull`): copy it, check the copies byte for
byte, and write a ModelSpec that enforces a fresh lock."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgate._internal.toml import dump_toml
from textgate.errors import ConfigError, ModelLoadError
from textgate.lock.build import Say, adapter_folder, build_lock
from textgate.model import (
    ModelSpec,
    file_sha256,
    identify_model,
    load_model_spec,
    model_files,
)
from textgate.model.lock_file import diff_files, locked_paths, write_lock
from textgate.outputs import write_text_atomic

__all__ = ["PullResult", "pull_model"]


@dataclass(frozen=True)
class PullResult:
    folder: Path
    spec_path: Path
    lock_path: Path
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """What `textgate pull --format json` prints."""
        return {"schema_version": 1, "kind": "textgate.pull", "folder": str(self.folder), "spec": str(self.spec_path),
                "lock": str(self.lock_path), "files": self.files, "bytes": self.bytes}


def pull_model(
    spec: ModelSpec,
    dest: Path,
    *,
    force: bool = False,
    canary_path: Path | None = None,
    text_col: str = "text",
    allowed_licenses: Sequence[str] | None = None,
    progress: bool | None = None,
    say: Say = lambda message: None,
) -> PullResult:
    """Copy the resolved model (and adapter, and calibration file) into ``dest`` with a
    ``model.toml`` that points at the copies and enforces a fresh ``textgate.lock``.

    The copies are checked byte for byte (sha256) against the source. ``dest`` must be empty
    or absent unless ``force``; with ``force`` only the entries pull writes are replaced.
    """
    dest = Path(dest)
    spec = spec.model_copy(update={"lock": None})
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"--to {dest} is a file; pass a folder.", field="to", path=dest)
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise ConfigError(f"--to {dest} is not empty; pass an empty or new folder, or --force to "
                          "replace what pull writes there (model/, adapter/, model.toml, textgate.lock).",
                          field="to", path=dest)
    identity = identify_model(spec)  # resolves (Hub: the local cache) and runs the loading checks
    source = identity.source
    say(f"copying {source.describe()} to {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    table: dict[str, Any] = {**spec.model_dump(mode="json", exclude_none=True, exclude={"lock", "revision"}),
                             "model": "model"}
    copies = [(source.path, dest / "model")]
    if spec.adapter:
        copies.append((Path(spec.adapter), dest / "adapter"))
        table["adapter"] = "adapter"
    for origin, target in copies:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(origin, target, symlinks=False, ignore=shutil.ignore_patterns(".cache"))
    if spec.calibration:
        target = dest / Path(spec.calibration).name
        shutil.copyfile(spec.calibration, target)
        table["calibration"] = target.name
    spec_path = dest / "model.toml"
    origin_note = f"# Pulled by `textgate pull` from {spec.model}" + (
        f" at commit {source.revision}" if source.revision else "") + ".\n"
    write_text_atomic(spec_path, origin_note + dump_toml(table))
    pulled = load_model_spec(spec_path)
    paths = _checked_copies(spec, source.path, pulled)
    lock = build_lock(pulled, lock_dir=dest, canary_path=canary_path, text_col=text_col,
                      allowed_licenses=allowed_licenses, spec_file=spec_path,
                      pulled_from=spec.model + (f"@{source.revision}" if source.revision else ""),
                      progress=progress, say=say)
    lock = lock.model_copy(update={"model": lock.model.model_copy(update={"resolved_revision": source.revision})})
    lock_path = write_lock(lock, dest / "textgate.lock")
    write_text_atomic(spec_path, origin_note + dump_toml({**table, "lock": "textgate.lock"}))
    return PullResult(dest, spec_path, lock_path, len(paths), sum(p.stat().st_size for p in paths.values()))


def _checked_copies(spec: ModelSpec, source_folder: Path, pulled: ModelSpec) -> dict[str, Path]:
    """The pulled copies of the locked files, after checking them byte for byte against the source."""
    original = locked_paths(spec, model_files(source_folder, adapter_folder(spec)))
    copied = locked_paths(pulled, model_files(Path(pulled.model), adapter_folder(pulled)))
    changes = diff_files({k: file_sha256(p) for k, p in original.items()},
                          {k: file_sha256(p) for k, p in copied.items()})
    if changes:
        raise ModelLoadError(f"The copy in {Path(pulled.model).parent} differs from the source: "
                             f"{changes[0].key} {changes[0].note}. Check the disk and pull again.",
                             path=Path(pulled.model).parent)
    return copied
