"""Building a lock (`textgate lock`): load a ModelSpec, probe its tokenizer, run the canary,
and record what decides its behaviour. The file format is :mod:`textgate.model.lock_file`.

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
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgate._internal.versions import library_versions
from textgate.errors import DataError, ModelLoadError
from textgate.lock.license import License, allowlist, card_licenses
from textgate.model import (
    ModelSource,
    ModelSpec,
    effective_max_length,
    file_sha256,
    identify_model,
    load_classifier,
    model_files,
    read_json,
)
from textgate.model.lock_file import (
    LOCK_VERSION,
    Lock,
    LockedCanary,
    LockedLabels,
    LockedLicense,
    LockedModel,
    locked_paths,
)

__all__ = [
    "BUNDLED_CANARY",
    "CANARY_DECIMALS",
    "CANARY_TOLERANCE",
    "PROBES",
    "Say",
    "StaticState",
    "adapter_folder",
    "build_lock",
    "canary_digest",
    "canary_rows",
    "lock_summary",
    "observe_static",
    "read_canary_texts",
    "run_canary",
    "settings_section",
    "tokenizer_section",
]

# Four decimals: a real change shows, the file stays readable (5e-5 rounding error at most).
CANARY_DECIMALS = 4
# Largest |delta p| that is not a behaviour change. float32 CPU kernels differ between machines
# and thread counts by about 1e-6..1e-5 per probability; rounding adds up to 5e-5. A changed
# dtype (bfloat16: ~7e-3), weights or truncation moves probabilities far more.
CANARY_TOLERANCE = 1e-3
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
    :func:`require_allowed_licenses`, as the CLI does, to refuse locking a model it does not allow.
    """
    spec = spec.model_copy(update={"lock": None})  # the lock describes files, it does not check them
    identity = identify_model(spec)  # resolves the model once (a Hub id: one snapshot lookup)
    state = observe_static(spec, identity.source)
    licenses = state.licenses
    say(f"loading {state.source.describe()}" + (f" + adapter {spec.adapter}" if spec.adapter else ""))
    classifier = load_classifier(identity)
    texts, source = read_canary_texts(canary_path, text_col=text_col)
    say(f"canary: {len(texts)} texts from {source}")
    predictions = run_canary(classifier, texts, progress)
    rows = canary_rows(predictions, CANARY_DECIMALS)
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
        tokenizer=tokenizer_section(classifier),
        labels=state.labels,
        settings=settings_section(spec, classifier, predictions.settings.get("engine", {})),
        license=LockedLicense(model=licenses["model"].license,
                              adapter=licenses["adapter"].license if "adapter" in licenses else None,
                              allowed=list(allowlist(allowed_licenses) or ()) or None),
        versions=library_versions(),
        canary=LockedCanary(
            source=BUNDLED_CANARY if canary_path is None else _relative(canary_path, lock_dir),
            text_col=text_col, texts=len(texts), texts_sha256=texts_fingerprint(texts),
            decimals=CANARY_DECIMALS, tolerance=CANARY_TOLERANCE, digest=canary_digest(rows), rows=rows,
        ),
    )


def lock_summary(lock: Lock, path: Path | str) -> dict[str, Any]:
    """What `textgate lock --format json` prints: the lock written to ``path`` in brief."""
    return {"schema_version": 1, "kind": "textgate.lock", "out": str(path), "files": sorted(lock.files),
            "tokenizer_probes": len(lock.tokenizer["probes"]),
            "canary": {"texts": lock.canary.texts, "digest": lock.canary.digest},
            "license": lock.license.model_dump(mode="json")}


def read_canary_texts(path: Path | None, *, text_col: str = "text") -> tuple[tuple[str, ...], str]:
    """The canary texts (the bundled set when ``path`` is None) and a description of them."""
    from textgate.data import read_dataset

    if path is None:
        path = Path(__file__).parent / "canary.jsonl"
        text_col, where = "text", f"the bundled canary set ({path.name})"
    else:
        where = str(path)
    dataset = read_dataset(path, text_col=text_col, label_col=None)  # texts only; labels are not needed
    if not len(dataset):
        raise DataError(f"Canary file {path} has no texts; pass a file with at least one.", path=path)
    return dataset.texts, where


@dataclass(frozen=True)
class StaticState:
    """What is known about a spec without loading weights."""

    source: ModelSource
    files: dict[str, str]
    labels: LockedLabels | None
    labels_error: str | None
    licenses: dict[str, License]


def observe_static(spec: ModelSpec, source: ModelSource) -> StaticState:
    """Hashes, labels and licenses of ``spec``'s files in ``source`` (its ``resolve_source``)."""
    paths = locked_paths(spec, model_files(source.path, adapter_folder(spec)))
    files = {key: file_sha256(path) for key, path in paths.items()}
    try:
        labels, labels_error = _labels_section(spec, source.path), None
    except ModelLoadError as exc:
        labels, labels_error = None, str(exc)
    return StaticState(source, files, labels, labels_error, card_licenses(spec, source.path))


def adapter_folder(spec: ModelSpec) -> Path | None:
    return Path(spec.adapter) if spec.adapter else None


def _labels_section(spec: ModelSpec, model_folder: Path) -> LockedLabels:
    """Read from config.json without transformers, so a LABEL_k config is reported, not fatal."""
    raw = read_json(model_folder / "config.json")
    id2label = {str(k): str(v) for k, v in sorted((raw.get("id2label") or {}).items(), key=lambda kv: int(kv[0]))}
    label_map = {str(k): v for k, v in sorted(spec.label_map.items())} if spec.label_map else None
    names = list((label_map or id2label).values())
    return LockedLabels(config_id2label=id2label, label_map=label_map, label_names=names)


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


def tokenizer_section(classifier: Any) -> dict[str, Any]:
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


def settings_section(spec: ModelSpec, classifier: Any | None, engine: Mapping[str, Any]) -> dict[str, Any]:
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


def run_canary(classifier: Any, texts: Sequence[str], progress: bool | None) -> Any:
    from textgate.infer import predict  # imports torch: only when a canary runs

    return predict(classifier, texts, progress=progress)


def canary_rows(predictions: Any, decimals: int) -> list[list[Any]]:
    return [[str(label), *(round(float(p), decimals) for p in probs)]
            for label, probs in zip(predictions.predicted, predictions.probabilities, strict=True)]


def canary_digest(rows: Sequence[Sequence[Any]]) -> str:
    """Equal digests: identical labels and rounded probabilities. Unequal ones are compared
    row by row with the tolerance (rounding can differ between machines)."""
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()[:16]
