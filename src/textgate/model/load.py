"""Safe loading: a ModelSpec -> a loaded classifier, or a ModelLoadError saying why not.

Loading is safe by default: safetensors weights only (pickle files can run arbitrary code),
no remote code, and no silently random classification head or ``LABEL_k`` label names; a
``label_map`` names one class per head output and renames none of config.json's names (unless
``override_id2label``), and every token id the tokenizer can produce fits the embeddings.
The fingerprint covers every file in the model and adapter folders that loading may read
(``model_files``; docs/model-spec.md lists the ModelSpec keys and checks). A spec's lock file
is enforced and its calibration file read here (their formats: ``lock_file``,
``calibration_file``). This package is the only one that imports ``transformers`` and ``peft``.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from textgate.errors import ConfigError, ModelLoadError
from textgate.model.calibration_file import (
    CalibrationFile,
    check_calibration_labels,
    read_calibration_file,
)
from textgate.model.files import (
    PICKLE_WEIGHT_NAMES,
    TOKENIZER_FILES,
    check_safetensors_header,
    files_digest,
    model_files,
    read_json,
    safetensors_header,
)
from textgate.model.lock_file import enforce_lock
from textgate.model.runtime import Runtime
from textgate.model.spec import ModelSource, ModelSpec, resolve_source

__all__ = [
    "Classifier",
    "ModelIdentity",
    "effective_max_length",
    "identify_model",
    "load_classifier",
    "model_label_names",
]

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


@dataclass(frozen=True, eq=False)
class Classifier:
    """A loaded, ready-to-run classifier and everything that describes how it was loaded."""

    spec: ModelSpec
    source: ModelSource
    model: Any  # transformers PreTrainedModel, eval mode, adapter merged
    tokenizer: Any  # transformers fast tokenizer
    label_names: tuple[str, ...]
    max_length: int
    fingerprint: str
    weights_sha256: str
    temperature: float = 1.0  # logits are divided by it before the softmax (spec.calibration)
    runtime: Runtime | None = None  # what runs a batch; None: ``model`` in PyTorch (textgate.model.runtime)

    def settings(self) -> dict[str, Any]:
        return {
            **self.spec.settings(),
            "resolved_model": str(self.source.path),
            "model_reading": self.source.reading,
            "resolved_revision": self.source.revision,
            "effective_max_length": self.max_length,
            "label_names": list(self.label_names),
            "weights_sha256": self.weights_sha256,
            "temperature": self.temperature,
        }


@dataclass(frozen=True)
class ModelIdentity:
    """What decides a classifier's outputs, known without loading it: its files and settings."""

    spec: ModelSpec
    source: ModelSource
    adapter_path: Path | None
    weights_sha256: str
    fingerprint: str
    calibration: CalibrationFile | None = None  # spec.calibration, read and checked for this model


def identify_model(spec: ModelSpec, *, source: ModelSource | None = None) -> ModelIdentity:
    """Resolve and check the model's files and fingerprint them, without loading weights.

    Cheap enough to run before every cached step: hashing reads the files once per process.
    ``source``: ``resolve_source(spec)`` when the caller already has it (a Hub id is then not
    looked up again).
    """
    source = resolve_source(spec) if source is None else source
    _check_model_folder(source.path, spec)
    adapter_path = _check_adapter_folder(spec) if spec.adapter else None
    files = model_files(source.path, adapter_path)
    if spec.lock:  # refuse files whose sha256 differs from the lock
        enforce_lock(spec, files)
    weights_sha = files_digest(files)
    calibration = _read_calibration(spec, weights_sha)
    temperature = None if calibration is None else calibration.temperature
    fingerprint = _fingerprint(weights_sha, spec, temperature=temperature)
    return ModelIdentity(spec, source, adapter_path, weights_sha, fingerprint, calibration)


def model_label_names(identity: ModelIdentity) -> tuple[str, ...]:
    """The label names the model will output (config.json + label_map), without importing
    transformers or loading weights; the same rules as loading (no LABEL_k names)."""
    raw = read_json(identity.source.path / "config.json")
    config = SimpleNamespace(id2label={int(k): v for k, v in (raw.get("id2label") or {}).items()})
    _apply_label_map(config, identity.spec, identity.source.path)
    return tuple(config.id2label[i] for i in sorted(config.id2label))


def load_classifier(spec: ModelSpec | ModelIdentity) -> Classifier:
    """Load a ModelSpec into a ready classifier, refusing anything unsafe or ambiguous."""
    identity = spec if isinstance(spec, ModelIdentity) else identify_model(spec)
    spec, source = identity.spec, identity.source
    config = _load_config(source.path, spec)
    _check_head_size(config, spec, source.path, identity.adapter_path)
    model = _load_weights(source.path, config, spec, has_adapter=identity.adapter_path is not None)
    if identity.adapter_path is not None:
        model = _apply_adapter(model, identity.adapter_path, spec)
    model.eval()
    tokenizer = _load_tokenizer(source.path, spec)
    _check_token_ids(tokenizer, model, source.path)
    label_names = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    temperature = 1.0
    if identity.calibration is not None:
        check_calibration_labels(identity.calibration, Path(spec.calibration), label_names)
        temperature = identity.calibration.temperature
    return Classifier(
        spec=spec,
        source=source,
        model=model,
        tokenizer=tokenizer,
        label_names=label_names,
        max_length=effective_max_length(spec, tokenizer, model.config),
        fingerprint=identity.fingerprint,
        weights_sha256=identity.weights_sha256,
        temperature=temperature,
    )


def _check_model_folder(folder: Path, spec: ModelSpec) -> None:
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"No config.json in {folder}: this is not a Hugging Face model folder. Pass the folder "
            "that save_pretrained() wrote (config.json, model.safetensors, tokenizer files).",
            path=folder,
        )
    _check_weight_files(folder, "model", "model.safetensors", spec.allow_pickle)


def _check_weight_files(folder: Path, what: str, expected: str, allow_pickle: bool) -> None:
    if any(folder.glob("*.safetensors")):
        for weights in folder.glob("*.safetensors"):
            check_safetensors_header(weights)
        return
    pickles = [p.name for p in folder.iterdir() if p.name in PICKLE_WEIGHT_NAMES]
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"The {what} in {folder} has only pickle weights ({', '.join(pickles)}). Loading pickle "
            "files can execute arbitrary code, so textgate refuses them by default. Convert the "
            "weights to safetensors (load once where you trust the source and save_pretrained("
            "safe_serialization=True)), or set allow_pickle = true in the ModelSpec if you trust it.",
            path=folder,
        )
    if not pickles:
        raise ModelLoadError(f"No weights in {folder}: expected {expected}. Was the {what} saved "
                             "completely?", path=folder)


def _check_adapter_folder(spec: ModelSpec) -> Path:
    folder = Path(spec.adapter)
    if not (folder / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"Adapter folder {folder} has no adapter_config.json. Pass the folder that PEFT's "
            "save_pretrained() wrote.",
            path=folder,
        )
    _check_weight_files(folder, "adapter", "adapter_model.safetensors", spec.allow_pickle)
    return folder


def _load_config(folder: Path, spec: ModelSpec) -> Any:
    from transformers import AutoConfig

    raw = read_json(folder / "config.json")
    if raw.get("auto_map") and not spec.trust_remote_code:
        raise ModelLoadError(
            f"{folder / 'config.json'} asks for custom model code (auto_map), which would run code "
            "from the model folder. Set trust_remote_code = true in the ModelSpec only if you "
            "trust its source.",
            path=folder,
        )
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
    except (ValueError, KeyError, OSError) as exc:
        raise ModelLoadError(f"Cannot read {folder / 'config.json'}: {exc}", path=folder) from exc
    _apply_label_map(config, spec, folder)
    return config


def _apply_label_map(config: Any, spec: ModelSpec, folder: Path) -> None:
    if spec.label_map is not None:
        ids = sorted(spec.label_map)
        if ids != list(range(len(ids))):
            raise ConfigError(f"label_map keys must be the class ids 0..K-1; got {ids}.",
                              field="label_map")
        if not spec.override_id2label:
            _check_label_map_agrees(getattr(config, "id2label", None) or {}, spec.label_map, folder)
        config.id2label = {i: spec.label_map[i] for i in ids}
        config.label2id = {name: i for i, name in config.id2label.items()}
        config.num_labels = len(ids)
        return
    names = list(getattr(config, "id2label", {}).values())
    if not names or all(_DEFAULT_LABEL.match(str(n)) for n in names):
        raise ModelLoadError(
            f"{folder / 'config.json'} has no id2label label names, so predictions would come out "
            f"as raw {', '.join(map(str, names)) or 'LABEL_k'}. Add id2label to config.json, or "
            "add a [label_map] table (0 = \"negative\", ...) to the ModelSpec.",
            path=folder,
        )


def _check_label_map_agrees(id2label: dict[int, str], label_map: dict[int, str], folder: Path) -> None:
    """A label_map may name classes config.json leaves as LABEL_k, not rename named ones."""
    named = {int(i): str(name) for i, name in id2label.items() if not _DEFAULT_LABEL.match(str(name))}
    clashes = [i for i in sorted(named) if i in label_map and label_map[i] != named[i]]
    if not clashes:
        return
    first, others = clashes[0], len(clashes) - 1
    more = f" (and {others} more class{'es' if others > 1 else ''})" if others else ""
    raise ConfigError(
        f"label_map contradicts id2label in {folder / 'config.json'}: class {first} is {named[first]!r} "
        f"there but {label_map[first]!r} in label_map{more}; config.json id2label {_names(named)}, "
        f"label_map {_names(label_map)}. Remove label_map to use the model's names, or set "
        "override_id2label = true in the ModelSpec if config.json's names are wrong.",
        field="label_map",
    )


def _names(mapping: dict[int, str]) -> str:
    return "{" + ", ".join(f"{i}: {mapping[i]!r}" for i in sorted(mapping)) + "}"


# The classification head's output layer (shape [classes, hidden]) in common architectures.
_HEAD_OUTPUT_WEIGHTS = ("classifier.weight", "classifier.out_proj.weight", "classification_head.out_proj.weight",
                        "score.weight", "logits_proj.weight")


def _check_head_size(config: Any, spec: ModelSpec, model_folder: Path, adapter: Path | None) -> None:
    """One label name per output of the classification head (the adapter's head, if it
    carries one, else the model's), read from the safetensors headers before loading."""
    found = (_head_outputs(adapter) if adapter is not None else None) or _head_outputs(model_folder)
    names = len(config.id2label)
    if found is None or found[0] == names:
        return
    outputs, where = found
    if spec.label_map is not None:
        raise ConfigError(
            f"label_map has {names} names but the classification head has {outputs} outputs ({where}); "
            f"give label_map one name per output, class ids 0..{outputs - 1}.",
            field="label_map",
        )
    raise ModelLoadError(
        f"{model_folder / 'config.json'} id2label has {names} names but the classification head has "
        f"{outputs} outputs ({where}); fix id2label in config.json, or add a [label_map] table with "
        f"one name per output (0..{outputs - 1}) to the ModelSpec.",
        path=model_folder,
    )


def _head_outputs(folder: Path) -> tuple[int, str] | None:
    """(outputs, where) of the classification head in ``folder``'s safetensors files; None when
    they hold none (a bare encoder, pickle weights, an architecture with another head name)."""
    for weights in sorted(folder.glob("*.safetensors")):
        for key, entry in safetensors_header(weights).items():
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if (any(key == name or key.endswith(f".{name}") for name in _HEAD_OUTPUT_WEIGHTS)
                    and isinstance(shape, list) and len(shape) == 2):
                return int(shape[0]), f"{weights} has {key} of shape {shape}"
    return None


def _load_weights(folder: Path, config: Any, spec: ModelSpec, *, has_adapter: bool) -> Any:
    from transformers import AutoModelForSequenceClassification

    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            folder,
            config=config,
            dtype="float32",  # bfloat16 runs under autocast: see textgate.infer
            use_safetensors=not spec.allow_pickle or None,
            trust_remote_code=spec.trust_remote_code,
            output_loading_info=True,
        )
    except Exception as exc:  # transformers raises many types for broken folders
        raise ModelLoadError(
            f"Cannot load the weights in {folder}: {type(exc).__name__}: {exc}. The files may be "
            "corrupt, truncated or for another architecture; re-download or re-export them.",
            path=folder,
        ) from exc
    untrained_head = [k for k in info.get("missing_keys", ()) if _is_head_key(k)]
    if untrained_head and not has_adapter:
        raise ModelLoadError(
            f"{folder} has no trained classification head (missing {', '.join(sorted(untrained_head))}"
            "), so its outputs would be random. Pass a fine-tuned classifier, or the adapter that "
            "carries the head (adapter = ... in the ModelSpec).",
            path=folder,
        )
    return model


def _is_head_key(key: str) -> bool:
    return key.split(".")[0] in {"classifier", "score", "out_proj"} or ".classifier." in f".{key}"


def _apply_adapter(model: Any, adapter: Path, spec: ModelSpec) -> Any:
    from peft import PeftModel

    base_named = read_json(adapter / "adapter_config.json").get("base_model_name_or_path")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            peft_model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise _adapter_mismatch(adapter, base_named, spec, str(exc)) from exc
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
    if missing:
        raise _adapter_mismatch(adapter, base_named, spec, missing[0])
    return peft_model.merge_and_unload()


def _adapter_mismatch(adapter: Path, base_named: str | None, spec: ModelSpec, detail: str) -> ModelLoadError:
    detail = detail.strip().splitlines()[0][:300]
    return ModelLoadError(
        f"Adapter {adapter} does not fit base model {spec.model!r} (the adapter names "
        f"{base_named!r} as its base): {detail}. Use the base model the adapter was trained on.",
        path=adapter,
    )


def _load_tokenizer(folder: Path, spec: ModelSpec) -> Any:
    from transformers import AutoTokenizer

    # transformers 5 silently builds an empty-vocabulary tokenizer when these are missing.
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"Cannot load the tokenizer in {folder}: none of {', '.join(TOKENIZER_FILES)} is there. "
            "Save the tokenizer with the model (tokenizer.save_pretrained(folder)).",
            path=folder,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
    except Exception as exc:  # missing vocab, corrupt tokenizer.json, ...
        raise ModelLoadError(
            f"Cannot load the tokenizer in {folder}: {type(exc).__name__}: {exc}. The folder needs "
            "the tokenizer files that save_pretrained() writes (tokenizer.json or vocab files).",
            path=folder,
        ) from exc
    if not tokenizer.is_fast:
        raise ModelLoadError(f"The tokenizer in {folder} is a slow Python tokenizer; textgate "
                             "needs a fast one (tokenizer.json).", path=folder)
    return tokenizer


def _check_token_ids(tokenizer: Any, model: Any, folder: Path) -> None:
    """Every id the tokenizer can produce must index a row of the input embeddings (else
    inference fails with an IndexError on the first text that contains the token)."""
    rows = _embedding_rows(model)
    vocab = tokenizer.get_vocab()  # with the added tokens
    beyond = sorted((i, token) for token, i in vocab.items() if i >= rows)
    if not beyond:
        return
    top, token = beyond[-1]
    origin = _token_origin(folder, token)
    more = f" ({len(beyond)} tokens have ids >= {rows})" if len(beyond) > 1 else ""
    raise ModelLoadError(
        f"{origin} in {folder} gives token {token!r} id {top}, beyond the model's vocabulary: its input "
        f"embeddings have {rows} rows (config.json vocab_size {getattr(model.config, 'vocab_size', '?')}), so "
        f"ids must be below {rows}{more}. The tokenizer files do not match the weights: restore the "
        "tokenizer saved with this model, or resize the embeddings (resize_token_embeddings) and save "
        "model and tokenizer again.",
        path=folder / origin if (folder / origin).is_file() else folder,
    )


def _embedding_rows(model: Any) -> int:
    try:
        return int(model.get_input_embeddings().num_embeddings)
    except (AttributeError, NotImplementedError):
        return int(model.config.vocab_size)


def _token_origin(folder: Path, token: str) -> str:
    """The tokenizer file that declares ``token``: an added-token list, else the vocabulary."""
    for name in ("added_tokens.json", "tokenizer_config.json", "tokenizer.json"):
        if (folder / name).is_file() and token in _added_tokens(name, read_json(folder / name)):
            return name
    return next((name for name in TOKENIZER_FILES if (folder / name).is_file()), "the tokenizer")


def _added_tokens(name: str, table: dict[str, Any]) -> list[str]:
    """The added tokens a tokenizer file lists (added_tokens.json: token -> id)."""
    if name == "added_tokens.json":
        return [str(token) for token in table]
    entries = (table.get("added_tokens_decoder") or {}).values() if name == "tokenizer_config.json" \
        else table.get("added_tokens") or ()
    return [str(entry.get("content")) for entry in entries if isinstance(entry, dict)]


def effective_max_length(spec: ModelSpec, tokenizer: Any, config: Any) -> int:
    """The token limit inference uses: ``spec.max_length``, else min(the tokenizer's
    ``model_max_length``, the model's position embeddings)."""
    positions = getattr(config, "max_position_embeddings", None) or 512
    limit = min(int(tokenizer.model_max_length), positions) if tokenizer.model_max_length else positions
    if spec.max_length is None:
        return limit
    if spec.max_length > positions:
        raise ConfigError(f"max_length {spec.max_length} exceeds the model's "
                          f"{positions} position embeddings; use at most {positions}.",
                          field="max_length")
    return spec.max_length


def _fingerprint(weights_sha: str, spec: ModelSpec, *, temperature: float | None = None) -> str:
    """Weights plus every setting that changes outputs (not where the files live). With a
    calibration file its ``temperature`` changes outputs; the file's path does not. Without
    ``temperature``: the fingerprint of the model without calibration."""
    settings = spec.settings()
    # Not outputs: where the files are, and override_id2label (label_map's names are in it).
    for location in ("model", "adapter", "revision", "lock", "calibration", "override_id2label"):
        settings.pop(location)
    if temperature is not None:
        settings["temperature"] = temperature
    payload = json.dumps({"weights": weights_sha, "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _read_calibration(spec: ModelSpec, weights_sha: str) -> CalibrationFile | None:
    """``spec.calibration`` read and checked to be fitted for this very model (the fingerprint
    of the spec without calibration); None without one. The label names are checked at loading."""
    if spec.calibration is None:
        return None
    return read_calibration_file(spec.calibration, model_fingerprint=_fingerprint(weights_sha, spec))
