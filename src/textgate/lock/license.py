"""Model-card licenses: read the ``license:`` of the model's and the adapter's README.md, and
check them against an allowlist (`textgate lock/pull/verify --allow-license`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from textgate.model import ModelSpec, resolve_source

__all__ = ["UNKNOWN_LICENSE", "License", "card_license", "card_licenses", "license_failures", "license_failures_of"]

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


def card_licenses(spec: ModelSpec, model_folder: Path) -> dict[str, License]:
    """The model card's license, and the adapter card's when the spec has an adapter."""
    licenses = {"model": card_license(model_folder)}
    if spec.adapter:
        licenses["adapter"] = card_license(Path(spec.adapter))
    return licenses


def license_failures_of(licenses: Mapping[str, License], allowed: Sequence[str] | None) -> list[str]:
    if not allowed:
        return []
    accepted = {a.strip().lower() for a in allowed}
    return [f"the {part}'s license is {found.license!r} ({found.reason}), not one of {sorted(accepted)}"
            for part, found in licenses.items() if found.license not in accepted]
