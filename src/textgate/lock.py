"""Pin a classifier and say exactly which layer changed its behaviour: `textgate lock`,
`textgate verify`, `textgate pull`, and the lock check that loading runs.

A lock (TOML, ``lock_version = 1``) records, for one ModelSpec:

- ``[model]``: the spec as used (paths relative to the lock file), how MODEL was read and the
  resolved Hub commit;
- ``[files]``: sha256 of every file in the model and adapter folders (weights, config,
  tokenizer files, remote code...) but a short documented list that loading never reads, the
  same files the model fingerprint hashes (``textgate.model.model_files``), and the
  calibration file;
- ``[tokenizer]``: class, lower-casing, padding/truncation sides, ``model_max_length``, special
  tokens and the token ids of a fixed probe set (:data:`PROBES`);
- ``[labels]``: ``id2label`` as config.json has it, the spec's ``label_map`` and the label names;
- ``[settings]``: the inference settings textgate uses (dtype, padding, truncation, the
  effective max_length, token budget, the engine's compute path);
- ``[license]``: the ``license:`` of the model's and the adapter's model cards;
- ``[versions]``: python, torch, transformers, tokenizers, peft, textgate;
- ``[canary]``: label and rounded probabilities per canary text, and a digest.

What counts as a behaviour change (verify exits 1): any file hash, tokenizer property or probe,
label, setting or license difference, or a canary whose probabilities moved by more than the
lock's tolerance or whose label flipped (except on a near tie, see :class:`CanaryComparison`).
A different library version or Hub commit alone is reported and exits 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from textgate.config import dump_toml, read_toml, validate_table
from textgate.errors import ConfigError, DataError, ModelLoadError
from textgate.model import (
    ModelSource,
    ModelSpec,
    effective_max_length,
    file_sha256,
    identify_model,
    library_versions,
    load_classifier,
    load_model_spec,
    model_files,
    model_spec_from_table,
    read_json,
    resolve_source,
)
from textgate.outputs import write_text_atomic

__all__ = [
    "CANARY_DECIMALS",
    "CANARY_TOLERANCE",
    "LOCK_VERSION",
    "PROBES",
    "CanaryComparison",
    "Change",
    "Lock",
    "PullResult",
    "SectionResult",
    "VerifyResult",
    "build_lock",
    "card_license",
    "enforce_lock",
    "license_failures",
    "pull_model",
    "read_canary_texts",
    "read_lock",
    "verify_lock",
    "write_lock",
]

LOCK_VERSION = 1
# Four decimals: a real change shows, the file stays readable (5e-5 rounding error at most).
CANARY_DECIMALS = 4
# Largest |delta p| that is not a behaviour change. float32 CPU kernels differ between machines
# and thread counts by about 1e-6..1e-5 per probability; rounding adds up to 5e-5. A changed
# dtype (bfloat16: ~7e-3), weights or truncation moves probabilities far more.
CANARY_TOLERANCE = 1e-3
UNKNOWN_LICENSE = "unknown"
# Sections in which any difference is a behaviour (or license) change: exit 1.
BEHAVIOUR_SECTIONS = ("files", "tokenizer", "labels", "settings", "license", "canary")
_LONG_PROBE = ("begin " + "omg this game was sooo good lol " * 100 + "the very end").strip()
# Tricky strings whose token ids a lock records; a changed tokenizer changes some of them.
# Names are stable: a later textgate may add probes, never change one.
PROBES: tuple[tuple[str, str], ...] = (
    ("plain", "i love this movie"),
    ("uppercase", "OMG I LOVE THIS"),
    ("emoji", "so happy \U0001F602\U0001F525 \u2764\ufe0f"),
    ("emoji_sequence", "family \U0001F468\u200d\U0001F469\u200d\U0001F467 day \U0001F44D\U0001F3FD"),
    ("elongated", "soooo goooood!!!! nooooo"),
    ("slang", "ngl this slaps fr tbh lmao smh"),
    ("url", "check https://t.co/AbC123xyz and www.example.com/path?q=1"),
    ("mention", "@user @user thanks for the follow"),
    ("hashtag", "#MondayMotivation #blessed #NoFilter"),
    ("html_entity", "fish &amp; chips &lt;3 &gt;&gt; &quot;yum&quot;"),
    ("escaped_unicode", "I\\u2019m going tomorrow\\u002c ok"),
    ("accents", "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber"),
    ("non_latin", "\u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627 \u043f\u0440\u0438\u0432\u0435\u0442"),
    ("whitespace", "  tabs\tand\nnewlines   here  "),
    ("punctuation", "wait... what?!?! :) :-( <3 ^_^"),
    ("numbers", "3rd place 2-1 @ 11/4 100% $5.99"),
    ("empty", ""),
    ("long", _LONG_PROBE),  # longer than any model's limit: shows truncation side and limit
)
# Probe id lists longer than this are stored as length, head, tail and digest.
_PROBE_IDS_SHOWN = 8
_PROBE_IDS_FULL = 64
# The engine settings (Predictions.settings["engine"]) that say how textgate computes; the
# others (batch count, threads, timings) describe one run and differ between machines.
_ENGINE_KEYS = ("attention", "compute", "max_batch_size", "order")
BUNDLED_CANARY = "bundled"
# How a lock that does not hang together ends its error: locks are written, not edited.
_EDITED = "the lock was edited or cut short: re-create it with `textgate lock`"


# --- the lock file ----------------------------------------------------------------------------


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _invalid(loc: tuple[str, ...], message: str, got: Any) -> ValidationError:
    """A validation error at field ``loc`` quoting a short ``got`` (validate_table names both):
    a ValueError from a model validator would name the whole table and quote all of it."""
    return ValidationError.from_exception_data(
        "Lock", [InitErrorDetails(type=PydanticCustomError("lock_table", message), loc=loc, input=got)])


class LockedModel(_Table):
    spec: dict[str, Any]
    reading: Literal["package", "folder", "hub"]
    spec_file: str | None = None
    resolved_revision: str | None = None
    pulled_from: str | None = None


class LockedLabels(_Table):
    config_id2label: dict[str, str]
    label_map: dict[str, str] | None = None
    label_names: list[str]


class LockedLicense(_Table):
    model: str
    adapter: str | None = None
    allowed: list[str] | None = None


class LockedCanary(_Table):
    source: str
    text_col: str = "text"
    texts: int
    texts_sha256: str
    decimals: int = Field(ge=1, le=8)
    tolerance: float = Field(gt=0, lt=1)
    digest: str
    rows: list[list[Any]]  # [label, p_0, ..., p_K-1] per canary text

    @model_validator(mode="after")
    def _one_row_per_text(self) -> LockedCanary:
        if len(self.rows) != self.texts:
            raise _invalid(("rows",), f"must hold one row per canary text, {self.texts} (canary.texts); "
                                      f"{_EDITED}", len(self.rows))
        return self


class Lock(_Table):
    """A parsed lock file. ``tokenizer``, ``settings``, ``files`` and ``versions`` are flat
    property tables compared key by key (``tokenizer.probes`` and ``special_tokens`` nest)."""

    lock_version: Literal[1]
    model: LockedModel
    files: dict[str, str]
    tokenizer: dict[str, Any]
    labels: LockedLabels
    settings: dict[str, Any]
    license: LockedLicense
    versions: dict[str, str]
    canary: LockedCanary

    @model_validator(mode="after")
    def _one_probability_per_label(self) -> Lock:
        width = 1 + len(self.labels.label_names)
        for i, row in enumerate(self.canary.rows, 1):
            if len(row) != width:
                raise _invalid(("canary", "rows"), f"row {i} has {len(row)} values, but the lock's "
                               f"{width - 1} labels (labels.label_names) need {width}: [label, p_0, ..., "
                               f"p_{width - 2}]; {_EDITED}", row)
        return self

    def recorded_spec(self, lock_dir: Path, *, origin: str) -> ModelSpec:
        """The ModelSpec the lock was made with, its paths made relative to ``lock_dir``."""
        return model_spec_from_table(self.model.spec, base=lock_dir, origin=f"{origin} [model.spec]")


def read_lock(path: Path | str) -> Lock:
    """Read and validate a lock file (one-line ConfigError naming the field if it is wrong)."""
    path = Path(path)
    raw = read_toml(path, what="Lock file", field="lock")
    if raw.get("lock_version") != LOCK_VERSION:
        raise ConfigError(f"Lock file {path} has lock_version {raw.get('lock_version')!r}; this textgate "
                          f"reads lock_version {LOCK_VERSION}. Re-create it with `textgate lock`.",
                          field="lock_version", path=path)
    return validate_table(Lock, raw, origin=path)


def write_lock(lock: Lock, path: Path | str) -> Path:
    """Write ``lock`` as TOML (sections in a fixed order, one canary row per line)."""
    path = Path(path)
    header = ("# textgate lock: written by `textgate lock`, checked by `textgate verify`. Do not edit;\n"
              "# re-create it when a change is intended. Format: docs/lock.md.\n")
    write_text_atomic(path, header + dump_toml(lock.model_dump(mode="json", exclude_none=True)))
    return path


# --- building a lock --------------------------------------------------------------------------


Say = Callable[[str], None]


def build_lock(
    spec: ModelSpec,
    *,
    lock_dir: Path,
    canary_path: Path | None = None,
    text_col: str = "text",
    allowed_licenses: Sequence[str] | None = None,
    spec_file: Path | None = None,
    pulled_from: str | None = None,
    progress: bool | None = None,
    say: Say = lambda message: None,
) -> Lock:
    """Load ``spec``, probe it and run the canary; the lock's paths are relative to ``lock_dir``.

    ``allowed_licenses`` is recorded (verify enforces it); check it first with
    :func:`license_failures`, as the CLI does, to refuse locking a model it does not allow.
    """
    spec = spec.model_copy(update={"lock": None})  # the lock describes files, it does not check them
    identity = identify_model(spec)  # resolves the model once (a Hub id: one snapshot lookup)
    state = _observe_static(spec, identity.source)
    licenses = state.licenses
    say(f"loading {state.source.describe()}" + (f" + adapter {spec.adapter}" if spec.adapter else ""))
    classifier = load_classifier(identity)
    texts, source = read_canary_texts(canary_path, text_col=text_col)
    say(f"canary: {len(texts)} texts from {source}")
    predictions = _run_canary(classifier, texts, progress)
    rows = _canary_rows(predictions, CANARY_DECIMALS)
    from textgate.predictions import texts_fingerprint

    return Lock(
        lock_version=LOCK_VERSION,
        model=LockedModel(
            spec=_portable_spec(spec, lock_dir),
            reading=state.source.reading,
            spec_file=_relative(spec_file, lock_dir) if spec_file else None,
            resolved_revision=state.source.revision,
            pulled_from=pulled_from,
        ),
        files=state.files,
        tokenizer=_tokenizer_section(classifier),
        labels=state.labels,
        settings=_settings_section(spec, classifier, predictions.settings.get("engine", {})),
        license=LockedLicense(model=licenses["model"].license,
                              adapter=licenses["adapter"].license if "adapter" in licenses else None,
                              allowed=sorted({a.lower() for a in allowed_licenses}) if allowed_licenses else None),
        versions=library_versions(),
        canary=LockedCanary(
            source=BUNDLED_CANARY if canary_path is None else _relative(canary_path, lock_dir),
            text_col=text_col, texts=len(texts), texts_sha256=texts_fingerprint(texts),
            decimals=CANARY_DECIMALS, tolerance=CANARY_TOLERANCE, digest=_canary_digest(rows), rows=rows,
        ),
    )


def read_canary_texts(path: Path | None, *, text_col: str = "text") -> tuple[tuple[str, ...], str]:
    """The canary texts (the bundled set when ``path`` is None) and a description of them."""
    from textgate.data import read_dataset

    if path is None:
        path = Path(__file__).parent / "data" / "canary.jsonl"
        text_col, where = "text", f"the bundled canary set ({path.name})"
    else:
        where = str(path)
    dataset = read_dataset(path, text_col=text_col, label_col=None)  # texts only; labels are not needed
    if not len(dataset):
        raise DataError(f"Canary file {path} has no texts; pass a file with at least one.", path=path)
    return dataset.texts, where


@dataclass(frozen=True)
class _Static:
    """What is known about a spec without loading weights."""

    source: ModelSource
    files: dict[str, str]
    labels: LockedLabels | None
    labels_error: str | None
    licenses: dict[str, _License]


@dataclass(frozen=True)
class _License:
    license: str
    reason: str  # where it came from, or why it is unknown


def _observe_static(spec: ModelSpec, source: ModelSource) -> _Static:
    """Hashes, labels and licenses of ``spec``'s files in ``source`` (its ``resolve_source``)."""
    paths = _locked_paths(spec, model_files(source.path, _adapter_folder(spec)))
    files = {key: file_sha256(path) for key, path in paths.items()}
    try:
        labels, labels_error = _labels_section(spec, source.path), None
    except ModelLoadError as exc:
        labels, labels_error = None, str(exc)
    return _Static(source, files, labels, labels_error, _card_licenses(spec, source.path))


def _adapter_folder(spec: ModelSpec) -> Path | None:
    return Path(spec.adapter) if spec.adapter else None


def _locked_paths(spec: ModelSpec, files: Sequence[tuple[str, Path]]) -> dict[str, Path]:
    """The files a lock pins: ``files`` (``model_files`` of the spec's folders) and the calibration file."""
    paths = dict(files)
    if spec.calibration:
        calibration = Path(spec.calibration)
        paths[f"calibration/{calibration.name}"] = calibration
    return paths


def _labels_section(spec: ModelSpec, model_folder: Path) -> LockedLabels:
    """Read from config.json without transformers, so a LABEL_k config is reported, not fatal."""
    raw = read_json(model_folder / "config.json")
    id2label = {str(k): str(v) for k, v in sorted((raw.get("id2label") or {}).items(), key=lambda kv: int(kv[0]))}
    label_map = {str(k): v for k, v in sorted(spec.label_map.items())} if spec.label_map else None
    names = list((label_map or id2label).values())
    return LockedLabels(config_id2label=id2label, label_map=label_map, label_names=names)


def card_license(folder: Path) -> _License:
    """The ``license:`` of the model card (README.md YAML front matter) in ``folder``."""
    card = folder / "README.md"
    if not card.is_file():
        return _License(UNKNOWN_LICENSE, f"no README.md model card in {folder}")
    import yaml
    from huggingface_hub import metadata_load

    try:
        metadata = metadata_load(card) or {}
    except (yaml.YAMLError, ValueError) as exc:  # malformed front matter: report, do not fail the lock
        return _License(UNKNOWN_LICENSE, f"{card} front matter is not valid YAML ({type(exc).__name__})")
    value = metadata.get("license")
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    if not value:
        return _License(UNKNOWN_LICENSE, f"{card} has no license: field")
    value = str(value).strip().lower()
    if value == "other" and metadata.get("license_name"):
        value = f"other:{str(metadata['license_name']).strip().lower()}"
    return _License(value, f"license: in {card}")


def license_failures(spec: ModelSpec, allowed: Sequence[str] | None) -> list[str]:
    """One message per part (model, adapter) whose model-card license is not in ``allowed``;
    empty when ``allowed`` is empty (no license check)."""
    if not allowed:
        return []
    return _license_failures(_card_licenses(spec, resolve_source(spec).path), allowed)


def _card_licenses(spec: ModelSpec, model_folder: Path) -> dict[str, _License]:
    """The model card's license, and the adapter card's when the spec has an adapter."""
    licenses = {"model": card_license(model_folder)}
    if spec.adapter:
        licenses["adapter"] = card_license(Path(spec.adapter))
    return licenses


def _license_failures(licenses: Mapping[str, _License], allowed: Sequence[str] | None) -> list[str]:
    if not allowed:
        return []
    accepted = {a.strip().lower() for a in allowed}
    return [f"the {part}'s license is {found.license!r} ({found.reason}), not one of {sorted(accepted)}"
            for part, found in licenses.items() if found.license not in accepted]


def _portable_spec(spec: ModelSpec, lock_dir: Path) -> dict[str, Any]:
    """The spec as a TOML table, local paths relative to the lock file, no self-reference."""
    table = spec.model_dump(mode="json", exclude_none=True, exclude={"lock"})
    for key in ("model", "adapter", "calibration"):
        value = table.get(key)
        if value and not value.startswith("pkg:") and Path(value).is_absolute():
            table[key] = _relative(Path(value), lock_dir)
    return table


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _tokenizer_section(classifier: Any) -> dict[str, Any]:
    tokenizer = classifier.tokenizer
    model_limit = effective_max_length(classifier.spec.model_copy(update={"max_length": None}),
                                        tokenizer, classifier.model.config)
    special = dict(sorted(tokenizer.special_tokens_map.items()))
    return {
        "class": type(tokenizer).__name__,
        "do_lower_case": _plain(getattr(tokenizer, "do_lower_case", None)),
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
        "model_max_length": _plain(int(tokenizer.model_max_length)),
        "vocab_size": len(tokenizer),
        "probe_limit": model_limit,
        "special_tokens": {name: str(token) for name, token in special.items()},
        "special_token_ids": {name: int(tokenizer.convert_tokens_to_ids(token)) for name, token in special.items()
                              if isinstance(token, str)},
        "probes": {name: _probe_record(tokenizer(text, truncation=True, max_length=model_limit)["input_ids"])
                   for name, text in PROBES},
    }


def _probe_record(ids: Sequence[int]) -> list[int] | dict[str, Any]:
    ids = [int(i) for i in ids]
    if len(ids) <= _PROBE_IDS_FULL:
        return ids
    return {"tokens": len(ids), "head": ids[:_PROBE_IDS_SHOWN], "tail": ids[-_PROBE_IDS_SHOWN:],
            "sha256": hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]}


def _plain(value: Any) -> Any:
    """TOML has no null and 64-bit integers: None -> "none", huge ints (``model_max_length``
    unset is 1e30) -> their decimal string."""
    if value is None:
        return "none"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value


def _settings_section(spec: ModelSpec, classifier: Any | None, engine: Mapping[str, Any]) -> dict[str, Any]:
    """The inference settings textgate uses. Without a loaded classifier only the spec's part."""
    from textgate.infer import DEFAULT_TOKEN_BUDGET

    settings = {
        "dtype": spec.dtype,
        "padding": spec.padding,
        "truncation": spec.truncation,
        "max_length": _plain(spec.max_length),
        "token_budget": DEFAULT_TOKEN_BUDGET,
        "allow_pickle": spec.allow_pickle,
        "trust_remote_code": spec.trust_remote_code,
    }
    if classifier is not None:
        settings["effective_max_length"] = classifier.max_length
        # A calibration file divides logits by a temperature (1.0 without one).
        settings["temperature"] = float(classifier.temperature)
        settings.update({f"engine_{key}": _plain(engine.get(key)) for key in _ENGINE_KEYS})
    return settings


def _run_canary(classifier: Any, texts: Sequence[str], progress: bool | None) -> Any:
    from textgate.infer import predict  # imports torch: only when a canary runs

    return predict(classifier, texts, progress=progress)


def _canary_rows(predictions: Any, decimals: int) -> list[list[Any]]:
    return [[str(label), *(round(float(p), decimals) for p in probs)]
            for label, probs in zip(predictions.predicted, predictions.probabilities, strict=True)]


def _canary_digest(rows: Sequence[Sequence[Any]]) -> str:
    """Equal digests: identical labels and rounded probabilities. Unequal ones are compared
    row by row with the tolerance (rounding can differ between machines)."""
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()[:16]


# --- enforcing a lock at load time -------------------------------------------------------------


def enforce_lock(spec: ModelSpec, files: Sequence[tuple[str, Path]]) -> None:
    """Raise ModelLoadError naming the first file whose sha256 differs from ``spec.lock``'s
    (also a file added or missing); ``files``: ``model_files`` of the resolved model and adapter
    folders. Called by ``identify_model`` when the spec has a lock."""
    lock_path = Path(spec.lock)
    lock = read_lock(lock_path)
    paths = _locked_paths(spec, files)
    changes = _diff_files(lock.files, {key: file_sha256(path) for key, path in paths.items()})
    if not changes:
        return
    first = changes[0]
    where = f" ({paths[first.key]})" if first.key in paths else ""
    more = f" (and {len(changes) - 1} more file{'s' if len(changes) > 2 else ''})" if len(changes) > 1 else ""
    differs = (f"has sha256 {first.current}... but the lock records {first.locked}..."
               if first.note == "contents changed" else first.note)
    raise ModelLoadError(
        f"File {first.key}{where} {differs}{more}, so it is not the file that lock {lock_path} "
        f"pins. Loading refuses files that differ from the lock. Restore the pinned files (textgate "
        f"pull them again, or re-download the locked revision); if the change is intended, review "
        f"`textgate verify {lock_path}` and re-create the lock with `textgate lock`.",
        path=paths.get(first.key, lock_path),
    )


# --- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between the lock and now."""

    key: str
    locked: Any
    current: Any
    note: str = ""

    def line(self) -> str:
        if self.locked is None and self.current is None:
            return f"{self.key} ({self.note})" if self.note else self.key
        text = f"{self.key}: {_show(self.locked)} -> {_show(self.current)}"
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "locked": self.locked, "current": self.current, "note": self.note}


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
    state = _observe_static(spec, source)
    sections: dict[str, SectionResult] = {}
    sections["model"] = _section("model", _diff_model(lock.model, state.source))
    sections["files"] = _section("files", _diff_files(lock.files, state.files),
                                 summary=f"{len(state.files)} files")
    if state.labels is not None:
        sections["labels"] = _section("labels", _diff_labels(lock.labels, state.labels))
    allowed = allowed_licenses if allowed_licenses else lock.license.allowed
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
        spec_settings = _settings_section(spec, None, {})
        settings_changes = _diff_flat(_only(lock.settings, spec_settings), spec_settings)
        sections["tokenizer"] = SectionResult("tokenizer", "not checked", summary=why)
        sections["settings"] = (_section("settings", settings_changes) if settings_changes
                                else SectionResult("settings", "not checked", summary=why))
        sections["canary"] = SectionResult("canary", "not checked", summary=why)
        canary = None
    else:
        texts = _locked_canary_texts(lock, lock_path)
        say(f"canary: {len(texts)} texts")
        predictions = _run_canary(classifier, texts, progress)
        sections["tokenizer"] = _section("tokenizer", _diff_tokenizer(lock.tokenizer, _tokenizer_section(classifier)))
        current_settings = _settings_section(spec, classifier, predictions.settings.get("engine", {}))
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


def _diff_files(locked: Mapping[str, str], current: Mapping[str, str]) -> list[Change]:
    changes = []
    for key in sorted(set(locked) | set(current)):
        old, new = locked.get(key), current.get(key)
        if old == new:
            continue
        if old is None:
            changes.append(Change(key, "(absent)", new[:12], "has been added; the lock has no such file"))
        elif new is None:
            changes.append(Change(key, old[:12], "(missing)", "is missing"))
        else:
            changes.append(Change(key, old[:12], new[:12], "contents changed"))
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


def _license_section(locked: LockedLicense, licenses: Mapping[str, _License],
                     allowed: Sequence[str] | None) -> SectionResult:
    current = {part: found.license for part, found in licenses.items()}
    changes = _diff_flat({k: v for k, v in (("model", locked.model), ("adapter", locked.adapter)) if v}, current)
    failures = _license_failures(licenses, allowed)
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
    rows = _canary_rows(predictions, locked.decimals)
    flips, max_delta = [], 0.0
    for i, (old, new) in enumerate(zip(locked.rows, rows, strict=True)):
        old_p, new_p = old[1:], predictions.probabilities[i]
        max_delta = max(max_delta, max(abs(float(a) - float(b)) for a, b in zip(old_p, new_p, strict=True)))
        if old[0] != new[0]:
            top = sorted(old_p, reverse=True)
            near_tie = len(top) > 1 and top[0] - top[1] <= 2 * locked.tolerance
            flips.append(Flip(i, texts[i], old[0], new[0], near_tie))
    return CanaryComparison(len(rows), tuple(flips), round(max_delta, 8), locked.tolerance,
                            _canary_digest(rows) == locked.digest)


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


# --- pulling a model for an offline deploy ----------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    folder: Path
    spec_path: Path
    lock_path: Path
    files: int
    bytes: int


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
    original = _locked_paths(spec, model_files(source_folder, _adapter_folder(spec)))
    copied = _locked_paths(pulled, model_files(Path(pulled.model), _adapter_folder(pulled)))
    changes = _diff_files({k: file_sha256(p) for k, p in original.items()},
                          {k: file_sha256(p) for k, p in copied.items()})
    if changes:
        raise ModelLoadError(f"The copy in {Path(pulled.model).parent} differs from the source: "
                             f"{changes[0].key} {changes[0].note}. Check the disk and pull again.",
                             path=Path(pulled.model).parent)
    return copied


def _show(value: Any) -> str:
    if isinstance(value, list) and len(value) > 12:
        return f"[{', '.join(map(str, value[:12]))}, ... {len(value)} items]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)
