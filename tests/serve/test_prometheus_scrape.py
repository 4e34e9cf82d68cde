"""A real Prometheus (Debian's package, installed by .ci/run when it can be) scrapes /metrics of
a live server on loopback. Where it is not installed, test_serve.py still parses /metrics with
prometheus_client's parser."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest
from test_serve import Server, _free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="prometheus is not installed (apt-get install prometheus)"),
]


def _query(url: str, expression: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expression}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_prometheus_scrapes_the_server(tiny_model_dir, tmp_path):
    server = Server("scraped", tmp_path / "server", [str(tiny_model_dir)], 'log_url = ""\n')
    prometheus_port = _free_port()
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: textgate
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""")
    prometheus = None
    try:
        server.wait_ready()
        for i in range(5):
            httpx.post(f"{server.url}/v1/classify", json={"texts": [f"i love this {i}", "awful"]}).raise_for_status()
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, predictions = time.monotonic() + 30, []
        while time.monotonic() < deadline and not predictions:
            time.sleep(1)
            try:
                predictions = _query(prometheus_url, "sum(textgate_predictions_total)")
            except httpx.HTTPError:
                continue
        assert predictions, "Prometheus never scraped textgate_predictions_total"
        assert float(predictions[0]["value"][1]) == 10
        assert _query(prometheus_url, 'up{job="textgate"}')[0]["value"][1] == "1"
        assert _query(prometheus_url, "textgate_model_info")[0]["metric"]["fingerprint"]
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=10)
        server.stop()
