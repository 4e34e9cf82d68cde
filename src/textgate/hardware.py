"""What this machine computes with: the CPU, torch's kernel level, whether bfloat16 matmuls are
native or emulated, and the thread count.

Recorded in every Predictions' settings, every eval, gate and calibrate report and every
BENCHMARKS.md section, and part of the prediction-cache key, because the same model runs at
very different speeds (bfloat16: several times faster where native, about 7x slower than float32
where emulated) and with slightly different rounding on different CPUs.

bfloat16 counts as native only when all three hold:
- the CPU has a bfloat16 dot-product instruction (x86 ``avx512_bf16`` or ``amx_bf16``; Arm ``bf16``);
- oneDNN, which runs the bfloat16 matmuls, is not capped below it (``ONEDNN_MAX_CPU_ISA`` or
  ``DNNL_MAX_CPU_ISA`` set to ``AVX2``, ``AVX512_CORE``, ... emulates bfloat16);
- torch's own kernels are not capped below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``).
The caps are read from the environment explicitly: CPU-flag probes (torch's included) ignore them,
and a capped CI run must see what an AVX2-only runner sees.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Hardware", "bf16_emulated_note", "bf16_support", "cpu_capability", "detect_hardware", "hardware_line",
           "isa_cap", "settings_notes"]

# oneDNN's CPU ISA names, lowest first (docs: "CPU Dispatcher Control"); bfloat16 dot products
# start at AVX512_CORE_BF16 (AVX2_VNNI_2 only converts).
_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX",
                "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "AVX10_2_512",
                "AVX10_2_512_AMX_2", "ALL")
_FIRST_BF16_ISA = _ONEDNN_ISAS.index("AVX512_CORE_BF16")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Hardware:
    cpu_model: str
    machine: str  # platform.machine(): x86_64, aarch64
    cpu_capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    bf16: Literal["native", "emulated"]
    bf16_reason: str
    threads: int | None  # torch intra-op threads; None when torch was not loaded (nothing ran)
    isa_cap: str | None  # ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA when set

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for terminals and reports: 'AMD EPYC (x86_64), torch AVX2, bf16 emulated, 2 threads'."""
        return hardware_line(self.to_dict())

    def cache_identity(self) -> dict[str, str]:
        """What can change a prediction's bits on this machine (not the thread count's speed)."""
        return {"cpu_model": self.cpu_model, "cpu_capability": self.cpu_capability, "bf16": self.bf16}


def detect_hardware() -> Hardware:
    """This process's hardware identity. Cheap on x86: torch is not imported for it (a gate re-run
    from the cache runs no model); the thread count is torch's when torch is loaded, else None."""
    torch = sys.modules.get("torch")
    return Hardware(**_static_identity(), threads=None if torch is None else torch.get_num_threads())


@functools.cache
def _static_identity() -> dict[str, Any]:
    info = _read_cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    capability = cpu_capability(platform.machine(), flags, os.environ)
    if capability is None:  # not x86: ask torch itself
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability())
    cap = isa_cap(os.environ)
    bf16, reason = bf16_support(platform.machine(), flags, capability, cap)
    return {"cpu_model": _cpu_model(info), "machine": platform.machine(), "cpu_capability": capability,
            "bf16": bf16, "bf16_reason": reason, "isa_cap": cap}


def cpu_capability(machine: str, flags: set[str], environ: Any) -> str | None:
    """What ``torch.backends.cpu.get_cpu_capability()`` returns on x86, without importing torch
    (ATen's DispatchStub rule: ``ATEN_CPU_CAPABILITY`` if valid, else AVX512 with avx512vl/bw/dq
    and fma, else AVX2 with avx2 and fma, else DEFAULT); None elsewhere. tests/records/test_hardware.py
    checks it against torch, natively and with the ISA capped."""
    if machine not in ("x86_64", "AMD64", "i686", "i386"):
        return None
    requested = str(environ.get("ATEN_CPU_CAPABILITY", "")).strip()
    if requested in ("avx512", "avx2", "default"):
        return requested.upper()
    if {"avx512vl", "avx512bw", "avx512dq", "fma"} <= flags:
        return "AVX512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    return "DEFAULT"


def isa_cap(environ: Any) -> str | None:
    value = environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value and value.strip() else None


def bf16_support(machine: str, flags: set[str], capability: str,
                 cap: str | None) -> tuple[Literal["native", "emulated"], str]:
    """Whether bfloat16 matmuls run natively here, and why (pure: for tests and the capped CI run)."""
    if machine in ("aarch64", "arm64"):
        return ("native", "the CPU has Arm bf16 instructions") if "bf16" in flags else (
            "emulated", "the CPU has no Arm bf16 instructions")
    have = [f for f in _BF16_FLAGS if f in flags]
    if not have:
        return "emulated", "the CPU has no AVX512-BF16 or AMX-BF16 instructions"
    if cap is not None and cap in _ONEDNN_ISAS and _ONEDNN_ISAS.index(cap) < _FIRST_BF16_ISA:
        return "emulated", f"the CPU has {'/'.join(have)}, but ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below it"
    if not capability.upper().startswith("AVX512"):
        return "emulated", f"the CPU has {'/'.join(have)}, but torch's kernels run at {capability}"
    return "native", f"the CPU has {'/'.join(have)}"


def bf16_emulated_note(hardware: Hardware) -> str:
    return (f"bfloat16 is emulated on this CPU ({hardware.bf16_reason}): expect it to be several times "
            "slower than float32 here (about 7x on AVX2-only CPUs); it is faster only where bf16 is native.")


def hardware_line(record: Any) -> str:
    """A report's one-line machine description from a ``Hardware.to_dict()`` record (or a
    record from an older file, which has none)."""
    if not isinstance(record, dict) or not record.get("cpu_model"):
        return "not recorded (made before textgate recorded hardware, or outside textgate)"
    cap = f", oneDNN capped at {record['isa_cap']}" if record.get("isa_cap") else ""
    threads = record.get("threads")
    return (f"{record['cpu_model']} ({record.get('machine', '?')}), torch {record.get('cpu_capability', '?')}{cap}, "
            f"bf16 {record.get('bf16', '?')}" + (f", {threads} threads" if threads else ""))


def settings_notes(settings: Any) -> list[str]:
    """Notes a report owes its reader from a Predictions' settings: emulated bfloat16."""
    if not isinstance(settings, dict):
        return []
    hardware, engine = settings.get("hardware"), settings.get("engine")
    if not isinstance(hardware, dict) or not isinstance(engine, dict):
        return []
    if str(engine.get("compute", "")).startswith("bfloat16") and hardware.get("bf16") == "emulated":
        return [f"bfloat16 is emulated on the CPU these predictions ran on ({hardware.get('bf16_reason')}): "
                "expect it to be several times slower than float32 there; timings are not representative of "
                "a CPU with native bf16."]
    return []


def _read_cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo; empty where there is none (macOS, Windows)."""
    path = Path("/proc/cpuinfo")
    info: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _cpu_model(info: dict[str, str]) -> str:
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine() or "unknown"
