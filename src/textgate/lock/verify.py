"""Verifying a lock (`textgate verify`): recompute everything the lock records and compare
section by section.

What counts as a behaviour change (verify exits 1): any file hash, tokenizer property or probe,
label, setting or license difference, or a canary whose probabilities moved by more than the
lock's tolerance or whose label flipped (except on a near tie, see :class:`CanaryComparison`).
A different library version or Hub commit alone is reported and exits 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from textgate._internal.versions import library_versions
from textgate.errors import ConfigError, DataError, ModelLoadError
from textgate.lock.build import (
    BUNDLED_CANARY,
    PROBES,
    Say,
    canary_digest,
    canary_rows,
    observe_static,
    read_canary_texts,
    run_canary,
    settings_section,
    tokenizer_section,
)
from textgate.lock.license import (
    UNKNOWN_LICENSE,
    License,
    allowlist,
    license_failures_of,
)
from textgate.model import (
    ModelSource,
    ModelSpec,
    identify_model,
    load_classifier,
    resolve_source,
)
from textgate.model.lock_file import (
    Change,
    Lock,
    LockedCanary,
    LockedLabels,
    LockedLicense,
    LockedModel,
    diff_files,
    read_lock,
)

__all__ = ["BEHAVIOUR_SECTIONS", "CanaryComparison", "Flip", "SectionResult", "VerifyResult", "verify_lock"]

# Sections in which any difference is a behaviour (or license) change: exit 1.
BEHAVIOUR_SECTIONS = ("files", "tokenizer", "labels", "settings", "license", "canary")


@dataclass(frozen=True)
class SectionResult:
    """One section of the lock compared with now. ``status``: same, changed, failed (the
    license allowlist), or not checked (with ``summary`` saying why)."""

    name: str
    status: Literal["same", "changed", "failed", "not checked"]
    changes: tuple[Change, ...] = ()
    summary: str = ""

    @property
    def counts(self) -> bool:
        """Whether this section's differences are behaviour (or license) changes: exit 1."""
        return self.name in BEHAVIOUR_SECTIONS and self.status in ("changed", "failed")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "behaviour_change": self.counts,
                "summary": self.summary, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class Flip:
    row: int  # 0-based canary row
    text: str
    locked: str
    current: str
    near_tie: bool  # the locked top-two probabilities were within 2 x tolerance


@dataclass(frozen=True)
class CanaryComparison:
    """Canary outputs now vs locked. Labels are compared exactly, probabilities within
    ``tolerance``; a flip on a near tie (locked top-two within 2 x tolerance, where machine
    rounding alone can swap them) is reported but is not a behaviour change."""

    texts: int
    flips: tuple[Flip, ...]
    max_abs_delta: float
    tolerance: float
    digest_equal: bool

    @property
    def changed(self) -> bool:
        return self.max_abs_delta > self.tolerance or any(not f.near_tie for f in self.flips)

    def summary(self) -> str:
        real = sum(not f.near_tie for f in self.flips)
        ties = len(self.flips) - real
        return (f"{self.texts} texts, {real} label flip{'s' if real != 1 else ''}"
                + (f" (+{ties} on near ties)" if ties else "")
                + f", max |delta p| {self.max_abs_delta:.2g} (tolerance {self.tolerance:g})")

    def to_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "flips": [f.__dict__ for f in self.flips],
                "max_abs_delta": self.max_abs_delta, "tolerance": self.tolerance,
                "digest_equal": self.digest_equal, "behaviour_change": self.changed}


@dataclass(frozen=True)
class VerifyResult:
    lock_path: Path
    model: str  # which spec was verified, in words
    sections: tuple[SectionResult, ...]
    canary: CanaryComparison | None = None
    load_error: str | None = None
    license_notes: tuple[str, ...] = field(default=())

    @property
    def behaviour_changed(self) -> bool:
        return any(section.counts for section in self.sections)

    @property
    def exit_code(self) -> int:
        return 1 if self.behaviour_changed else 0

    @property
    def verdict(self) -> str:
        failed = [s.name for s in self.sections if s.counts]
        if failed:
            return f"behaviour changed: {', '.join(failed)}"
        reported = [s.name for s in self.sections if s.status == "changed"]
        if reported:
            return f"behaviour unchanged; {' and '.join(reported)} changed (reported only)"
        return "unchanged"

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "kind": "textgate.verify", "lock": str(self.lock_path),
                "model": self.model, "verdict": self.verdict, "exit_code": self.exit_code,
                "behaviour_changed": self.behaviour_changed, "load_error": self.load_error,
                "sections": [s.to_dict() for s in self.sections],
                "canary": self.canary.to_dict() if self.canary else None}

    def lines(self) -> list[str]:
        """The human report: one line per section, then one per change."""
        out = [f"textgate verify {self.lock_path} ({self.model})"]
        for section in self.sections:
            mark = {"same": "ok", "changed": "CHANGED" if section.counts else "changed (reported only)",
                    "failed": "FAILED", "not checked": "not checked"}[section.status]
            out.append(f"  {section.name:<10} {mark}" + (f": {section.summary}" if section.summary else ""))
            out += [f"      {change.line()}" for change in section.changes]
        out += [f"  note: {note}" for note in self.license_notes]
        out.append(f"verdict: {self.verdict} (exit {self.exit_code})")
        return out


def verify_lock(
    lock_path: Path | str,
    spec: ModelSpec | None = None,
    *,
    allowed_licenses: Sequence[str] | None = None,
    progress: bool | None = None,
    say: Say = lambda message: None,
) -> VerifyResult:
    """Recompute everything the lock records for ``spec`` (default: the spec recorded in the
    lock) and compare section by section. Errors (unreadable lock, canary texts not the
    locked ones, a model that does not load although no file or label changed) raise."""
    lock_path = Path(lock_path)
    lock = read_lock(lock_path)
    if spec is None:
        spec = lock.recorded_spec(lock_path.parent, origin=str(lock_path))
        described = "the spec recorded in the lock"
    else:
        described = f"spec {spec.model}" + (f" + adapter {spec.adapter}" if spec.adapter else "")
    spec = spec.model_copy(update={"lock": None})  # verify reports differences instead of refusing
    source = resolve_source(spec)  # once (a Hub id: one snapshot lookup), for the files and for loading
    state = observe_static(spec, source)
    sections: dict[str, SectionResult] = {}
    sections["model"] = _section("model", _diff_model(lock.model, state.source))
    sections["files"] = _section("files", diff_files(lock.files, state.files),
                                 summary=f"{len(state.files)} files")
    if state.labels is not None:
        sections["labels"] = _section("labels", _diff_labels(lock.labels, state.labels))
    allowed = allowlist(allowed_licenses) or lock.license.allowed
    sections["license"] = _license_section(lock.license, state.licenses, allowed)
    versions = library_versions()
    sections["versions"] = _section("versions", _diff_flat(lock.versions, versions))

    say(f"loading {state.source.describe()}" + (f" + adapter {spec.adapter}" if spec.adapter else ""))
    try:
        classifier, load_error = load_classifier(identify_model(spec, source=source)), None
    except (ModelLoadError, ConfigError) as exc:
        classifier, load_error = None, str(exc)
    if state.labels is None:  # config.json unreadable: loading failed too
        sections["labels"] = SectionResult("labels", "not checked", summary=state.labels_error or "")
    if classifier is None:
        static_change = any(sections[name].counts for name in ("files", "labels", "license"))
        if not static_change:
            raise ModelLoadError(f"Cannot verify {lock_path}: the model does not load although no "
                                 f"locked file or label changed: {load_error}", path=lock_path)
        why = f"the model does not load: {load_error}"
        spec_settings = settings_section(spec, None, {})
        settings_changes = _diff_flat(_only(lock.settings, spec_settings), spec_settings)
        sections["tokenizer"] = SectionResult("tokenizer", "not checked", summary=why)
        sections["settings"] = (_section("settings", settings_changes) if settings_changes
                                else SectionResult("settings", "not checked", summary=why))
        sections["canary"] = SectionResult("canary", "not checked", summary=why)
        canary = None
    else:
        texts = _locked_canary_texts(lock, lock_path)
        say(f"canary: {len(texts)} texts")
        predictions = run_canary(classifier, texts, progress)
        sections["tokenizer"] = _section("tokenizer", _diff_tokenizer(lock.tokenizer, tokenizer_section(classifier)))
        current_settings = settings_section(spec, classifier, predictions.settings.get("engine", {}))
        sections["settings"] = _section("settings", _diff_flat(lock.settings, current_settings))
        canary = _compare_canary(lock.canary, predictions, texts, lock.labels.label_names)
        sections["canary"] = _canary_section(canary, lock.labels.label_names, list(predictions.label_names))
    order = ("model", "files", "tokenizer", "labels", "settings", "license", "canary", "versions")
    notes = tuple(f"{part} license {found.license}: {found.reason}" for part, found in state.licenses.items()
                  if found.license == UNKNOWN_LICENSE)
    return VerifyResult(lock_path, described, tuple(sections[name] for name in order), canary, load_error, notes)


def _section(name: str, changes: Sequence[Change], *, summary: str = "") -> SectionResult:
    return SectionResult(name, "changed" if changes else "same", tuple(changes), summary)


def _only(table: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if key in keys}


def _diff_flat(locked: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[Change]:
    changes = []
    for key in list(locked) + [k for k in current if k not in locked]:
        old, new = locked.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changes += _diff_flat(old, new, prefix=f"{prefix}{key}.")
        elif old != new:
            changes.append(Change(f"{prefix}{key}", old, new))
    return changes


def _diff_model(locked: LockedModel, source: ModelSource) -> list[Change]:
    changes = []
    if locked.reading != source.reading:
        changes.append(Change("reading", locked.reading, source.reading, "where the model files are read from"))
    if locked.resolved_revision != source.revision and (locked.resolved_revision or source.revision):
        changes.append(Change("resolved_revision", locked.resolved_revision or "none", source.revision or "none",
                              "the Hub revision moved; [files] says whether any file changed"))
    return changes


def _diff_labels(locked: LockedLabels, current: LockedLabels) -> list[Change]:
    changes = []
    if locked.config_id2label != current.config_id2label:
        changes.append(Change("config.json id2label", locked.config_id2label, current.config_id2label))
    if locked.label_map != current.label_map:
        changes.append(Change("label_map", locked.label_map or "none", current.label_map or "none"))
    if locked.label_names != current.label_names:
        changes.append(Change("label_names", locked.label_names, current.label_names))
    return changes


def _diff_tokenizer(locked: Mapping[str, Any], current: Mapping[str, Any]) -> list[Change]:
    changes = _diff_flat({k: v for k, v in locked.items() if k != "probes"},
                         {k: v for k, v in current.items() if k != "probes"})
    old_probes, new_probes = locked.get("probes", {}), current.get("probes", {})
    differing = [name for name, _ in PROBES if name in old_probes and old_probes[name] != new_probes.get(name)]
    if differing:
        name = differing[0]
        text = dict(PROBES)[name]
        note = f"first differing probe, text {text[:40] + ('...' if len(text) > 40 else '')!r}"
        if len(differing) > 1:
            note += f"; {len(differing) - 1} more differ: {', '.join(differing[1:])}"
        changes.append(Change(f"probe {name}", old_probes[name], new_probes.get(name), note))
    return changes


def _license_section(locked: LockedLicense, licenses: Mapping[str, License],
                     allowed: Sequence[str] | None) -> SectionResult:
    current = {part: found.license for part, found in licenses.items()}
    changes = _diff_flat({k: v for k, v in (("model", locked.model), ("adapter", locked.adapter)) if v}, current)
    failures = license_failures_of(licenses, allowed)
    summary = ", ".join(f"{part} {value}" for part, value in current.items())
    if failures:
        return SectionResult("license", "failed", tuple(changes), f"{summary}; " + "; ".join(failures))
    return _section("license", changes, summary=summary + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""))


def _locked_canary_texts(lock: Lock, lock_path: Path) -> tuple[str, ...]:
    from textgate.predictions import texts_fingerprint

    source = lock.canary.source
    path = None if source == BUNDLED_CANARY else (lock_path.parent / source)
    texts, where = read_canary_texts(path, text_col=lock.canary.text_col)
    if texts_fingerprint(texts) != lock.canary.texts_sha256:
        raise DataError(f"The canary texts in {where} are not the ones {lock_path} was made with "
                        f"({len(texts)} texts, fingerprint {texts_fingerprint(texts)}; the lock records "
                        f"{lock.canary.texts} texts, {lock.canary.texts_sha256}). Restore that file, or "
                        "re-create the lock.", field="canary", path=path or lock_path)
    return texts


def _compare_canary(locked: LockedCanary, predictions: Any, texts: Sequence[str],
                    locked_names: Sequence[str]) -> CanaryComparison | None:
    if list(predictions.label_names) != list(locked_names):
        return None  # another label set: reported by the labels section and _canary_section
    rows = canary_rows(predictions, locked.decimals)
    flips, max_delta = [], 0.0
    for i, (old, new) in enumerate(zip(locked.rows, rows, strict=True)):
        old_p, new_p = old[1:], predictions.probabilities[i]
        max_delta = max(max_delta, max(abs(float(a) - float(b)) for a, b in zip(old_p, new_p, strict=True)))
        if old[0] != new[0]:
            top = sorted(old_p, reverse=True)
            near_tie = len(top) > 1 and top[0] - top[1] <= 2 * locked.tolerance
            flips.append(Flip(i, texts[i], old[0], new[0], near_tie))
    return CanaryComparison(len(rows), tuple(flips), round(max_delta, 8), locked.tolerance,
                            canary_digest(rows) == locked.digest)


def _canary_section(canary: CanaryComparison | None, locked_names: Sequence[str],
                    current_names: Sequence[str]) -> SectionResult:
    if canary is None:
        return SectionResult("canary", "changed", (Change("label_names", list(locked_names), list(current_names),
                                                          "canary outputs are not comparable"),))
    changes = [Change(f"row {f.row + 1}", f.locked, f.current,
                      f"{'near tie; ' if f.near_tie else ''}text {f.text[:50]!r}") for f in canary.flips[:5]]
    if len(canary.flips) > 5:
        changes.append(Change(f"... and {len(canary.flips) - 5} more flipped rows", None, None))
    if canary.max_abs_delta > canary.tolerance:
        changes.insert(0, Change("max |delta p|", f"<= {canary.tolerance:g}", f"{canary.max_abs_delta:.3g}",
                                 "probabilities moved beyond the tolerance"))
    return SectionResult("canary", "changed" if canary.changed else "same", tuple(changes), canary.summary())
