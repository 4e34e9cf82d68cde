"""SIGKILL the server during a load, restart it: every prediction it acknowledged as logged
("logged": "committed") is in the store. On SQLite always, on PostgreSQL when CI provides one.
The same while another connection holds the log's write lock: under log_ack = "committed" no
request gets 200 until its row is durable (503 with Retry-After instead), and a graceful stop
drains the queue once the lock is gone."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_serve import Server
from test_store import HeldLock, wait_for

from textgate.serve.store import open_store

pytestmark = pytest.mark.slow


def _config(url: str, folder: Path, extra: str = "") -> str:
    """A committed-log config; PostgreSQL logs need a configured hash key, so every test gives one."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "log.key"
    key_file.write_text("0123456789abcdef0123456789abcdef\n")
    key_file.chmod(0o600)
    return f'log_url = "{url}"\nlog_ack = "committed"\nlog_hash_key_file = "{key_file}"\n{extra}'


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
    config = _config(log_url, tmp_path)
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


class _Answers:
    """Every answer of a load: (request id, status, Retry-After, when it arrived)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, int, str | None, float]] = []

    def add(self, response: httpx.Response) -> None:
        with self.lock:
            self.items.append((response.headers["x-request-id"], response.status_code,
                               response.headers.get("retry-after"), time.monotonic()))

    def count(self, status: int, after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for _, code, _, at in self.items if code == status and at > after)


def _locked_load(url: str, name: str, answers: _Answers, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                response = client.post("/v1/classify", json={"text": f"i love this {i}"},
                                       headers={"X-Request-ID": f"{name}-{i}"})
            except httpx.TransportError:
                return  # the server is gone
            answers.add(response)


def test_committed_means_durable_while_the_log_is_locked(tiny_model_dir, tmp_path, log_url):  # noqa: F811
    with open_store(log_url):  # the table exists before the lock is taken
        pass
    config = _config(log_url, tmp_path, "request_timeout_s = 2\nlog_retry_s = 300\n")
    server = Server("locked", tmp_path / "server", [str(tiny_model_dir)], config)
    answers = _Answers()
    stop = threading.Event()
    clients = [threading.Thread(target=_locked_load, args=(server.url, f"c{n}", answers, stop)) for n in range(4)]
    try:
        server.wait_ready()
        with HeldLock(log_url) as lock:
            for thread in clients:
                thread.start()
            wait_for(lambda: answers.count(503) >= 4, "503 answers while the log is locked")
            released = time.monotonic()  # stamped first: no 200 can arrive before this
            lock.release()
        wait_for(lambda: answers.count(200, after=released) >= 20, "200 answers after the lock is released")
        server.process.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
        server.process.wait(timeout=10)
    finally:
        stop.set()
        server.stop()
    with answers.lock:
        items = list(answers.items)
    assert {status for _, status, _, _ in items} <= {200, 503}, items
    assert all(retry == "1" for _, status, retry, _ in items if status == 503)
    early = [rid for rid, status, _, at in items if status == 200 and at <= released]
    assert not early, f"answered 200 while the log was locked: {early[:5]}"
    acknowledged = {rid for rid, status, _, _ in items if status == 200}
    with open_store(log_url) as store:
        lost = acknowledged - store.request_ids()
    assert not lost, f"{len(lost)} requests answered 200 are missing after SIGKILL: {sorted(lost)[:5]}"


def test_a_graceful_stop_drains_the_log_after_a_brief_lock(tiny_model_dir, tmp_path, log_url):  # noqa: F811
    with open_store(log_url):
        pass
    config = _config(log_url, tmp_path, "request_timeout_s = 1\nlog_retry_s = 300\n")
    server = Server("draining", tmp_path / "server", [str(tiny_model_dir)], config)
    sent = [f"drain-{i}" for i in range(3)]
    try:
        server.wait_ready()
        with HeldLock(log_url) as lock:
            for request_id in sent:  # each waits out its deadline behind the lock: 503, still queued
                response = httpx.post(f"{server.url}/v1/classify", json={"text": f"text of {request_id}"},
                                      headers={"X-Request-ID": request_id}, timeout=60)
                assert response.status_code == 503 and response.headers["retry-after"] == "1", response.text
            server.process.send_signal(signal.SIGTERM)  # a graceful stop while the lock is still held

            def refused() -> bool:
                try:
                    httpx.get(f"{server.url}/healthz", timeout=1)
                except httpx.TransportError:
                    return True
                return False

            wait_for(refused, "the server to stop listening")
            lock.release()
        server.process.wait(timeout=300)
    finally:
        server.stop()
    stderr = server.stderr_path.read_text()
    assert "could not write" not in stderr and "dropped" not in stderr, stderr[-3000:]
    with open_store(log_url) as store:
        stored = store.request_ids()
    assert set(sent) <= stored, f"lost on a graceful stop: {sorted(set(sent) - stored)}"
