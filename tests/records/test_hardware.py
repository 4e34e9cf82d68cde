"""Hardware identity: bfloat16 support from CPU flags and ISA caps, and where it is recorded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from textgate.hardware import (
    bf16_emulated_note,
    bf16_support,
    cpu_capability,
    detect_hardware,
    hardware_line,
    isa_cap,
    settings_notes,
)

pytestmark = pytest.mark.hardware

AVX512_BF16 = {"avx2", "avx512f", "avx512_bf16"}


@pytest.mark.parametrize(
    ("machine", "flags", "capability", "cap", "expected"),
    [
        ("x86_64", {"avx2", "fma"}, "AVX2", None, "emulated"),  # Zen 3, most hosted CI runners
        ("x86_64", {"avx2", "avx512f"}, "AVX512", None, "emulated"),  # Skylake-SP: AVX-512 without bf16
        ("x86_64", AVX512_BF16, "AVX512", None, "native"),  # Cooper Lake, Zen 4
        ("x86_64", {"avx512f", "amx_bf16"}, "AVX512", None, "native"),  # Sapphire Rapids
        ("x86_64", AVX512_BF16, "AVX512", "AVX2", "emulated"),  # the capped CI run
        ("x86_64", AVX512_BF16, "AVX512", "AVX512_CORE", "emulated"),
        ("x86_64", AVX512_BF16, "AVX512", "AVX512_CORE_BF16", "native"),
        ("x86_64", AVX512_BF16, "AVX512", "ALL", "native"),
        ("x86_64", AVX512_BF16, "AVX2", None, "emulated"),  # ATEN_CPU_CAPABILITY=avx2
        ("aarch64", {"asimd", "bf16"}, "DEFAULT", None, "native"),
        ("aarch64", {"asimd"}, "DEFAULT", None, "emulated"),
    ],
)
def test_bf16_support_follows_flags_and_caps(machine, flags, capability, cap, expected):
    support, reason = bf16_support(machine, flags, capability, cap)
    assert support == expected
    if cap and expected == "emulated":
        assert f"ONEDNN_MAX_CPU_ISA={cap}" in reason


def test_isa_cap_reads_either_variable():
    assert isa_cap({}) is None and isa_cap({"ONEDNN_MAX_CPU_ISA": " "}) is None
    assert isa_cap({"ONEDNN_MAX_CPU_ISA": "avx2"}) == "AVX2"
    assert isa_cap({"DNNL_MAX_CPU_ISA": "AVX512_CORE"}) == "AVX512_CORE"


def test_this_machine_is_described():
    import torch  # noqa: F401 - the thread count is torch's, read once torch is loaded

    hardware = detect_hardware()
    assert hardware.cpu_model and hardware.threads >= 1 and hardware.bf16 in ("native", "emulated")
    line = hardware.summary()
    assert hardware.cpu_model in line and f"bf16 {hardware.bf16}" in line
    assert set(hardware.cache_identity()) == {"cpu_model", "cpu_capability", "bf16"}


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        ({"avx2", "fma"}, {}, "AVX2"),
        ({"avx2"}, {}, "DEFAULT"),  # no FMA: ATen's AVX2 kernels need it
        ({"avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq"}, {}, "AVX512"),
        ({"avx2", "fma", "avx512f"}, {}, "AVX2"),  # AVX-512 foundation only (Knights Landing)
        ({"avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq"}, {"ATEN_CPU_CAPABILITY": "avx2"}, "AVX2"),
        ({"avx2", "fma"}, {"ATEN_CPU_CAPABILITY": "default"}, "DEFAULT"),
        ({"avx2", "fma"}, {"ATEN_CPU_CAPABILITY": "bogus"}, "AVX2"),  # torch warns and ignores it
    ],
)
def test_cpu_capability_follows_atens_rule(flags, environ, expected):
    assert cpu_capability("x86_64", flags, environ) == expected
    assert cpu_capability("aarch64", flags, environ) is None


def test_cpu_capability_agrees_with_torch_here():
    """Runs natively and again with the ISA capped in .ci/run: the torch-free rule must match."""
    import torch

    assert detect_hardware().cpu_capability == str(torch.backends.cpu.get_cpu_capability())


@pytest.mark.skipif(os.environ.get("ATEN_CPU_CAPABILITY", "").lower() != "avx2",
                    reason="only in the ISA-capped run of .ci/run")
def test_the_capped_run_sees_the_cap():
    """.ci/run sets ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2: whatever the CPU, textgate
    must then report bfloat16 as emulated, as it would be on an AVX2-only runner."""
    hardware = detect_hardware()
    assert hardware.cpu_capability == "AVX2" and hardware.bf16 == "emulated"


def test_lines_and_notes_from_records():
    assert "not recorded" in hardware_line(None) and "not recorded" in hardware_line({})
    record = detect_hardware().to_dict()
    assert hardware_line(record).startswith(record["cpu_model"])
    emulated = {**record, "bf16": "emulated", "bf16_reason": "no AVX512-BF16"}
    assert settings_notes({"hardware": emulated, "engine": {"compute": "bfloat16 autocast"}})
    assert not settings_notes({"hardware": emulated, "engine": {"compute": "float32"}})
    assert not settings_notes({"hardware": {**record, "bf16": "native"}, "engine": {"compute": "bfloat16 autocast"}})
    assert not settings_notes({}) and not settings_notes(None)
    assert "several times slower than float32" in bf16_emulated_note(detect_hardware())


def test_predictions_and_eval_reports_carry_the_hardware(tiny_model_dir):
    from textgate.data import Dataset
    from textgate.evaluation import evaluate
    from textgate.evaluation.report import render_markdown
    from textgate.infer import predict
    from textgate.model import ModelSpec, load_classifier

    classifier = load_classifier(ModelSpec(model=str(tiny_model_dir), dtype="bfloat16"))
    texts = ("i love this", "awful movie", "ok")
    predictions = predict(classifier, texts)
    hardware = detect_hardware()
    assert predictions.settings["hardware"]["cpu_capability"] == hardware.cpu_capability
    assert predictions.settings["hardware"]["bf16"] == hardware.bf16
    dataset = Dataset(texts=texts, labels=np.array(["positive", "negative", "neutral"], dtype=object),
                      label_names=classifier.label_names, columns={}, path=Path("d.jsonl"),
                      text_col="text", label_col="label", fingerprint="f", empty_text_rows=())
    report = evaluate(dataset, predictions)
    markdown = render_markdown(report)
    assert f"bf16 {hardware.bf16}" in markdown
    assert any("bfloat16 is emulated" in note for note in report.notes) == (hardware.bf16 == "emulated")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_loading_names_the_machine_and_warns_once_about_emulated_bf16(capsys, tmp_path, tiny_model_dir, dtype):
    from textgate.cli import EXIT_OK, main

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "i love this"}\n{"text": "awful"}\n')
    code = main(["predict", str(tiny_model_dir), str(data), "--dtype", dtype, "--out", str(tmp_path / "p.parquet")])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    hardware = detect_hardware()
    assert err.count("machine: ") == 1 and f"bf16 {hardware.bf16}" in err
    warned = dtype == "bfloat16" and hardware.bf16 == "emulated"
    assert err.count("bfloat16 is emulated on this CPU") == (1 if warned else 0)
