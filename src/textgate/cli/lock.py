"""`textgate lock`, `textgate verify` and `textgate pull`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from textgate.cli.common import (
    EXIT_GATE_FAILED,
    check_outputs,
    quiet_transformers,
    say,
)


def _lock_options(command):
    for option in reversed([
        click.option("--canary", "canary_path", type=click.Path(path_type=Path),
                     help="Canary texts (CSV/JSONL/Parquet...; default: the bundled 200 social-media posts)."),
        click.option("--text-col", default="text", show_default=True, help="Column of --canary holding the text."),
        click.option("--allow-license", "allowed_licenses", multiple=True, metavar="ID",
                     help="Accepted model-card license (e.g. apache-2.0, mit, unknown). Repeatable; "
                          "default: no license check."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."),
    ]):
        command = option(command)
    return command


@click.command(name="lock")
@click.argument("model")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("textgate.lock"),
              show_default=True, help="Where to write the lock file.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout (json: a summary of the lock written).")
@_lock_options
def lock_command(model: str, out_path: Path, output_format: str, canary_path: Path | None, text_col: str,
                 allowed_licenses: tuple[str, ...], progress: bool | None) -> None:
    """Pin MODEL: file hashes, tokenizer behaviour, labels, settings, versions, license and
    canary outputs, written to --out (TOML). Check it later with `textgate verify`.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.lock import build_lock, write_lock
    from textgate.model import resolve_model_argument

    check_outputs(files={"--out": out_path})
    spec, reading = resolve_model_argument(model)
    say(f"model: {reading}")
    _check_licenses(spec, allowed_licenses, refused=f"{out_path} not written")
    quiet_transformers()
    lock = build_lock(spec, lock_dir=out_path.parent, canary_path=canary_path, text_col=text_col,
                      allowed_licenses=allowed_licenses or None,
                      spec_file=Path(model) if model.endswith(".toml") else None, progress=progress, say=say)
    write_lock(lock, out_path)
    say(f"license: model {lock.license.model}" + (f", adapter {lock.license.adapter}" if lock.license.adapter else ""))
    say(f"wrote {out_path}: {len(lock.files)} files, {len(lock.tokenizer['probes'])} tokenizer probes, "
        f"{lock.canary.texts} canary texts (digest {lock.canary.digest})")
    if output_format == "json":
        click.echo(json.dumps({"kind": "textgate.lock", "out": str(out_path), "files": sorted(lock.files),
                               "tokenizer_probes": len(lock.tokenizer["probes"]),
                               "canary": {"texts": lock.canary.texts, "digest": lock.canary.digest},
                               "license": lock.license.model_dump(mode="json")}, indent=2, allow_nan=False))


@click.command()
@click.argument("lock_file", type=click.Path(path_type=Path))
@click.argument("model", required=False)
@click.option("--allow-license", "allowed_licenses", multiple=True, metavar="ID",
              help="Accepted model-card license; repeatable. Default: the lock's allowlist, if any.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="What to print on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def verify(lock_file: Path, model: str | None, allowed_licenses: tuple[str, ...], output_format: str,
           progress: bool | None) -> None:
    """Recompute what LOCK_FILE records and print a diff per section; exit 1 on a behaviour change.

    Without MODEL the spec recorded in the lock is verified; with MODEL (a ModelSpec .toml file,
    'pkg:PACKAGE/FOLDER', a folder or a Hub id) that spec is, e.g. to catch changed settings.
    Exit 0 when only library versions (or the Hub commit) changed, 1 on any file, tokenizer,
    label, settings, license or canary change, 2 on error.
    """
    from textgate.lock import verify_lock
    from textgate.model import resolve_model_argument

    spec = None
    if model is not None:
        spec, reading = resolve_model_argument(model)
        say(f"model: {reading}")
    quiet_transformers()
    result = verify_lock(lock_file, spec, allowed_licenses=allowed_licenses or None, progress=progress, say=say)
    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False, default=str))
    else:
        click.echo("\n".join(result.lines()))
    if result.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


@click.command()
@click.argument("model")
@click.option("--to", "dest", type=click.Path(path_type=Path), required=True,
              help="Folder to copy the model into (must be empty or new).")
@click.option("--force", is_flag=True, help="Replace what pull writes in a non-empty --to folder.")
@_lock_options
def pull(model: str, dest: Path, force: bool, canary_path: Path | None, text_col: str,
         allowed_licenses: tuple[str, ...], progress: bool | None) -> None:
    """Copy MODEL (and its adapter and calibration file) into --to with a model.toml and a
    textgate.lock that loading enforces, so a deploy needs no network.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id
    (read from the local Hugging Face cache when the Hub cannot be reached).
    """
    from textgate.lock import pull_model
    from textgate.model import resolve_model_argument

    check_outputs(dirs={"--to": dest})
    spec, reading = resolve_model_argument(model)
    say(f"model: {reading}")
    _check_licenses(spec, allowed_licenses, refused="nothing copied")
    quiet_transformers()
    result = pull_model(spec, dest, force=force, canary_path=canary_path, text_col=text_col,
                        allowed_licenses=allowed_licenses or None, progress=progress, say=say)
    say(f"pulled {result.files} files ({result.bytes / 1e6:.1f} MB) into {result.folder}; copies match the source")
    click.echo(str(result.spec_path))


def _check_licenses(spec, allowed_licenses: tuple[str, ...], *, refused: str) -> None:
    """Exit 1 (a failed check, before any work) when a model-card license is not allowed."""
    from textgate.lock import license_failures

    failures = license_failures(spec, allowed_licenses)
    for failure in failures:
        say(f"license check failed: {failure}")
    if failures:
        say(f"{refused}; pass --allow-license for each accepted license ('unknown' accepts a missing one)")
        raise click.exceptions.Exit(EXIT_GATE_FAILED)
