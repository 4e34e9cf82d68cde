"""The public surface: `textgate.__all__` is sorted, complete and importable, and light."""

from __future__ import annotations

import subprocess
import sys

import textgate


def test_all_is_sorted_and_every_name_resolves():
    assert textgate.__all__ == sorted(textgate.__all__)
    for name in textgate.__all__:
        assert getattr(textgate, name).__name__ == name


def test_every_export_is_public_in_its_home_module():
    from importlib import import_module

    for name, home in textgate._HOME.items():
        assert name in import_module(home).__all__, f"{name} missing from {home}.__all__"
    assert set(textgate._HOME) == set(textgate.__all__)


def test_importing_textgate_and_the_cli_does_not_import_torch():
    code = "import sys, textgate, textgate.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_exception_lives_in_errors_and_is_exported():
    """One tree of exceptions (drawn in errors.py's docstring), all public."""
    import ast
    import inspect
    from pathlib import Path

    from textgate import errors

    package = Path(textgate.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
                assert not any(b.endswith(("Error", "Exception")) or b in errors.__all__ for b in bases), \
                    f"{path.relative_to(package)}: exception {node.name} belongs in textgate/errors.py"
    defined = {name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, errors.TextgateError)}
    assert defined == set(errors.__all__)
    assert defined <= set(textgate.__all__)
    assert all(name in (errors.__doc__ or "") for name in defined)
