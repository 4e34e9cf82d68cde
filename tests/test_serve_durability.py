"""SIGKILL the server during a load, restart it: every prediction it acknowledged as logged
("logged": "committed") is in the store. On SQLite always, on PostgreSQL when CI provides one."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
from test_serve import Server
from test_store import log_url  # noqa: F401  (fixture: an empty log on each backend)

from textgate.serve.store import open_store

pytestmark = pytest.mark.slow


def _load(url: str, acknowledged: set[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                response = client.post("/v1/classify", json={"texts": [f"i love this movie {i}", "awful day"]})
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200 and response.json()["logged"] == "committed":
                acknowledged.add(response.json()["request_id"])


def test_acknowledged_predictions_survive_sigkill(tiny_model_dir, tmp_path, log_url):  # noqa: F811
    config = f'log_url = "{log_url}"\nlog_ack = "committed"\n'
    server = Server("durable", tmp_path / "server", [str(tiny_model_dir)], config)
    acknowledged: set[str] = set()
    stop = threading.Event()
    try:
        server.wait_ready()
        clients = [threading.Thread(target=_load, args=(server.url, acknowledged, stop)) for _ in range(6)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 180  # generous: a slow machine only takes longer
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.process.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
        server.process.wait(timeout=10)
    finally:
        stop.set()
        server.stop()
    assert len(acknowledged) >= 40, "the load did not get going"

    restarted = Server("restarted", tmp_path / "restart", [str(tiny_model_dir)], config)
    try:
        restarted.wait_ready()
        assert httpx.post(f"{restarted.url}/v1/classify", json={"text": "after restart"}).status_code == 200
    finally:
        restarted.stop()
    store = open_store(log_url)
    try:
        lost = acknowledged - store.request_ids()
    finally:
        store.close()
    assert not lost, f"{len(lost)} acknowledged requests are missing after SIGKILL: {sorted(lost)[:5]}"
