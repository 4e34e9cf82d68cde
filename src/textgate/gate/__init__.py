"""`textgate gate`: baseline vs candidate with paired statistics, thresholds and reports.
Start at ``run.py``.

    config.py   the gate TOML file (data, slices, sides, thresholds, settings)
    run.py      predictions for both sides (cached, interleaved), evaluation, comparison
    cache.py    the prediction cache, keyed by model, data and settings
    compare.py  paired statistics on the same examples, assembled from (all pure):
      deltas.py   metric deltas with paired bootstrap intervals
      mcnemar.py  the exact McNemar test (mid-p)
      flips.py    flips and predicted-label shift
    checks.py   thresholds -> checks -> verdict (pure)
    report.py   report.json / report.md / terminal; html.py the report.html page
"""

from textgate.gate.checks import Check, GateResult, check_gate
from textgate.gate.config import GateConfig, GateSettings, Thresholds, load_gate_config
from textgate.gate.run import GateRun, run_gate

__all__ = ["Check", "GateConfig", "GateResult", "GateRun", "GateSettings", "Thresholds", "check_gate", "load_gate_config",
           "run_gate"]
