"""The machine line every BENCHMARKS.md section starts with: CPU model, torch's ISA level, native or
emulated bfloat16, threads, cores and torch version (textgate.hardware), so a figure is never read
without the CPU it was measured on."""

from __future__ import annotations

import os


def machine_line() -> str:
    import torch

    from textgate.hardware import detect_hardware

    return f"{detect_hardware().summary()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
