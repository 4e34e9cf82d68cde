"""deploy/: the Grafana dashboard and the Prometheus alerts only use metrics the server exports."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import yaml
from conftest import REPO

from textgate.serve.drift import LabelDrift, ShadowTracker
from textgate.serve.prometheus import ServeMetrics

_NAME = re.compile(r"\btextgate_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def exported_names() -> set[str]:
    from prometheus_client import generate_latest

    writer = SimpleNamespace(queue_depth=0, written=0, dropped=0, failed=0, retries=0)
    metrics = ServeMetrics(model_name="m", fingerprint="f", revision=None,
                           drift=LabelDrift({"a": 1.0}, window=10), shadow=ShadowTracker(("a",), window=10),
                           log_writer=writer)
    names = set()
    # Families from the TYPE lines: a labelled metric has no samples until it is first used.
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)  # counters are typed under their sample name, ..._total
    return names


def referenced(text: str) -> set[str]:
    names = set()
    for name in _NAME.findall(text):
        for suffix in _SUFFIXES:
            name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_alert_rules_parse_and_use_exported_metrics():
    path = REPO / "deploy" / "prometheus" / "alerts.yml"
    rules = yaml.safe_load(path.read_text())["groups"][0]["rules"]
    assert {"TextgateLatencySLO", "TextgateGuardFailureSpike", "TextgateLabelDrift"} <= {r["alert"] for r in rules}
    exported = {n.removesuffix(s) for n in exported_names() for s in ("", *_SUFFIXES)}
    missing = referenced(path.read_text()) - exported
    assert not missing, f"alerts.yml uses metrics the server does not export: {sorted(missing)}"


def test_dashboard_is_valid_json_and_uses_exported_metrics():
    path = REPO / "deploy" / "grafana" / "textgate-dashboard.json"
    dashboard = json.loads(path.read_text())
    assert dashboard["panels"] and all(p["targets"] for p in dashboard["panels"])
    exported = {n.removesuffix(s) for n in exported_names() for s in ("", *_SUFFIXES)}
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    missing = referenced(expressions) - exported
    assert not missing, f"the dashboard uses metrics the server does not export: {sorted(missing)}"


def test_promtool_accepts_the_alert_rules():
    import shutil
    import subprocess

    import pytest

    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (it comes with Debian's prometheus package)")
    result = subprocess.run(["promtool", "check", "rules", str(REPO / "deploy" / "prometheus" / "alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
