"""textgate.lock: lock, verify (each planted change named precisely), enforcement, license, pull."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DEMO, LABELS, write_tiny_classifier

from textgate._internal.toml import dump_toml
from textgate.cli import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, main
from textgate.errors import ConfigError, DataError, LicenseRefused, ModelLoadError
from textgate.lock import (
    PROBES,
    LockedCanary,
    allowlist,
    build_lock,
    read_lock,
    require_allowed_licenses,
    verify_lock,
    write_lock,
)
from textgate.lock.verify import _compare_canary
from textgate.model import ModelSpec, load_classifier, load_model_spec


def _write_model(folder: Path) -> Path:
    """A tiny classifier whose tokenizer knows its vocabulary (built from a vocab dict, so that
    lower-casing and truncation visibly change token ids)."""
    from transformers import BertTokenizerFast

    write_tiny_classifier(folder)
    vocab = (folder / "vocab.txt").read_text().split()
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def locked_base(tmp_path_factory) -> Path:
    """base/model + base/textgate.lock (paths in the lock relative to it), made once."""
    base = tmp_path_factory.mktemp("locked")
    _write_model(base / "model")
    lock = build_lock(ModelSpec(model=str(base / "model")), lock_dir=base)
    write_lock(lock, base / "textgate.lock")
    return base


@pytest.fixture
def locked(locked_base, tmp_path) -> Path:
    """A private copy of the locked model that a test may change; returns the lock path."""
    shutil.copytree(locked_base, tmp_path / "copy")
    return tmp_path / "copy" / "textgate.lock"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def verify_json(capsys, *argv):
    code, out, err = run(capsys, "verify", *argv, "--format", "json")
    assert code in (EXIT_OK, EXIT_GATE_FAILED), err
    report = json.loads(out)
    assert report["exit_code"] == code
    return code, {s["name"]: s for s in report["sections"]}, report


def keys(section) -> list[str]:
    return [change["key"] for change in section["changes"]]


def flip_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_lock_records_every_section_and_reads_back(locked_base):
    lock = read_lock(locked_base / "textgate.lock")
    raw = tomllib.loads((locked_base / "textgate.lock").read_text())
    assert raw["lock_version"] == 1 and raw["model"]["spec"]["model"] == "model"  # relative to the lock
    assert set(lock.files) == {"model/config.json", "model/model.safetensors", "model/tokenizer.json",
                               "model/tokenizer_config.json", "model/vocab.txt"}
    assert all(len(sha) == 64 for sha in lock.files.values())
    assert [name for name, _ in PROBES] == list(lock.tokenizer["probes"])
    assert lock.tokenizer["do_lower_case"] is True and lock.tokenizer["truncation_side"] == "right"
    assert lock.tokenizer["probes"]["uppercase"] == lock.tokenizer["probes"]["plain"][:1] + [26, 49, 6, 8, 3]
    assert lock.labels.label_names == list(LABELS) and lock.labels.config_id2label["2"] == "positive"
    assert lock.settings["padding"] == "longest" and lock.settings["effective_max_length"] == 64
    assert set(lock.versions) == {"python", "torch", "transformers", "tokenizers", "peft", "textgate"}
    assert lock.license.model == "unknown"
    assert lock.canary.texts == len(lock.canary.rows) == 200
    assert all(row[0] in LABELS and abs(sum(row[1:]) - 1) < 1e-3 for row in lock.canary.rows)


def test_verify_unchanged_model_exits_0(capsys, locked):
    code, out, err = run(capsys, "verify", locked)
    assert code == EXIT_OK, err
    assert "verdict: unchanged (exit 0)" in out and "canary     ok: 200 texts, 0 label flips" in out
    assert "loading local folder" in err and "canary: 200 texts" in err


def test_one_flipped_byte_in_the_weights_is_named(capsys, locked):
    flip_byte(locked.parent / "model" / "model.safetensors")
    code, sections, report = verify_json(capsys, locked)
    assert code == EXIT_GATE_FAILED
    assert keys(sections["files"]) == ["model/model.safetensors"]
    assert sections["files"]["behaviour_change"] and report["verdict"].startswith("behaviour changed: files")
    for name in ("tokenizer", "labels", "settings", "license", "versions"):
        assert sections[name]["status"] == "same", name


@pytest.mark.parametrize(("change", "tokenizer_keys", "first_probe", "settings_keys"), [
    ({"model_max_length": 16}, ["model_max_length", "probe_limit"], "probe elongated", ["effective_max_length"]),
    ({"do_lower_case": False}, ["do_lower_case"], "probe uppercase", []),
    ({"truncation_side": "left"}, ["truncation_side"], "probe long", []),
])
def test_changed_tokenizer_config_is_named_with_the_first_differing_probe(
        capsys, locked, change, tokenizer_keys, first_probe, settings_keys):
    path = locked.parent / "model" / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    code, sections, _ = verify_json(capsys, locked)
    assert code == EXIT_GATE_FAILED
    assert keys(sections["files"]) == ["model/tokenizer_config.json"]
    tokenizer_changes = keys(sections["tokenizer"])
    assert tokenizer_changes[:-1] == tokenizer_keys and tokenizer_changes[-1] == first_probe
    assert "first differing probe" in sections["tokenizer"]["changes"][-1]["note"]
    assert keys(sections["settings"]) == settings_keys
    assert sections["labels"]["status"] == "same"


def test_default_label_k_id2label_is_a_label_change_not_a_crash(capsys, locked):
    path = locked.parent / "model" / "config.json"
    config = json.loads(path.read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(3)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(3)}
    path.write_text(json.dumps(config))
    code, sections, report = verify_json(capsys, locked)
    assert code == EXIT_GATE_FAILED
    assert keys(sections["files"]) == ["model/config.json"]
    assert keys(sections["labels"]) == ["config.json id2label", "label_names"]
    assert sections["labels"]["changes"][1]["current"] == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert sections["canary"]["status"] == "not checked" and "does not load" in sections["canary"]["summary"]
    assert "id2label" in report["load_error"]


def test_postmortem_inference_settings_are_named(capsys, locked, tmp_path):
    spec = tmp_path / "postmortem.toml"
    spec.write_text(f'model = "{locked.parent / "model"}"\npadding = "max_length"\nmax_length = 20\n')
    code, sections, _ = verify_json(capsys, locked, spec)
    assert code == EXIT_GATE_FAILED
    assert keys(sections["settings"]) == ["padding", "max_length", "effective_max_length"]
    assert sections["settings"]["changes"][0] == {"key": "padding", "locked": "longest", "current": "max_length",
                                                  "note": ""}
    assert sections["files"]["status"] == sections["tokenizer"]["status"] == "same"


def test_other_library_versions_with_identical_behaviour_exit_0_with_a_report(capsys, locked):
    text = locked.read_text()
    locked.write_text(text.replace('transformers = "', 'transformers = "4.0.0-was-', 1))
    code, out, _ = run(capsys, "verify", locked)
    assert code == EXIT_OK
    assert "versions   changed (reported only)" in out and "transformers: 4.0.0-was-" in out
    assert "verdict: behaviour unchanged; versions changed (reported only) (exit 0)" in out


def test_loading_enforces_the_lock(locked):
    spec = ModelSpec(model=str(locked.parent / "model"), lock=str(locked))
    assert load_classifier(spec).label_names == LABELS
    flip_byte(locked.parent / "model" / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"File model/model\.safetensors \(.*model\.safetensors\) has sha256 "
                                             r"\w+\.\.\. but the lock records \w+\.\.\..*textgate lock"):
        load_classifier(spec)


def test_lock_field_of_a_spec_file_is_relative_to_it(locked):
    (locked.parent / "model.toml").write_text('model = "model"\nlock = "textgate.lock"\n')
    (locked.parent / "model" / "vocab.txt").write_text("tampered\n")
    with pytest.raises(ModelLoadError, match="File model/vocab.txt"):
        load_classifier(load_model_spec(locked.parent / "model.toml"))


def test_license_from_the_model_card_and_the_allowlist(capsys, tiny_model_copy, tmp_path):
    (tiny_model_copy / "README.md").write_text("---\nlanguage: en\nlicense: MIT\n---\n# a model\n")
    out = tmp_path / "textgate.lock"
    code, _, err = run(capsys, "lock", tiny_model_copy, "--out", out, "--allow-license", "apache-2.0")
    assert code == EXIT_GATE_FAILED and not out.exists()
    assert "the model's license is 'mit'" in err and "not written" in err
    code, _, err = run(capsys, "lock", tiny_model_copy, "--out", out, "--allow-license", "mit")
    assert code == EXIT_OK, err
    lock = read_lock(out)
    assert (lock.license.model, lock.license.allowed) == ("mit", ["mit"])
    (tiny_model_copy / "README.md").write_text("# no front matter\n")  # not a hashed file: only the license changes
    code, sections, _ = verify_json(capsys, out)
    assert code == EXIT_GATE_FAILED
    assert sections["license"]["status"] == "failed" and "has no license: field" in sections["license"]["summary"]
    assert sections["license"]["changes"][0] == {"key": "model", "locked": "mit", "current": "unknown", "note": ""}
    code, sections, _ = verify_json(capsys, out, "--allow-license", "unknown")
    assert code == EXIT_GATE_FAILED and sections["license"]["status"] == "changed"


def test_license_policy_refuses_before_any_work_and_says_the_fix(tiny_model_copy):
    (tiny_model_copy / "README.md").write_text("---\nlicense: MIT\n---\n")
    spec = ModelSpec(model=str(tiny_model_copy))
    assert allowlist([" MIT", "mit", "Apache-2.0"]) == ("apache-2.0", "mit") and allowlist([]) is None
    require_allowed_licenses(spec, None, refused="x not written")  # no allowlist: no check
    require_allowed_licenses(spec, [" Mit "], refused="x not written")
    with pytest.raises(LicenseRefused) as caught:
        require_allowed_licenses(spec, ["apache-2.0", "unknown"], refused="x not written")
    refusal = caught.value
    assert refusal.failures == (f"the model's license is 'mit' (license: in {tiny_model_copy / 'README.md'}), "
                                "not one of ['apache-2.0', 'unknown']",)
    assert refusal.lines() == [f"license check failed: {refusal.failures[0]}",
                               "x not written; pass --allow-license for each accepted license ('unknown' "
                               "accepts a missing one)"]
    assert str(refusal) == "\n".join(refusal.lines())


def test_user_canary_file_and_a_changed_canary_is_an_error(capsys, tiny_model_dir, tmp_path):
    canary = tmp_path / "canary.csv"
    canary.write_text("id,tweet\n1,i love this lol\n2,awful day\n3,meh\n")
    out = tmp_path / "locks" / "textgate.lock"
    code, _, err = run(capsys, "lock", tiny_model_dir, "--canary", canary, "--text-col", "tweet", "--out", out)
    assert code == EXIT_OK, err
    lock = read_lock(out)
    assert (lock.canary.source, lock.canary.text_col, lock.canary.texts) == ("../canary.csv", "tweet", 3)
    canary.write_text("id,tweet\n1,i love this lol\n2,awful day\n3,meh!\n")
    code, _, err = run(capsys, "verify", out)
    assert code == EXIT_USAGE and "are not the ones" in err and "re-create the lock" in err
    with pytest.raises(DataError):
        verify_lock(out)


def _fake_predictions(rows):
    probabilities = np.array([row[1:] for row in rows], dtype=np.float32)
    return SimpleNamespace(label_names=LABELS, probabilities=probabilities,
                           predicted=np.array([LABELS[i] for i in probabilities.argmax(axis=1)], dtype=object))


@pytest.mark.parametrize(("now", "flips", "near_tie", "changed"), [
    ([0.1, 0.4999, 0.4001], 0, None, False),  # within tolerance
    ([0.1, 0.4995, 0.5005], 1, True, False),  # near tie: locked margin 0.0002 <= 2 x tolerance
    ([0.1, 0.497, 0.403], 0, None, True),  # moved by 0.003 > tolerance, no flip
])
def test_canary_tolerance_and_near_ties(now, flips, near_tie, changed):
    locked_rows = [["negative", 0.9, 0.05, 0.05], ["neutral", 0.1, 0.5, 0.4]]
    if near_tie:
        locked_rows[1] = ["neutral", 0.1, 0.5001, 0.4999]
    locked = LockedCanary(source="bundled", texts=2, texts_sha256="x", decimals=4, tolerance=1e-3, digest="x",
                          rows=locked_rows)
    result = _compare_canary(locked, _fake_predictions([locked_rows[0], ["", *now]]), ["a", "b"], LABELS)
    assert len(result.flips) == flips and result.changed is changed
    if flips:
        assert result.flips[0].near_tie is near_tie and "(+1 on near ties)" in result.summary()


def test_a_real_flip_counts(capsys):
    locked = LockedCanary(source="bundled", texts=1, texts_sha256="x", decimals=4, tolerance=1e-3, digest="x",
                          rows=[["neutral", 0.1, 0.6, 0.3]])
    result = _compare_canary(locked, _fake_predictions([["", 0.1, 0.3, 0.6]]), ["b"], LABELS)
    assert result.changed and not result.flips[0].near_tie and result.max_abs_delta == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda rows: rows[:-1], r"must hold one row per canary text, 200 \(canary.texts\).* \(got 199\)"),
    (lambda rows: [rows[0][:-1], *rows[1:]], r"row 1 has 3 values, but the lock's 3 labels .* need 4: .* \(got \["),
], ids=["count", "width"])
def test_canary_rows_that_do_not_match_texts_and_labels_name_the_field(locked, edit, message):
    raw = tomllib.loads(locked.read_text())
    raw["canary"]["rows"] = edit(raw["canary"]["rows"])
    locked.write_text(dump_toml(raw))
    with pytest.raises(ConfigError, match=rf"Field 'canary.rows' in .*textgate.lock: {message}") as info:
        read_lock(locked)
    assert info.value.field == "canary.rows"


REMOTE_CODE = """import os

from transformers import BertForSequenceClassification


class RemoteBert(BertForSequenceClassification):
    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        if os.environ.get("TEXTGATE_TEST_BACKDOOR"):  # BACKDOOR
            out.logits = -out.logits
        return out
"""


def test_edited_remote_code_is_a_behaviour_change_and_is_refused_under_the_lock(capsys, tmp_path):
    """The canary cannot see a backdoor that its texts do not trigger; the file hash does."""
    model = _write_model(tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_remote.RemoteBert"}
    (model / "config.json").write_text(json.dumps(config))
    code_file = model / "modeling_remote.py"
    code_file.write_text(REMOTE_CODE.replace("  # BACKDOOR", "").replace(
        'os.environ.get("TEXTGATE_TEST_BACKDOOR")', "False"))
    (tmp_path / "model.toml").write_text('model = "model"\ntrust_remote_code = true\n')
    lock = tmp_path / "textgate.lock"
    code, _, err = run(capsys, "lock", tmp_path / "model.toml", "--out", lock)
    assert code == EXIT_OK, err
    assert "model/modeling_remote.py" in read_lock(lock).files
    assert type(load_classifier(load_model_spec(tmp_path / "model.toml")).model).__name__ == "RemoteBert"
    code_file.write_text(REMOTE_CODE)
    code, sections, report = verify_json(capsys, lock)
    assert code == EXIT_GATE_FAILED and report["verdict"] == "behaviour changed: files"
    assert keys(sections["files"]) == ["model/modeling_remote.py"]
    assert sections["files"]["changes"][0]["note"] == "contents changed"
    assert sections["canary"]["status"] == "same"  # the backdoor is not triggered by the canary texts
    (tmp_path / "model.toml").write_text('model = "model"\ntrust_remote_code = true\nlock = "textgate.lock"\n')
    with pytest.raises(ModelLoadError, match=r"File model/modeling_remote\.py .* has sha256"):
        load_classifier(load_model_spec(tmp_path / "model.toml"))


def test_added_token_beyond_the_vocabulary_is_reported_not_a_crash(capsys, locked):
    # Canary texts contain "@user", which gets an id beyond the embeddings (the last of these
    # tokens: the first fill unused rows): running them would fail with an IndexError.
    added = {"zorblax": 5000, "quux": 5001, "wibble": 5002, "frob": 5003, "@user": 5004}
    (locked.parent / "model" / "added_tokens.json").write_text(json.dumps(added))
    code, sections, report = verify_json(capsys, locked)
    assert code == EXIT_GATE_FAILED
    change = sections["files"]["changes"][0]
    assert keys(sections["files"]) == ["model/added_tokens.json"] and change["locked"] == "(absent)"
    assert change["note"] == "has been added; the lock has no such file"
    assert "added_tokens.json" in report["load_error"] and "beyond the model's vocabulary" in report["load_error"]
    assert sections["canary"]["status"] == sections["tokenizer"]["status"] == "not checked"


def test_pull_copies_verifies_and_enforces(capsys, locked_base, tmp_path):
    model = locked_base / "model"
    (tmp_path / "adapterless.toml").write_text(f'model = "{model}"\nmax_length = 32\n')
    dest = tmp_path / "deploy"
    code, out, err = run(capsys, "pull", tmp_path / "adapterless.toml", "--to", dest)
    assert code == EXIT_OK, err
    assert out.strip() == str(dest / "model.toml") and "copies match the source" in err
    code, out, err = run(capsys, "pull", tmp_path / "adapterless.toml", "--to", tmp_path / "again", "--format", "json")
    assert code == EXIT_OK, err
    pulled = json.loads(out)
    assert (pulled["schema_version"], pulled["kind"], pulled["spec"]) == (1, "textgate.pull",
                                                                          str(tmp_path / "again" / "model.toml"))
    assert pulled["files"] > 0 and pulled["bytes"] > 0 and pulled["lock"] == str(tmp_path / "again" / "textgate.lock")
    spec = load_model_spec(dest / "model.toml")
    assert spec.lock == str((dest / "textgate.lock").resolve()) and spec.max_length == 32
    assert Path(spec.model) == (dest / "model").resolve()
    assert read_lock(dest / "textgate.lock").files == read_lock(locked_base / "textgate.lock").files
    assert run(capsys, "verify", dest / "textgate.lock")[0] == EXIT_OK
    flip_byte(dest / "model" / "model.safetensors")
    with pytest.raises(ModelLoadError, match="model/model.safetensors"):
        load_classifier(spec)
    code, _, err = run(capsys, "pull", model, "--to", dest)
    assert code == EXIT_USAGE and "is not empty" in err and "--force" in err
    (dest / "keep.txt").write_text("mine")
    assert run(capsys, "pull", model, "--to", dest, "--force")[0] == EXIT_OK
    assert (dest / "keep.txt").read_text() == "mine" and load_classifier(load_model_spec(dest / "model.toml"))


def test_pull_of_an_uncached_hub_id_says_so(capsys, tmp_path):
    code, _, err = run(capsys, "pull", "textgate-tests/not-a-cached-model", "--to", tmp_path / "out")
    assert code == EXIT_USAGE
    assert "not in the local cache" in err and not (tmp_path / "out").exists()


def test_toml_writer_round_trips():
    document = {"a": 1, "b": "quote \" back\\slash \u00e9 \U0001F602 del\x7f tab\t", "c": [1.5, True, "x"],
                "empty": {}, "t": {"dotted.key": "v", "0": "zero", "inner": {"x": [[1, "y"], [2, "z"]]}}}
    assert tomllib.loads(dump_toml(document)) == document


@pytest.mark.slow
def test_demo_lock_verifies(capsys):
    """The committed lock of the demo classifier holds on this machine (run by `make test`)."""
    code, out, err = run(capsys, "verify", DEMO / "textgate.lock")
    assert code == EXIT_OK, out + err
    assert "files      ok: 13 files" in out and "license    ok: model apache-2.0, adapter unknown" in out


def test_lock_format_json_summarises_the_lock_written(capsys, locked_base, tmp_path):
    out = tmp_path / "again.lock"
    code, stdout, err = run(capsys, "lock", locked_base / "model", "--out", out, "--format", "json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["kind"] == "textgate.lock" and summary["schema_version"] == 1
    assert summary["out"] == str(out) and out.is_file()
    assert summary["files"] == sorted(tomllib.loads(out.read_text())["files"])
    assert summary["canary"]["texts"] > 0 and summary["tokenizer_probes"] > 0
