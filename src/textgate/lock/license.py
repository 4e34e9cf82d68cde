"""Model-card licenses: read the ``license:`` of the model's and the adapter's README.md, and
check them against an allowlist (`textgate lock/pull/verify --allow-license`).

The policy: without an allowlist nothing is checked; with one, a license is accepted when it
equals an allowlist entry (case and surrounding spaces ignored), and a card without a license
reads ``unknown``, accepted only when ``unknown`` is listed. `lock` and `pull` refuse before any
work (:func:`require_allowed_licenses`, LicenseRefused: exit 1); `verify` reports a refused
license as a failed section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from textgate.errors import LicenseRefused
from textgate.model import ModelSpec, resolve_source

__all__ = ["UNKNOWN_LICENSE", "License", "allowlist", "card_license", "card_licenses", "license_failures",
           "license_failures_of", "require_allowed_licenses"]

UNKNOWN_LICENSE = "unknown"


@dataclass(frozen=True)
class License:
    license: str
    reason: str  # where it came from, or why it is unknown


def card_license(folder: Path) -> License:
    """The ``license:`` of the model card (README.md YAML front matter) in ``folder``."""
    card = folder / "README.md"
    if not card.is_file():
        return License(UNKNOWN_LICENSE, f"no README.md model card in {folder}")
    import yaml
    from huggingface_hub import metadata_load

    try:
        metadata = metadata_load(card) or {}
    except (yaml.YAMLError, ValueError) as exc:  # malformed front matter: report, do not fail the lock
        return License(UNKNOWN_LICENSE, f"{card} front matter is not valid YAML ({type(exc).__name__})")
    value = metadata.get("license")
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    if not value:
        return License(UNKNOWN_LICENSE, f"{card} has no license: field")
    value = str(value).strip().lower()
    if value == "other" and metadata.get("license_name"):
        value = f"other:{str(metadata['license_name']).strip().lower()}"
    return License(value, f"license: in {card}")


def license_failures(spec: ModelSpec, allowed: Sequence[str] | None) -> list[str]:
    """One message per part (model, adapter) whose model-card license is not in ``allowed``;
    empty when ``allowed`` is empty (no license check)."""
    if not allowed:
        return []
    return license_failures_of(card_licenses(spec, resolve_source(spec).path), allowed)


def require_allowed_licenses(spec: ModelSpec, allowed: Sequence[str] | None, *, refused: str) -> None:
    """Raise LicenseRefused, before any work, when a model-card license of ``spec`` is not in
    ``allowed``; ``refused`` says what is then not done (e.g. "textgate.lock not written")."""
    failures = license_failures(spec, allowed)
    if failures:
        raise LicenseRefused(tuple(failures), refused=refused)


def allowlist(allowed: Sequence[str] | None) -> tuple[str, ...] | None:
    """``allowed`` as the lock records and every check compares it: lower case, stripped,
    sorted, without repeats; None when empty (no license check)."""
    return tuple(sorted({a.strip().lower() for a in allowed})) if allowed else None


def card_licenses(spec: ModelSpec, model_folder: Path) -> dict[str, License]:
    """The model card's license, and the adapter card's when the spec has an adapter."""
    licenses = {"model": card_license(model_folder)}
    if spec.adapter:
        licenses["adapter"] = card_license(Path(spec.adapter))
    return licenses


def license_failures_of(licenses: Mapping[str, License], allowed: Sequence[str] | None) -> list[str]:
    accepted = allowlist(allowed)
    if accepted is None:
        return []
    return [f"the {part}'s license is {found.license!r} ({found.reason}), not one of {list(accepted)}"
            for part, found in licenses.items() if found.license not in accepted]
