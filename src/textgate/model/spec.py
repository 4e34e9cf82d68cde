"""ModelSpec and MODEL resolution.

A MODEL argument is resolved in this fixed order (the first reading that applies wins, and
the CLI prints which one was used):

1. a path to an existing ``.toml`` file: a ModelSpec file (relative paths inside it are
   relative to the file);
2. ``pkg:PACKAGE/SUB/FOLDER``: a folder inside an installed Python package;
3. a path to an existing folder: a local Hugging Face model folder;
4. a Hugging Face Hub id (``org/name``): fetched or read from the local cache through
   huggingface_hub, with the resolved commit recorded.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from textgate._internal.toml import read_toml, validate_table
from textgate.errors import ConfigError, ModelLoadError
from textgate.model.files import PICKLE_WEIGHT_NAMES, UNPINNED_NAMES, UNPINNED_SUFFIXES

__all__ = [
    "ModelSource",
    "ModelSpec",
    "load_model_spec",
    "model_spec_from_table",
    "resolve_model_argument",
    "resolve_source",
]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelSpec(BaseModel):
    """How production runs a classifier: weights, revision, adapter, precision, tokenizer settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="local folder, 'pkg:package/folder', or Hub id")
    revision: str | None = Field(None, description="Hub branch, tag or commit (Hub ids only)")
    adapter: str | None = Field(None, description="PEFT adapter folder applied on top of model")
    dtype: Literal["float32", "bfloat16"] = "float32"
    max_length: StrictInt | None = Field(None, ge=1, description="token limit; default: the model's")
    padding: Literal["longest", "max_length"] = "longest"
    truncation: StrictBool = True
    label_map: dict[int, str] | None = Field(None, description="class id -> label name")
    override_id2label: StrictBool = Field(
        False, description="let label_map rename classes that config.json's id2label already names")
    allow_pickle: StrictBool = False
    trust_remote_code: StrictBool = False
    calibration: str | None = Field(
        None, description="calibration TOML written by `textgate calibrate` (temperature applied to logits)")
    lock: str | None = Field(None, description="textgate.lock file; loading refuses files whose hashes differ")

    def settings(self) -> dict[str, Any]:
        """The spec as plain JSON values, for records and reports."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class ModelSource:
    """Where a model string was found: how it was read and the folder it resolved to."""

    reading: Literal["package", "folder", "hub"]
    path: Path
    revision: str | None = None  # resolved commit for Hub ids

    def describe(self) -> str:
        if self.reading == "hub":
            return f"Hub model at commit {self.revision} (cached in {self.path})"
        return f"{'package folder' if self.reading == 'package' else 'local folder'} {self.path}"


def load_model_spec(path: Path | str) -> ModelSpec:
    """Read a ModelSpec TOML file; relative local paths in it are made relative to the file."""
    path = Path(path)
    return model_spec_from_table(read_toml(path, what="ModelSpec file"), base=path.parent, origin=str(path))


def model_spec_from_table(raw: dict[str, Any], *, base: Path, origin: str | Path, prefix: str = "",
                          defaults: ModelSpec | None = None) -> ModelSpec:
    """Validate a ModelSpec table read from a file in ``base`` (a spec file, a lock file, a gate
    file's side); relative local paths in it are made relative to ``base``. ``raw``'s keys
    override those of ``defaults`` (a ModelSpec already read from its own file, paths already
    resolved there), so only ``raw``'s own paths are resolved against ``base``. ``prefix`` is
    the table's name in error messages ("Field 'candidate.dtype' in gate.toml: ...")."""
    merged = {**defaults.model_dump(), **raw} if defaults is not None else raw
    spec = validate_table(ModelSpec, merged, origin=origin, prefix=prefix)
    return spec.model_copy(update={k: v for k, v in _relative_paths(spec, base).items() if k in raw})


def _validate_spec(raw: dict[str, Any], *, origin: str) -> ModelSpec:
    return validate_table(ModelSpec, raw, origin=origin)


def _relative_paths(spec: ModelSpec, base: Path) -> dict[str, str]:
    updates = {}
    for field in ("adapter", "calibration", "lock"):
        value = getattr(spec, field)
        if value and not Path(value).is_absolute():
            updates[field] = str((base / value).resolve())
    local = base / spec.model
    if not spec.model.startswith("pkg:") and not Path(spec.model).is_absolute() and local.exists():
        updates["model"] = str(local.resolve())
    return updates


def resolve_model_argument(argument: str, **overrides: Any) -> tuple[ModelSpec, str]:
    """Turn a CLI MODEL argument into a ModelSpec, and say which reading was used."""
    path = Path(argument)
    if argument.endswith(".toml"):
        if not path.is_file():
            raise ConfigError(f"MODEL {argument!r} looks like a ModelSpec file but does not exist.",
                              field="MODEL", path=argument)
        spec = load_model_spec(path)
        reading = f"ModelSpec file {path}"
    else:
        spec = _validate_spec({"model": argument}, origin="MODEL")
        reading = f"model {argument!r}"
    if overrides := {k: v for k, v in overrides.items() if v is not None}:
        spec = _validate_spec({**spec.model_dump(), **overrides}, origin="command-line options")
    return spec, reading


def resolve_source(spec: ModelSpec) -> ModelSource:
    """Find the folder holding the model's files (see the module docstring for the order)."""
    name = spec.model
    if name.startswith("pkg:"):
        return ModelSource("package", _package_folder(name))
    if Path(name).is_dir():
        return ModelSource("folder", Path(name).resolve())
    if _HUB_ID.match(name) and not Path(name).exists():
        return _hub_snapshot(name, spec.revision, allow_pickle=spec.allow_pickle)
    raise ModelLoadError(
        f"Cannot read model {name!r}: it is not a ModelSpec .toml file, not 'pkg:PACKAGE/FOLDER', "
        "not an existing folder, and not a Hub id of the form 'org/name'. Pass a folder that "
        "holds config.json and the weights, or a Hub id.",
        path=name,
    )


def _package_folder(name: str) -> Path:
    package, _, inner = name.removeprefix("pkg:").partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or found.origin is None:
        raise ModelLoadError(
            f"Model {name!r} names Python package {package!r}, which is not installed; install it "
            f"(e.g. pip install {package.replace('_', '-')}) or pass a folder.",
            path=name,
        )
    folder = Path(found.origin).parent / inner
    if not folder.is_dir():
        raise ModelLoadError(f"Model {name!r}: package {package!r} has no folder {inner!r} "
                             f"(looked in {folder}).", path=name)
    return folder


def _hub_snapshot(repo_id: str, revision: str | None, *, allow_pickle: bool) -> ModelSource:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision,
                                        ignore_patterns=_hub_ignore_patterns(allow_pickle)))
    except LocalEntryNotFoundError as exc:
        raise ModelLoadError(
            f"Hub model {repo_id!r} (revision {revision or 'main'}) is not in the local cache and "
            "the Hub cannot be reached (offline?). Download it once where the Hub is reachable, "
            "or pass a local folder.",
            path=repo_id,
        ) from exc
    except HfHubHTTPError as exc:
        raise ModelLoadError(f"Hub model {repo_id!r}: {exc}", path=repo_id) from exc
    # The snapshot folder is named after the commit the revision resolved to.
    return ModelSource("hub", folder, revision=folder.name)


def _hub_ignore_patterns(allow_pickle: bool) -> list[str]:
    """Every file a lock would pin is fetched (the loader may read any of them); not the
    unpinned ones, and pickle files only when allowed."""
    names = [".*", *UNPINNED_NAMES]  # fnmatch: "*" also matches "/"
    patterns = [pattern for name in names for pattern in (name, f"*/{name}", f"{name}/*", f"*/{name}/*")]
    patterns += [f"*{suffix}" for suffix in UNPINNED_SUFFIXES]
    return patterns + ([] if allow_pickle else sorted({f"*{Path(name).suffix}" for name in PICKLE_WEIGHT_NAMES}))
