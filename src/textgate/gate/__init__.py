"""`textgate gate`: baseline vs candidate with paired statistics, thresholds and reports.

    config.py   the gate TOML file (data, slices, sides, thresholds, settings)
    run.py      predictions for both sides (cached, interleaved), evaluation, comparison
    checks.py   thresholds -> checks -> verdict (pure)
    report.py   report.json / report.md / report.html
"""

from textgate.gate.checks import Check, GateResult, check_gate
from textgate.gate.config import GateConfig, GateSettings, Thresholds, load_gate_config
from textgate.gate.run import GateRun, run_gate

__all__ = ["Check", "GateConfig", "GateResult", "GateRun", "GateSettings", "Thresholds", "check_gate", "load_gate_config",
           "run_gate"]
