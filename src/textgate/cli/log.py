"""`textgate log export` and `textgate log sample`: served traffic read back from the prediction log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from textgate.cli.common import (
    check_outputs,
    echo_json,
    format_option,
    say,
)
from textgate.errors import ConfigError

LOG_URL_HELP = ("LOG_URL is the server's log_url (sqlite:///path.db or postgresql://user@host/db), or the path "
                "of an existing SQLite log file.")
KEY_HELP = ("The log's text hash key file (the server's log_hash_key_file; default: <database>.hashkey beside a "
            "SQLite log, when it exists).")


def window_options(command):
    """--since, --until and --model: which served predictions a command reads."""
    for option in reversed((
        click.option("--since", help="Served at or after this ISO 8601 time (UTC without an offset), e.g. "
                                     "2026-12-01 or 2026-12-01T08:00:00+01:00."),
        click.option("--until", help="Served before this ISO 8601 time."),
        click.option("--model", "model", metavar="FINGERPRINT",
                     help="Only this model's rows (its fingerprint, or a unique prefix of 8+ characters); needed "
                          "when the window holds several."),
    )):
        command = option(command)
    return command


def key_option(command):
    return click.option("--hash-key-file", "hash_key_file", type=click.Path(path_type=Path), help=KEY_HELP)(command)


@click.group("log")
def log_group() -> None:
    """Read served traffic back from the prediction log of `textgate serve`.

    \b
    textgate log export LOG_URL --out window.parquet [--since T] [--until T] [--model FP] [--shadow]
        the window's predictions as a Predictions file (eval, gate, calibrate, audit read it),
        one text_sha256 per row (the log's keyed hash), in served order.
    textgate log sample LOG_URL --n N --strategy uniform|low-confidence|guard-flagged|disagreement
                        --out-dir DIR
        a labeling batch (batch.csv, argilla.jsonl, predictions.parquet); fill in its label
        column and run the `textgate eval` command it prints for production accuracy.
    """


def _resolve_url(value: str) -> str:
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if path.is_file():
        say(f"log: SQLite file {path} (LOG_URL without a scheme is read as a file)")
        return f"sqlite:///{path.resolve()}"
    raise ConfigError(f"Argument 'LOG_URL' must be a database URL (sqlite:///path.db, postgresql://user@host/db) "
                      f"or an existing SQLite file. Got {value!r} instead, which is neither.", field="LOG_URL")


def _require_extra() -> None:
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        raise click.ClickException("textgate log reads the prediction log with SQLAlchemy, which is not "
                                   "installed: pip install 'textgate[serve]'") from None


def _read(log_url: str, since: str | None, until: str | None, model: str | None, *, shadow: bool = False):
    from textgate.serve.window import parse_time, read_window

    url = _resolve_url(log_url)
    window = read_window(url, since=None if since is None else parse_time(since, option="--since"),
                         until=None if until is None else parse_time(until, option="--until"),
                         model=model, shadow=shadow)
    for reason, count in window.left_out.items():
        say(f"left out {count:,} rows: {reason}")
    return url, window


@log_group.command("export")
@click.argument("log_url")
@window_options
@click.option("--shadow", is_flag=True, help="Export the shadow's predictions for the same items instead "
                                             "(--model then names the shadow).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="Where to write the Predictions Parquet file.")
@key_option
@format_option("a summary of what was written")
def export(log_url: str, since: str | None, until: str | None, model: str | None, shadow: bool, out_path: Path,
           hash_key_file: Path | None, output_format: str) -> None:
    """Write the predictions served in a window of LOG_URL as a Predictions file.

    Each row: the model's own label (before the guard), its probabilities, tokens and truncation,
    and text_sha256, the log's keyed text hash; rows in served order (time, request id, item).
    With --hash-key-file (or the key beside a SQLite log) the hashes of rows that carry their
    text are checked against the key. LOG_URL is the server's log_url or a SQLite file.
    """
    _require_extra()
    from textgate.predictions import save_predictions
    from textgate.serve.store import existing_log_hash_key
    from textgate.serve.window import check_hash_key, window_predictions

    check_outputs(files={"--out": out_path})
    url, window = _read(log_url, since, until, model, shadow=shadow)
    key = existing_log_hash_key(url, key_file=hash_key_file)
    checked = None if key is None else check_hash_key(window, key)
    predictions = window_predictions(window)
    save_predictions(predictions, out_path)
    summary = {"schema_version": 1, "kind": "textgate.log_export", "out": str(out_path), **window.summary(),
               "label_names": list(predictions.label_names), "hash_key_checked_rows": checked}
    say(f"wrote {len(predictions):,} {window.role} predictions of model {window.fingerprint} "
        f"({summary['first']} to {summary['last']}) to {out_path}")
    if checked == 0:
        say("the log holds no texts, so the hash key could not be checked against it")
    if output_format == "json":
        echo_json(summary)


@log_group.command("sample")
@click.argument("log_url")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Rows in the batch (at most).")
@click.option("--strategy", type=click.Choice(("uniform", "low-confidence", "guard-flagged", "disagreement")),
              default="uniform", show_default=True,
              help="uniform: random rows (estimates production accuracy); low-confidence: the lowest top "
                   "probabilities; guard-flagged: random rows the guard gave a reason; disagreement: random rows "
                   "where the shadow's label differs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random draw.")
@window_options
@click.option("--texts", "texts_path", type=click.Path(path_type=Path),
              help="A data file (CSV/JSONL/Parquet) of your own texts: those whose hash under the log's key "
                   "matches a sampled row fill in its text (for a log without raw texts).")
@click.option("--text-col", default="text", show_default=True, help="The text column of --texts.")
@key_option
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Where to write the batch.")
@format_option("sample.json")
def sample(log_url: str, n: int, strategy: str, seed: int, since: str | None, until: str | None,
           model: str | None, texts_path: Path | None, text_col: str, hash_key_file: Path | None, out_dir: Path,
           output_format: str) -> None:
    """Write a labeling batch drawn from LOG_URL to --out-dir.

    batch.csv (fill in its label column), argilla.jsonl (Argilla 2.x records), predictions.parquet
    (the batch's predictions, in batch.csv's order) and sample.json. Texts are included when the
    log holds them or --texts supplies them; otherwise text_sha256 is the join key.
    """
    _require_extra()
    from textgate.serve.sample import sample_window, write_labeling_batch

    check_outputs(dirs={"--out-dir": out_dir})
    url, window = _read(log_url, since, until, model)
    texts = None if texts_path is None else _texts_by_hash(url, texts_path, text_col, hash_key_file)
    chosen = sample_window(window, n, strategy=strategy, seed=seed)
    paths, summary = write_labeling_batch(chosen, out_dir, texts=texts)
    for note in summary["notes"]:
        say(note)
    text = summary["text"]
    say(f"wrote a {strategy} batch of {summary['rows']:,} rows (of {summary['population']:,}) to {out_dir}: "
        f"{text['logged'] + text['joined']:,} with text, {text['hash_only']:,} with only text_sha256")
    say(f"label it (batch.csv, column 'label'), then: {summary['eval']}")
    if output_format == "json":
        echo_json(summary)
    else:
        for path in paths:
            say(f"wrote {path}")


def _texts_by_hash(url: str, path: Path, text_col: str, key_file: Path | None) -> dict[str, Any]:
    from textgate._internal.hashing import text_hash
    from textgate.data import read_dataset
    from textgate.serve.store import existing_log_hash_key

    key = existing_log_hash_key(url, key_file=key_file)
    if key is None:
        raise ConfigError("Option '--texts' joins texts by their hash under the log's key, and no key was found: "
                          "pass --hash-key-file (the server's log_hash_key_file).", field="--hash-key-file")
    dataset = read_dataset(path, text_col=text_col, label_col=None)
    return {text_hash(text, key): text for text in dataset.texts}
