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
