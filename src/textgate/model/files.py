"""The files of a model folder that decide its outputs: which ones (``model_files``), their
hashes, and the JSON and safetensors headers the loader reads without importing torch.

The fingerprint and a lock pin the same files (``is_pinned_file``; docs/lock.md lists them).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

from textgate.errors import ModelLoadError

__all__ = [
    "PICKLE_WEIGHT_NAMES",
    "TOKENIZER_FILES",
    "UNPINNED_NAMES",
    "UNPINNED_SUFFIXES",
    "check_safetensors_header",
    "file_sha256",
    "files_digest",
    "is_pinned_file",
    "model_files",
    "read_json",
    "safetensors_header",
]

PICKLE_WEIGHT_NAMES = ("pytorch_model.bin", "adapter_model.bin", "model.pt", "model.pth", "model.ckpt")
# What a lock pins and the fingerprint hashes (``model_files``): every regular file under the
# model and adapter folders, recursively (remote code imports its neighbours; tokenizers read
# vocab, merges, .tiktoken, .jinja... files of many names), except these, which loading never
# reads: hidden files and folders (.git, .cache, .gitattributes), files and folders named in
# UNPINNED_NAMES (bytecode, model cards, the adapter's training record), lock files (a lock in
# the folder cannot pin itself), textgate's own TOML files (transformers reads none; a ModelSpec
# kept in its model folder must be able to gain a `lock =` line) and weights for other runtimes
# (a Hub snapshot may hold them from other downloads). docs/lock.md lists them.
UNPINNED_NAMES = frozenset({"README.md", "training.json", "__pycache__"})
UNPINNED_SUFFIXES = (".lock", ".toml", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".tflite", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def model_files(model_folder: Path, adapter_folder: Path | None) -> list[tuple[str, Path]]:
    """Every file that can decide outputs, as ("model/config.json", path) pairs in a fixed
    order: what the fingerprint hashes and a lock pins (``is_pinned_file``)."""
    files = []
    for label, folder in (("model", model_folder), ("adapter", adapter_folder)):
        if folder is not None:
            files += [(f"{label}/{path.relative_to(folder).as_posix()}", path) for path in _pinned_files(folder)]
    return files


def is_pinned_file(relative: PurePath) -> bool:
    """Whether the file at ``relative`` (a path inside a model or adapter folder) is pinned: all
    are, except hidden ones, those in or under ``UNPINNED_NAMES``, and ``UNPINNED_SUFFIXES``."""
    return not (any(_unpinned_name(part) for part in relative.parts) or relative.name.endswith(UNPINNED_SUFFIXES))


def _unpinned_name(name: str) -> bool:
    return name.startswith(".") or name in UNPINNED_NAMES


def _pinned_files(folder: Path) -> list[Path]:
    """The pinned regular files under ``folder`` (symbolic links to files count; links to
    folders are not followed), sorted; unpinned folders are not walked (.git can be large)."""
    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not _unpinned_name(name)]
        relative = Path(root).relative_to(folder)
        found += [Path(root, name) for name in names if is_pinned_file(relative / name)]
    return sorted(path for path in found if path.is_file())


def file_sha256(path: Path) -> str:
    """The file's sha256 (hex), hashed once per process while its size and mtime stay the same."""
    stat = path.stat()
    return _file_sha256_cached(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _file_sha256_cached(path: Path, size: int, mtime_ns: int) -> str:
    """Size and modification time are part of the key, so an edited file is hashed again."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def files_digest(files: Sequence[tuple[str, Path]]) -> str:
    """SHA-256 over the names and bytes of every file that decides outputs (``model_files``)."""
    digest = hashlib.sha256()
    for key, path in files:
        digest.update(f"{key}\0".encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    """A model folder's JSON file; invalid JSON is a ModelLoadError naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); the file is corrupt. "
                             "Re-download or re-export the model.", path=path) from exc


def check_safetensors_header(path: Path) -> None:
    """Read the header (8-byte length + JSON) and check that every tensor's bytes are present:
    catches truncated and garbled files without importing torch or reading the weights."""
    size = path.stat().st_size
    try:
        header_length, header = _read_safetensors_header(path, size)
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        if not ends:
            raise ValueError("it holds no tensors")
        if 8 + header_length + max(ends) > size:
            raise ValueError(f"the tensors need {8 + header_length + max(ends)} bytes but the file has {size}")
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ModelLoadError(
            f"Weights file {path} is corrupt or truncated ({exc}). Re-download or re-export it.",
            path=path,
        ) from exc


def _read_safetensors_header(path: Path, size: int) -> tuple[int, dict[str, Any]]:
    with path.open("rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        if not 2 <= header_length <= size - 8:
            raise ValueError(f"header length {header_length} does not fit a {size}-byte file")
        header = json.loads(handle.read(header_length))
    if not isinstance(header, dict):
        raise TypeError("its header is not a JSON object")
    return header_length, header


def safetensors_header(path: Path) -> dict[str, Any]:
    """The header of a file ``check_safetensors_header`` accepted."""
    return _read_safetensors_header(path, path.stat().st_size)[1]
