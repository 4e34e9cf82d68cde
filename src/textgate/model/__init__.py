"""The model: a ModelSpec -> a loaded classifier, safely. Start at ``load.py``.

- ``spec.py``: ModelSpec, and how a MODEL argument is read (file, package, folder, Hub id);
- ``load.py``: safe loading (``load_classifier``, ``identify_model``) and the fingerprint;
- ``files.py``: which files of a model folder decide outputs, and their hashes;
- ``runtime.py``: the engine's contract with whatever runs the model (token ids -> logits);
- ``lock_file.py``, ``calibration_file.py``: the two files a ModelSpec may name, read here at
  load time (``textgate.lock`` and ``textgate.calibrate`` write them).

This package imports no capability; it is the only one that imports transformers and peft.
"""

from textgate.model.files import file_sha256, is_pinned_file, model_files, read_json
from textgate.model.load import (
    Classifier,
    ModelIdentity,
    effective_max_length,
    identify_model,
    load_classifier,
    model_label_names,
)
from textgate.model.runtime import Runtime
from textgate.model.spec import (
    ModelSource,
    ModelSpec,
    load_model_spec,
    model_spec_from_table,
    resolve_model_argument,
    resolve_source,
)

__all__ = [
    "Classifier",
    "ModelIdentity",
    "ModelSource",
    "ModelSpec",
    "Runtime",
    "effective_max_length",
    "file_sha256",
    "identify_model",
    "is_pinned_file",
    "load_classifier",
    "load_model_spec",
    "model_files",
    "model_label_names",
    "model_spec_from_table",
    "read_json",
    "resolve_model_argument",
    "resolve_source",
]
