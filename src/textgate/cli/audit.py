"""`textgate audit [find]` and `textgate audit apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from textgate._internal.hashing import UNKEYED, read_hash_key
from textgate.cli.common import (
    MODEL_HELP,
    DefaultGroup,
    check_outputs,
    data_options,
    echo_json,
    format_option,
    label_name_list,
    load_model,
    model_options,
    say,
)

HASH_KEY_HELP = ("The secret of the text_sha256 hashes (the audit's, for apply): the prediction log's key "
                 "file (serve's log_hash_key_file, or <database>.hashkey beside a SQLite log), so audit rows "
                 "join the log. Default: no secret.")
hash_key_option = click.option("--hash-key-file", "hash_key_file", type=click.Path(path_type=Path),
                               help=HASH_KEY_HELP)


def _hash_key(path: Path | None) -> bytes:
    return UNKEYED if path is None else read_hash_key(path, field="--hash-key-file")


@click.group(cls=DefaultGroup, default_command="find")
def audit() -> None:
    """Find likely label errors in DATA, and apply reviewed corrections.

    \b
    textgate audit [find] (MODEL | --pred-probs FILE) DATA --out DIR
        rank likely label errors (confident learning or loss ranking) from out-of-sample
        probabilities: saved --pred-probs, MODEL run on DATA (it must not have trained on
        DATA), or MODEL --k-fold (logistic regression on MODEL's frozen embeddings).
        Writes issues.csv/.jsonl, summary.json, review.html and argilla.jsonl.
    textgate audit apply CORRECTIONS.csv --data DATA --out CORRECTED
        write DATA with the labels a reviewer set in issues.csv (corrected_label or
        accept) and a changelog; stale or invalid corrections are refused.

    See 'textgate audit find --help' and 'textgate audit apply --help'.
    """


@audit.command("find")
@click.argument("args", nargs=-1, metavar="[MODEL] DATA")
@click.option("--pred-probs", "pred_probs", type=click.Path(path_type=Path),
              help="Out-of-sample probabilities: a 'textgate predict' Parquet file or an (N, K) .npy array.")
@click.option("--k-fold", "k_fold", is_flag=True,
              help="Probabilities by stratified k-fold logistic regression on MODEL's frozen embeddings.")
@click.option("--folds", type=click.IntRange(min=2), help="Folds for --k-fold (default: 5).")
@click.option("--seed", type=int, help="Seed of the --k-fold split (default: 0).")
@click.option("--kfold-c", "kfold_c", type=click.FloatRange(min=0, min_open=True),
              help="Inverse L2 strength of the --k-fold head (default: the C of textgate.audit.KFOLD_C_GRID "
                   "with the lowest out-of-fold NLL; docs/audit.md).")
@click.option("--method", type=click.Choice(["confident-learning", "loss"]), default="confident-learning",
              show_default=True, help="How to rank and how many to flag.")
@click.option("--ranked-by", type=click.Choice(["normalized_margin", "self_confidence"]),
              default="normalized_margin", show_default=True, help="Confident learning's ranking score.")
@click.option("--top", type=click.IntRange(min=1), help="Flag at most this many (default: confident learning's estimate).")
@click.option("--label-names", help="Comma-separated names of the .npy columns of --pred-probs (default: DATA's "
                                   "labels, sorted).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Directory for the outputs.")
@format_option("summary.json")
@hash_key_option
@data_options
@model_options
def audit_find(args: tuple[str, ...], pred_probs: Path | None, k_fold: bool, folds: int | None, seed: int | None,
               kfold_c: float | None, method: str, ranked_by: str, top: int | None, label_names: str | None, out_dir: Path, output_format: str,
               hash_key_file: Path | None, text_col: str, label_col: str, **run_options: Any) -> None:
    """Rank likely label errors in DATA; write them to --out.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.audit import audit_labels
    from textgate.audit.export import audit_summary, write_audit_outputs
    from textgate.audit.sources import audit_inputs, check_probability_source

    check_outputs(dirs={"--out": out_dir})
    if len(args) != (1 if pred_probs else 2):
        raise click.UsageError(f"Pass MODEL and DATA, or --pred-probs FILE and DATA (got {len(args)} arguments: "
                               f"{' '.join(args) or 'none'}). {MODEL_HELP}")
    model, data = (None, Path(args[0])) if pred_probs else (args[0], Path(args[1]))
    check_probability_source(has_model=model is not None, pred_probs=pred_probs, label_names=label_name_list(label_names),
                             k_fold=k_fold, kfold_options={"folds": folds, "seed": seed, "kfold_c": kfold_c})
    hash_key = _hash_key(hash_key_file)  # before the model loads: a bad key file fails fast
    classifier = load_model(model, run_options) if model is not None else None
    inputs = audit_inputs(data, classifier=classifier, pred_probs=pred_probs, label_names=label_name_list(label_names),
                          k_fold=k_fold, folds=folds, seed=seed, kfold_c=kfold_c, text_col=text_col,
                          label_col=label_col, token_budget=run_options.get("token_budget"),
                          progress=run_options.get("progress"), say=say)
    dataset = inputs.dataset
    result = audit_labels(inputs.label_ids, inputs.probabilities, label_names=inputs.label_names,
                          method=method.replace("-", "_"), ranked_by=ranked_by, top=top)
    summary = audit_summary(result, probabilities=inputs.source, hash_key=hash_key, data={
        "path": str(data), "fingerprint": dataset.fingerprint, "texts_fingerprint": inputs.texts_fingerprint})
    for path in write_audit_outputs(result, dataset.texts, out_dir, summary, hash_key=hash_key):
        say(f"wrote {path}")
    if output_format == "json":
        echo_json(summary)
    else:
        click.echo(_audit_text(summary, result))


@audit.command("apply")
@click.argument("corrections", type=click.Path(path_type=Path))
@click.option("--data", "data", type=click.Path(path_type=Path), required=True, help="The audited dataset.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="The corrected copy (same format as --data; a TweetEval pair becomes .jsonl).")
@click.option("--changelog", type=click.Path(path_type=Path), help="Default: OUT's name + .changelog.csv.")
@click.option("--label-names", help="Comma-separated label names in id order (default: summary.json beside "
                                   "CORRECTIONS, else DATA's labels).")
@format_option("what was written and every label changed")
@hash_key_option
@data_options
def audit_apply(corrections: Path, data: Path, out_path: Path, changelog: Path | None, label_names: str | None,
                output_format: str, hash_key_file: Path | None, text_col: str, label_col: str) -> None:
    """Write DATA with the labels set in CORRECTIONS (an edited issues.csv) to --out.

    Fill in corrected_label (a label name or id), or mark accept (yes/x/1) to take
    suggested_label; leave both empty to keep the label. Every line is checked first (row in
    range, text_sha256 still matching, label known, one line per row) and nothing is written
    if any fails. Rows not corrected are copied unchanged. Give the --hash-key-file the audit
    was given (text_sha256 of older audits, 16 hex digits, is still accepted).
    """
    from textgate.audit.apply import apply_corrections

    check_outputs(files={"--out": out_path, "--changelog": changelog})
    result = apply_corrections(corrections, data, out_path, label_names=label_name_list(label_names),
                               text_col=text_col, label_col=label_col, changelog_path=changelog,
                               hash_key=_hash_key(hash_key_file))
    say(f"wrote {result.out_path} ({result.n_rows:,} rows, {len(result.changes):,} labels changed, "
        f"{result.unchanged:,} confirmed unchanged) and {result.changelog_path}")
    if output_format == "json":
        echo_json(result.to_dict())


def _audit_text(summary: dict, result) -> str:
    estimated = summary["estimated_issues"]
    lines = [(f"{summary['flagged']:,} likely label errors flagged ({summary['method']}) among "
              f"{summary['n_examples']:,} examples; confident learning estimates "
              f"{'n/a' if estimated is None else f'{estimated:,}'} mislabeled.")]
    lines += [f"  {p['given']} -> {p['likely']}: estimated {p['estimated']}, flagged {p['flagged']}"
              for p in summary["pairs"][:6]]
    lines += ["top issues (rank, row, given -> suggested, score):"]
    lines += [f"  {f.rank:>4} row {f.row:<6} {f.given_label} -> {f.suggested_label}  {f.score:.3f}"
              for f in result.findings[:10]]
    return "\n".join(lines)
