"""Versions of everything that can change a prediction."""

from __future__ import annotations

__all__ = ["library_versions"]


def library_versions() -> dict[str, str]:
    """Versions of everything that can change a prediction, for records, reports and cache keys.

    Read from package metadata, so asking does not import torch or transformers."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "tokenizers", "peft", "textgate"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions
