"""The CLI end to end on a tiny model: outputs, files, exit codes and one-line errors."""

from __future__ import annotations

import json
import os

import pytest
from conftest import LABELS

from textgate import errors
from textgate.cli import (
    EXIT_GATE_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    main,
)

TEXTS = ["i love this lol", "awful day", "okay film", "omg so bad", "great game", "meh", "sad night",
         "happy new phone", "the old movie", "not good tbh"]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [{"text": t, "label": LABELS[i % 3], "source": "a" if i < 5 else "b"} for i, t in enumerate(TEXTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_model_writes_reports_and_prints_tables(capsys, tiny_model_dir, data_file, tmp_path):
    code, out, err = run(capsys, "eval", str(tiny_model_dir), str(data_file), "--slice", "slang=\\b(lol|omg|tbh)\\b",
                         "--out-dir", str(tmp_path / "reports"))
    assert code == EXIT_OK, err
    assert "Per class" in out and "Confusion matrix" in out and "slang" in out
    assert "model: model" in err and "local folder" in err  # says which reading of MODEL was used
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["schema_version"] == 1 and report["kind"] == "textgate.eval"
    assert report["slices"][0]["name"] == "slang" and report["slices"][0]["size"] == 3
    assert report["latency"]["examples"] == len(TEXTS)
    assert report["calibration"]["ece_equal_width"]["estimator"].startswith("top-label ECE, 15 equal-width")
    assert "# textgate eval" in (tmp_path / "reports" / "report.md").read_text()


def test_predict_then_eval_the_file_gives_the_same_report(capsys, tiny_model_dir, data_file, tmp_path):
    preds = tmp_path / "preds.parquet"
    code, _, err = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(preds))
    assert code == EXIT_OK, err
    code, direct, _ = run(capsys, "eval", str(tiny_model_dir), str(data_file), "--format", "json")
    code2, saved, err = run(capsys, "eval", "--predictions", str(preds), str(data_file), "--format", "json")
    assert code == code2 == EXIT_OK, err
    assert json.loads(direct)["metrics"] == json.loads(saved)["metrics"]
    assert json.loads(saved)["calibration"] == json.loads(direct)["calibration"]


def test_eval_foreign_label_file_counts_invalid_labels(capsys, data_file, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["negative", "1", "positive", "LABEL_2", "negative", "neutral", "2", "0",
                                 "LABEL_2", "neutral"]) + "\n")
    code, out, err = run(capsys, "eval", "--predictions", str(labels), str(data_file), "--format", "json")
    assert code == EXIT_OK, err
    report = json.loads(out)
    assert report["metrics"]["invalid"] == {"count": 2, "rate": 0.2, "values": [["LABEL_2", 2]]}
    assert report["calibration"] is None and report["latency"] is None
    assert any("no probabilities" in note for note in report["notes"])


def test_eval_foreign_csv_prediction_column(capsys, data_file, tmp_path):
    csv = tmp_path / "preds.csv"
    csv.write_text("prediction\n" + "\n".join(LABELS[i % 3] for i in range(len(TEXTS))) + "\n")
    code, out, err = run(capsys, "eval", "--predictions", str(csv), str(data_file), "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["metrics"]["accuracy"] == 1.0


def test_slices_from_a_toml_file(capsys, tiny_model_dir, data_file, tmp_path):
    slices = tmp_path / "slices.toml"
    slices.write_text('[[slice]]\nname = "second half"\ncolumn = "source"\nequals = "b"\n')
    code, out, err = run(capsys, "eval", str(tiny_model_dir), str(data_file), "--slices", str(slices),
                         "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["slices"][0]["size"] == 5


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda m, d, t: ["eval", str(d)], "Pass MODEL and DATA"),
        (lambda m, d, t: ["eval", str(m), str(t / "missing.jsonl")], "missing.jsonl"),
        (lambda m, d, t: ["eval", str(m), str(d), "--text-col", "body"], "--text-col"),
        (lambda m, d, t: ["eval", str(m), str(d), "--slice", "bad=("], "bad"),
        (lambda m, d, t: ["eval", str(m), str(d), "--slice", "noequals"], "noequals"),
        (lambda m, d, t: ["eval", str(t / "nope")], "Pass MODEL and DATA"),
        (lambda m, d, t: ["eval", "not a model", str(d)], "not an existing folder"),
        (lambda m, d, t: ["eval", str(m), str(d), "--dtype", "fp8"], "fp8"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tiny_model_dir, data_file, tmp_path, make_args, message):
    code, _, err = run(capsys, *make_args(tiny_model_dir, data_file, tmp_path))
    assert code == EXIT_USAGE
    assert message in err
    assert "Traceback" not in err


def test_unknown_labels_are_listed(capsys, tiny_model_dir, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,label\nhello,negative\nbye,angry\nhi,angry\nyo,pos\n")
    code, _, err = run(capsys, "eval", str(tiny_model_dir), str(data))
    assert code == EXIT_USAGE
    assert "angry" in err and "pos" in err and "negative, neutral, positive" in err


def test_predictions_for_other_texts_are_refused(capsys, tiny_model_dir, data_file, tmp_path):
    preds = tmp_path / "preds.parquet"
    assert run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(preds))[0] == EXIT_OK
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": t + "!", "label": "neutral"}) + "\n" for t in TEXTS))
    code, _, err = run(capsys, "eval", "--predictions", str(preds), str(other))
    assert code == EXIT_USAGE and "made on other texts" in err
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"text": "hi", "label": "neutral"}) + "\n")
    code, _, err = run(capsys, "eval", "--predictions", str(preds), str(short))
    assert code == EXIT_USAGE and "10 rows but" in err


def test_help_and_version(capsys):
    assert run(capsys, "--help")[0] == EXIT_OK
    code, out, _ = run(capsys, "eval", "--help")
    assert code == EXIT_OK and "--predictions" in out and "ModelSpec" in out
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK and "0.1.0" in out


# --- the exit-code contract: output paths checked before any work, ranges, Ctrl-C ----------

@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, t: ["predict", "{model}", str(d), "--out", str(t)], "is a folder, but a file is needed"),
        (lambda d, t: ["predict", "{model}", str(d), "--out", str(d / "x.parquet")], "is a file, not a folder"),
        (lambda d, t: ["eval", "{model}", str(d), "--out-dir", str(d)], "is an existing file, but a folder"),
        (lambda d, t: ["calibrate", "{model}", str(d), "--out", str(t)], "is a folder, but a file is needed"),
        (lambda d, t: ["calibrate", "{model}", str(d), "--report", str(d)], "is an existing file"),
        (lambda d, t: ["audit", "{model}", str(d), "--out", str(d)], "is an existing file"),
        (lambda d, t: ["lock", "{model}", "--out", str(t)], "is a folder, but a file is needed"),
        (lambda d, t: ["pull", "{model}", "--to", str(d)], "is an existing file"),
    ],
)
def test_bad_output_paths_exit_2_before_the_model_is_loaded(capsys, tiny_model_dir, data_file, tmp_path,
                                                            make_args, message):
    argv = [str(tiny_model_dir) if a == "{model}" else a for a in make_args(data_file, tmp_path)]
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE, err
    assert message in err and "Traceback" not in err
    assert "model:" not in err  # refused before loading, not after the run


def test_gate_refuses_an_out_dir_that_is_a_file_before_running(capsys, tmp_path):
    gate_file = tmp_path / "gate.toml"
    blocker = tmp_path / "report"
    blocker.write_text("not a folder")
    gate_file.write_text('data = "val.jsonl"\n[baseline]\nmodel = "m"\n[candidate]\nmodel = "m"\n')
    (tmp_path / "val.jsonl").write_text('{"text": "a", "label": "negative"}\n')
    code, _, err = run(capsys, "gate", str(gate_file), "--out-dir", str(blocker), "--no-cache")
    assert code == EXIT_USAGE and "--out-dir" in err and "is an existing file" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write in a read-only folder")
def test_a_read_only_out_folder_exits_2(capsys, tiny_model_dir, data_file, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(locked / "p.parquet"))
    finally:
        locked.chmod(0o700)
    assert code == EXIT_USAGE and "cannot write in" in err and "model:" not in err


@pytest.mark.parametrize("budget", ["0", "-1"])
def test_token_budget_must_be_positive(capsys, tiny_model_dir, data_file, tmp_path, budget):
    code, _, err = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(tmp_path / "p.parquet"),
                       "--token-budget", budget)
    assert code == EXIT_USAGE and "--token-budget" in err and "x>=1" in err


def test_token_budget_is_checked_in_the_library_too(tiny_model_dir):
    from textgate.errors import ConfigError
    from textgate.infer import predict
    from textgate.model import load_classifier, resolve_model_argument

    classifier = load_classifier(resolve_model_argument(str(tiny_model_dir))[0])
    with pytest.raises(ConfigError, match="token_budget must be a whole number of tokens >= 1; got -1"):
        predict(classifier, ["hi"], token_budget=-1)


def test_predict_refuses_nan_outputs_and_writes_nothing(capsys, nan_model_dir, data_file, tmp_path):
    out = tmp_path / "p.parquet"
    code, _, err = run(capsys, "predict", str(nan_model_dir), str(data_file), "--out", str(out))
    assert code == EXIT_USAGE and "probabilities must be finite" in err
    assert not out.exists()


def test_ctrl_c_exits_130_and_leaves_no_partial_file(capsys, monkeypatch, tiny_model_dir, data_file, tmp_path):
    import pyarrow.parquet as pq

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", interrupted)  # Ctrl-C while the file is being written
    out = tmp_path / "p.parquet"
    code, _, err = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(out))
    assert code == EXIT_INTERRUPTED and "interrupted" in err
    assert list(tmp_path.iterdir()) == [data_file]  # neither the file nor a temporary one


def test_a_full_disk_while_writing_is_exit_2_not_an_internal_error(capsys, monkeypatch, tiny_model_dir,
                                                                   data_file, tmp_path):
    import errno

    import pyarrow.parquet as pq

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p.parquet"))

    monkeypatch.setattr(pq, "write_table", disk_full)
    code, _, err = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(tmp_path / "p.parquet"))
    assert code == EXIT_USAGE and "No space left on device" in err and "internal error" not in err


def test_predict_format_json_summarises_the_file_written(capsys, tiny_model_dir, data_file, tmp_path):
    out = tmp_path / "p.parquet"
    code, stdout, err = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(out), "--format", "json")
    assert code == EXIT_OK, err
    summary = json.loads(stdout)
    assert summary["kind"] == "textgate.predict" and summary["out"] == str(out) and summary["rows"] == len(TEXTS)
    assert sum(summary["predicted_counts"].values()) == len(TEXTS)
    assert summary["label_names"] == list(LABELS) and summary["hardware"]["cpu_model"]
    code, stdout, _ = run(capsys, "predict", str(tiny_model_dir), str(data_file), "--out", str(out))
    assert code == EXIT_OK and stdout == ""  # human: messages on stderr only, as before


# --- one table from exception to exit code and message (cli/errors.py) ---------------------

def _instance(name: str):
    cls = getattr(errors, name)
    if cls is errors.LicenseRefused:
        return cls(("the model's license is 'mit' (license: in README.md), not one of ['apache-2.0']",),
                   refused="textgate.lock not written")
    return cls(f"{name} happened; do the fix.")


def _raising_cli(monkeypatch, exc: BaseException) -> None:
    import sys

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(sys.modules["textgate.cli.main"].cli, "main", fail)


def test_every_textgate_error_has_its_own_row_in_the_error_table():
    from textgate.cli.errors import ERROR_EXITS

    missing = [name for name in errors.__all__ if getattr(errors, name) not in ERROR_EXITS]
    assert not missing, f"add a row to ERROR_EXITS in textgate/cli/errors.py for {missing}"
    codes = {name: ERROR_EXITS[getattr(errors, name)].code for name in errors.__all__}
    assert codes.pop("LicenseRefused") == EXIT_GATE_FAILED and set(codes.values()) == {EXIT_USAGE}


@pytest.mark.parametrize("name", errors.__all__)
def test_main_ends_every_textgate_error_as_the_table_says(capsys, monkeypatch, name):
    from textgate.cli.errors import error_exit

    exc = _instance(name)
    _raising_cli(monkeypatch, exc)
    code, out, err = run(capsys, "eval", "x")
    row = error_exit(exc)
    assert code == row.code and out == ""
    assert err.splitlines() == [f"textgate: {line}" for line in row.lines(exc)]
    assert err.startswith("textgate: license check failed: " if name == "LicenseRefused" else
                          f"textgate: error: {name} happened; do the fix.")


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (PermissionError(13, "Permission denied", "/ro/out.parquet"), EXIT_USAGE,
         "error: cannot write /ro/out.parquet: Permission denied; choose a writable location"),
        (FileNotFoundError(2, "No such file or directory", "x"), EXIT_INTERNAL, "internal error: FileNotFoundError:"),
        (RuntimeError("boom"), EXIT_INTERNAL, "internal error: RuntimeError: boom (run with --debug for the traceback)"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted; nothing was written"),
    ],
)
def test_main_ends_other_exceptions_as_the_table_says(capsys, monkeypatch, exc, code, line):
    _raising_cli(monkeypatch, exc)
    got, _, err = run(capsys, "eval", "x")
    assert got == code and err.startswith(f"textgate: {line}")


def test_debug_shows_the_traceback_but_not_for_ctrl_c(monkeypatch):
    _raising_cli(monkeypatch, errors.DataError("bad"))
    with pytest.raises(errors.DataError, match="bad"):
        main(["--debug", "eval", "x"])
    _raising_cli(monkeypatch, KeyboardInterrupt())
    assert main(["--debug", "eval", "x"]) == EXIT_INTERRUPTED


# --- --format human|json on every command that reports ------------------------------------

NOT_REPORTING = {"serve"}  # runs until stopped; its answers are the HTTP API's JSON


def _commands():
    import click

    from textgate.cli import cli

    def walk(group, prefix):
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                yield from walk(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), command

    return dict(walk(cli, ()))


def test_every_reporting_command_takes_the_same_format_option():
    from textgate.cli.common import OUTPUT_FORMATS

    commands = _commands()
    assert NOT_REPORTING < set(commands)
    for name, command in commands.items():
        formats = [p for p in command.params if "--format" in getattr(p, "opts", ())]
        if name in NOT_REPORTING:
            assert not formats, name
            continue
        assert len(formats) == 1, f"textgate {name} has no --format (use common.format_option)"
        option = formats[0]
        assert (option.name, tuple(option.type.choices), option.default) == ("output_format", OUTPUT_FORMATS, "human")


def _small_log(folder) -> str:
    """A prediction log of three served texts (made once per folder)."""
    from textgate._internal.hashing import text_hash
    from textgate.serve.store import LoggedModel, LogRecord, open_store

    url = f"sqlite:///{folder / 'log.db'}"
    if (folder / "log.db").exists():
        return url
    with open_store(url) as store:
        store.register_model(LoggedModel("fp", LABELS, "tiny"), now=0.0)
        store.write_many([LogRecord(time=float(i), request_id=f"r{i}", item=0, model_fingerprint="fp",
                                    model_label=LABELS[i], label=LABELS[i], score=0.5,
                                    scores={name: 0.5 if name == LABELS[i] else 0.25 for name in LABELS},
                                    status="ok", reasons=(), text_sha256=text_hash(str(i), b"k" * 16), text=None)
                          for i in range(3)])
    return url


def test_format_json_prints_one_json_object_on_every_reporting_command(capsys, tiny_model_dir, data_file, tmp_path):
    """Each reporting command on the tiny model, its JSON parsed from stdout; a new command
    must be added here (the last assert)."""
    model = str(tiny_model_dir)
    preds, lock = str(tmp_path / "p.parquet"), str(tmp_path / "m.lock")
    gate = tmp_path / "gate.toml"
    gate.write_text(f'[data]\npath = "{data_file}"\n[baseline]\npredictions = "{preds}"\n'
                    f'[candidate]\npredictions = "{preds}"\n')
    runs = {
        "predict": ["predict", model, str(data_file), "--out", preds],
        "eval": ["eval", "--predictions", preds, str(data_file)],
        "calibrate": ["calibrate", "--predictions", preds, str(data_file), "--out", str(tmp_path / "cal.toml"),
                      "--k-fold", "2", "--resamples", "100"],
        "gate": ["gate", str(gate), "--no-cache", "--no-latency", "--no-progress"],
        "audit find": ["audit", "find", "--pred-probs", preds, str(data_file), "--method", "loss", "--top", "2",
                       "--out", str(tmp_path / "audit")],
        "audit apply": ["audit", "apply", str(tmp_path / "audit" / "issues.csv"), "--data", str(data_file),
                        "--out", str(tmp_path / "fixed.jsonl")],
        "lock": ["lock", model, "--out", lock, "--no-progress"],
        "verify": ["verify", lock, "--no-progress"],
        "pull": ["pull", model, "--to", str(tmp_path / "pulled"), "--no-progress"],
        "log export": ["log", "export", _small_log(tmp_path), "--out", str(tmp_path / "window.parquet")],
        "log sample": ["log", "sample", _small_log(tmp_path), "--n", "2", "--out-dir", str(tmp_path / "batch")],
        "drift": ["drift", preds, preds],
    }
    kinds = {}
    for name, argv in runs.items():
        code, out, err = run(capsys, *argv, "--format", "json")
        assert code == EXIT_OK, f"{name}: {err}"
        report = json.loads(out)
        assert isinstance(report["schema_version"], int), name
        kinds[name] = report["kind"]
    assert kinds == {"predict": "textgate.predict", "eval": "textgate.eval", "calibrate": "textgate.calibration",
                     "gate": "textgate.gate", "audit find": "textgate.audit", "audit apply": "textgate.audit_apply",
                     "lock": "textgate.lock", "verify": "textgate.verify", "pull": "textgate.pull",
                     "log export": "textgate.log_export", "log sample": "textgate.log_sample",
                     "drift": "textgate.drift"}
    assert set(runs) == set(_commands()) - NOT_REPORTING
