"""`textgate lock`, `textgate verify` and `textgate pull`."""

from __future__ import annotations

from pathlib import Path

import click

from textgate.cli.common import (
    EXIT_GATE_FAILED,
    check_outputs,
    echo_json,
    format_option,
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
@format_option("a summary of the lock written")
@_lock_options
def lock_command(model: str, out_path: Path, output_format: str, canary_path: Path | None, text_col: str,
                 allowed_licenses: tuple[str, ...], progress: bool | None) -> None:
    """Pin MODEL: file hashes, tokenizer behaviour, labels, settings, versions, license and
    canary outputs, written to --out (TOML). Check it later with `textgate verify`.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id.
    """
    from textgate.lock import (
        build_lock,
        lock_summary,
        require_allowed_licenses,
        write_lock,
    )
    from textgate.model import resolve_model_argument

    check_outputs(files={"--out": out_path})
    spec, reading = resolve_model_argument(model)
    say(f"model: {reading}")
    require_allowed_licenses(spec, allowed_licenses, refused=f"{out_path} not written")
    quiet_transformers()
    lock = build_lock(spec, lock_dir=out_path.parent, canary_path=canary_path, text_col=text_col,
                      allowed_licenses=allowed_licenses or None,
                      spec_file=Path(model) if model.endswith(".toml") else None, progress=progress, say=say)
    write_lock(lock, out_path)
    say(f"license: model {lock.license.model}" + (f", adapter {lock.license.adapter}" if lock.license.adapter else ""))
    say(f"wrote {out_path}: {len(lock.files)} files, {len(lock.tokenizer['probes'])} tokenizer probes, "
        f"{lock.canary.texts} canary texts (digest {lock.canary.digest})")
    if output_format == "json":
        echo_json(lock_summary(lock, out_path))


@click.command()
@click.argument("lock_file", type=click.Path(path_type=Path))
@click.argument("model", required=False)
@click.option("--allow-license", "allowed_licenses", multiple=True, metavar="ID",
              help="Accepted model-card license; repeatable. Default: the lock's allowlist, if any.")
@format_option("every section's status and changes")
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
        echo_json(result.to_dict())
    else:
        click.echo("\n".join(result.lines()))
    if result.exit_code:
        raise click.exceptions.Exit(EXIT_GATE_FAILED)


@click.command()
@click.argument("model")
@click.option("--to", "dest", type=click.Path(path_type=Path), required=True,
              help="Folder to copy the model into (must be empty or new).")
@click.option("--force", is_flag=True, help="Replace what pull writes in a non-empty --to folder.")
@format_option("what was copied")
@_lock_options
def pull(model: str, dest: Path, force: bool, output_format: str, canary_path: Path | None, text_col: str,
         allowed_licenses: tuple[str, ...], progress: bool | None) -> None:
    """Copy MODEL (and its adapter and calibration file) into --to with a model.toml and a
    textgate.lock that loading enforces, so a deploy needs no network.

    MODEL is a ModelSpec .toml file, 'pkg:PACKAGE/FOLDER', a local model folder, or a Hub id
    (read from the local Hugging Face cache when the Hub cannot be reached).
    """
    from textgate.lock import pull_model, require_allowed_licenses
    from textgate.model import resolve_model_argument

    check_outputs(dirs={"--to": dest})
    spec, reading = resolve_model_argument(model)
    say(f"model: {reading}")
    require_allowed_licenses(spec, allowed_licenses, refused="nothing copied")
    quiet_transformers()
    result = pull_model(spec, dest, force=force, canary_path=canary_path, text_col=text_col,
                        allowed_licenses=allowed_licenses or None, progress=progress, say=say)
    say(f"pulled {result.files} files ({result.bytes / 1e6:.1f} MB) into {result.folder}; copies match the source")
    if output_format == "json":
        echo_json(result.to_dict())
    else:
        click.echo(str(result.spec_path))

