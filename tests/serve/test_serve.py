"""`textgate serve` end to end against real uvicorn processes, plus fast unit tests of the
batcher, the drift statistics and the config.

Two servers start once per module (in parallel, on free loopback ports):
- ``main``: API keys, a strict guard (low confidence -> fallback), a drift reference and a
  SQLite prediction log without raw text;
- ``shadow``: no auth, a shadow candidate (the same weights with max_length 16) and a queue
  of two texts, so that concurrent requests overflow it (503).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import select
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import LABELS

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from prometheus_client.parser import text_string_to_metric_families

from textgate._internal.hashing import read_hash_key, text_hash
from textgate.drift.stats import (
    chi2_goodness_of_fit,
    chi2_sf,
    population_stability_index,
)
from textgate.errors import ConfigError
from textgate.serve.config import (
    DriftConfig,
    ServeConfig,
    load_serve_config,
    reference_shares,
)
from textgate.serve.drift import LabelDrift

KEY = "test-key-1"
MIN_CONFIDENCE = 0.9999  # the tiny random model is confident; this makes most answers "low"
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, folder: Path, args: list[str], config: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "serve.toml").write_text(config)
        self.stderr_path = folder / "stderr.txt"
        env = {**os.environ, "TEXTGATE_API_KEYS": "", "HF_HUB_OFFLINE": "1"}
        with self.stderr_path.open("wb") as stderr:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [sys.executable, "-m", "textgate.cli", "serve", *args, "--config", str(folder / "serve.toml"),
                 "--port", str(self.port)],
                cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.name = name

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} server exited: {self.stderr_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} server not ready in {STARTUP_TIMEOUT_S} s: {self.stderr_path.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def servers(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    shadow_spec = root / "shadow.toml"
    shadow_spec.write_text(f'model = "{tiny_model_dir}"\nmax_length = 16\n')
    main = Server("main", root / "main", [str(tiny_model_dir)], f"""
api_keys = ["{KEY}"]
log_url = "sqlite:///{root / 'main' / 'log.db'}"
max_texts_per_request = 8
max_chars_per_text = 2000
max_body_bytes = 200000
[guard]
min_confidence = {MIN_CONFIDENCE}
low_confidence = "fallback"
fallback_label = "neutral"
[drift]
reference = {{ negative = 0.2, neutral = 0.5, positive = 0.3 }}
window = 50
""")
    shadow = Server("shadow", root / "shadow", [str(tiny_model_dir), "--shadow", str(shadow_spec)], f"""
log_url = "sqlite:///{root / 'shadow' / 'log.db'}"
max_queue_texts = 2
max_texts_per_request = 2
""")
    try:
        main.wait_ready()
        shadow.wait_ready()
        yield {"main": main, "shadow": shadow}
    finally:
        main.stop()
        shadow.stop()


@pytest.fixture(scope="module")
def main_server(servers):
    return servers["main"]


@pytest.fixture(scope="module")
def client(main_server):
    with httpx.Client(base_url=main_server.url, headers={"X-API-Key": KEY}, timeout=10) as c:
        yield c


def _metrics(url: str) -> dict[str, float]:
    """Every sample as 'name{k=v,...}' -> value."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


# --- classify -----------------------------------------------------------------------------------


def test_classify_one_text_echoes_request_id(client, main_server):
    response = client.post("/v1/classify", json={"text": "i love this movie"}, headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "req-1" == response.headers["x-request-id"]
    assert set(body["model"]) == {"fingerprint", "revision", "name"} and len(body["model"]["fingerprint"]) == 16
    (result,) = body["results"]
    assert result["model_label"] in LABELS and "scores" not in result
    assert set(result) == {"label", "score", "model_label", "status", "valid", "reasons", "truncated"}
    assert body["logged"] == "committed"
    generated = client.post("/v1/classify", json={"text": "ok"}, headers={"X-Request-ID": "bad id\twith tab"})
    assert generated.json()["request_id"] != "bad id\twith tab" and len(generated.json()["request_id"]) == 32


def test_classify_many_with_all_scores(client):
    texts = ["great game", "awful day", "meh", "the old movie tbh " * 20]
    body = client.post("/v1/classify", json={"texts": texts, "return_all_scores": True}).json()
    assert len(body["results"]) == len(texts)
    for result in body["results"]:
        assert set(result["scores"]) == set(LABELS)
        assert math.isclose(sum(result["scores"].values()), 1, abs_tol=1e-4)
        assert result["score"] == result["scores"][result["model_label"]] == max(result["scores"].values())
    assert body["results"][3]["truncated"] is True and "truncated" in body["results"][3]["reasons"]


def test_guard_statuses(client):
    body = client.post("/v1/classify", json={"texts": ["", "   ", "i love this", "bad", "sad night"],
                                             "return_all_scores": True}).json()
    empty, blank, *rest = body["results"]
    for result in (empty, blank):
        assert result["status"] == "rejected" and result["label"] is None and result["reasons"] == ["empty_text"]
    for result in rest:
        if result["score"] < MIN_CONFIDENCE:
            assert result["status"] == "fallback" and result["label"] == "neutral"
            assert "low_confidence" in result["reasons"] and result["valid"] is False
        else:
            assert result["status"] == "ok" and result["label"] == result["model_label"]
    assert any(r["status"] == "fallback" for r in rest), "expected at least one low-confidence answer"


def test_model_endpoint(client, tiny_model_dir):
    body = client.get("/v1/model").json()
    assert body["labels"] == list(LABELS)
    assert body["guard"]["min_confidence"] == MIN_CONFIDENCE and body["guard"]["fallback_label"] == "neutral"
    assert body["settings"]["effective_max_length"] == 64 and body["spec"]["truncation"] is True
    assert body["limits"]["max_texts_per_request"] == 8
    assert body["logging"] == {"enabled": True, "log_text": False, "log_ack": "committed", "log_retry_s": 10.0,
                               "text_hash": "hmac-sha256"}
    assert body["drift_reference"] == {"negative": 0.2, "neutral": 0.5, "positive": 0.3}
    assert body["shadow"] is None
    assert (body["inference"]["gather_ms"], body["inference"]["gather_texts"]) == (8.0, 16)
    assert body["inference"]["workers"] >= 1 and body["inference"]["forward"] == "packed (padding-free)"
    assert (body["limits"]["header_timeout_s"], body["limits"]["body_timeout_s"]) == (10.0, 30.0)


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_model_endpoint_shows_no_absolute_paths(client, main_server, tiny_model_dir):
    body = client.get("/v1/model").json()
    shown = list(_strings(body))
    assert not [text for text in shown if text.startswith("/") or str(tiny_model_dir) in text], shown
    assert body["name"] == body["spec"]["model"] == tiny_model_dir.name
    assert body["settings"]["resolved_model"] == tiny_model_dir.name
    answer = client.post("/v1/classify", json={"text": "i love this"}).json()
    assert answer["model"]["name"] == tiny_model_dir.name
    metrics = httpx.get(f"{main_server.url}/metrics", timeout=5).text
    assert str(tiny_model_dir) not in metrics  # model_info's label too


def test_metrics_move_after_requests(client, main_server):
    before = _metrics(main_server.url)
    client.post("/v1/classify", json={"texts": ["i love this", ""]})
    client.post("/v1/classify", json={"texts": ["x"] * 50})  # 422: counted under its status
    after = _metrics(main_server.url)
    route = "route=/v1/classify"
    assert after[f"textgate_requests_total{{{route},status=200}}"] == before.get(
        f"textgate_requests_total{{{route},status=200}}", 0) + 1
    assert after[f"textgate_requests_total{{{route},status=422}}"] >= 1
    assert after["textgate_guard_failures_total{rule=empty_text}"] == before[
        "textgate_guard_failures_total{rule=empty_text}"] + 1
    assert sum(v for k, v in after.items() if k.startswith("textgate_predictions_total")) == sum(
        v for k, v in before.items() if k.startswith("textgate_predictions_total")) + 2
    assert after["textgate_batch_size_count{}"] > before["textgate_batch_size_count{}"]
    assert after["textgate_inference_seconds_count{}"] > before["textgate_inference_seconds_count{}"]
    assert after["textgate_confidence_count{}"] >= before["textgate_confidence_count{}"] + 1
    assert after["textgate_log_written_total{}"] >= before["textgate_log_written_total{}"] + 2
    assert after["textgate_log_dropped_total{}"] == 0 and after["textgate_log_failed_total{}"] == 0
    assert after["textgate_queue_depth{}"] == 0
    assert f"textgate_request_latency_seconds_count{{{route}}}" in after
    assert 0 <= after["textgate_label_drift_chi2_pvalue{}"] <= 1 and after["textgate_label_drift_psi{}"] >= 0
    assert after["textgate_label_drift_window_size{}"] > 0
    (info,) = [k for k in after if k.startswith("textgate_model_info")]
    assert "fingerprint=" in info and after[info] == 1


# --- auth and limits ---------------------------------------------------------------------------------


def test_auth(main_server):
    url = f"{main_server.url}/v1/classify"
    payload = {"text": "good"}
    assert httpx.post(url, json=payload).status_code == 401
    assert httpx.post(url, json=payload, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.post(url, json=payload, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url, json=payload, headers={"X-API-Key": "é-non-ascii".encode("latin-1")}).status_code == 401
    assert httpx.post(url, json=payload, headers={"X-API-Key": KEY}).status_code == 200
    assert httpx.post(url, json=payload, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{main_server.url}/v1/model").status_code == 401
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert httpx.get(f"{main_server.url}{open_path}").status_code == 200, open_path


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}],
                         ids=["no-key", "wrong-key", "wrong-bearer"])
def test_the_api_key_is_checked_before_the_body(main_server, headers):
    url = f"{main_server.url}/v1/classify"
    json_headers = {**headers, "Content-Type": "application/json"}
    bodies = {
        "oversized": json.dumps({"texts": ["c" * 1000] * 240}).encode(),
        "malformed": b'{"texts": ["unterminated',
        "wrong-schema": b'{"texts": [1, 2], "unknown": true}',
        "too-many-texts": json.dumps({"texts": ["hi"] * 9}).encode(),
    }
    for name, content in bodies.items():
        response = httpx.post(url, content=content, headers=json_headers, timeout=10)
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert "API key" in response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"

    def chunks():
        for _ in range(300):
            yield b"x" * 1000

    assert httpx.post(url, content=chunks(), headers=json_headers, timeout=10).status_code == 401


@pytest.mark.parametrize("payload, status, words", [
    ({"texts": ["hi"] * 9}, 422, ["'texts'", "max_texts_per_request = 8"]),
    ({"text": "a" * 100_000}, 422, ["'text'", "max_chars_per_text = 2000"]),
    ({"texts": ["ok", "b" * 2001]}, 422, ["'texts[1]'", "max_chars_per_text"]),
    ({"texts": ["c" * 1000] * 8 * 30}, 413, ["max_body_bytes = 200000"]),
], ids=["too-many-texts", "100k-characters", "long-item", "oversized-body"])
def test_limits_are_4xx_naming_the_limit(client, payload, status, words):
    response = client.post("/v1/classify", json=payload)
    assert response.status_code == status, response.text
    assert all(word in response.json()["detail"] for word in words), response.text


def test_oversized_body_without_content_length(client):
    def chunks():
        for _ in range(300):
            yield b"x" * 1000

    response = client.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("content", [
    b'{"texts": ["unterminated',
    b'{"texts": "not a list"}',
    b'{"texts": [1, 2]}',
    b'{"text": 5}',
    b'{"text": "a", "texts": ["b"]}',
    b'{"texts": []}',
    b'{}',
    b'{"text": "a", "unknown": 1}',
    b'["a list"]',
    b'null',
    b'{"text": "caf\xc3\xa9 \xff\xfe bad utf-8"}',
    b'\xff\xfe\x00\x00',
    b'{"text": "\\ud800 lone surrogate"}',
    b'{"texts": ["ok"], "return_all_scores": "maybe"}',
], ids=["malformed-json", "texts-string", "texts-ints", "text-int", "both", "empty-list", "empty-object",
        "extra-field", "array", "null", "invalid-utf8-in-string", "invalid-utf8-bytes", "lone-surrogate",
        "bad-bool"])
def test_bad_requests_are_4xx_never_5xx(client, content):
    response = client.post("/v1/classify", content=content, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["detail"]
    assert "unterminated" not in response.text and "lone surrogate\"" not in response.text  # input not echoed


# --- the prediction log ------------------------------------------------------------------------------


def test_prediction_log_rows_hold_the_hash_not_the_text(client, main_server):
    texts = ["log me please", "and me too"]
    body = client.post("/v1/classify", json={"texts": texts}, headers={"X-Request-ID": "log-check"}).json()
    assert body["logged"] == "committed"
    with sqlite3.connect(main_server.folder / "log.db") as db:  # committed: visible to another reader
        rows = db.execute("SELECT item, text_sha256, text, status, model_label, label, reasons, model_fingerprint "
                          "FROM predictions WHERE request_id = 'log-check' ORDER BY item").fetchall()
        extra = db.execute("SELECT tokens, truncated, shadow_label, shadow_scores, descriptors FROM predictions "
                           "WHERE request_id = 'log-check' ORDER BY item").fetchall()
        version = db.execute("SELECT value FROM log_meta WHERE key = 'schema_version'").fetchone()
    assert version == ("2",)
    assert all(tokens > 0 and truncated == 0 and rest == [None, None, None] for tokens, truncated, *rest in extra)
    assert [r[0] for r in rows] == [0, 1]
    key_file = main_server.folder / "log.db.hashkey"  # created beside the log, for the owner alone
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes().strip()
    for (item, sha, text, status, model_label, label, reasons, fingerprint), result in zip(rows, body["results"]):
        assert sha == hmac.new(key, texts[item].encode(), hashlib.sha256).hexdigest() and text is None
        assert sha != hashlib.sha256(texts[item].encode()).hexdigest()  # a guessed text does not match
        # the one text hash: an audit given this key file (--hash-key-file) writes the same digest
        assert sha == text_hash(texts[item], read_hash_key(key_file, field="--hash-key-file"))
        assert (status, model_label, label) == (result["status"], result["model_label"], result["label"])
        assert reasons.split(",") == result["reasons"] if reasons else result["reasons"] == []
        assert fingerprint == body["model"]["fingerprint"]
    stderr = main_server.stderr_path.read_text()
    assert "log me please" not in stderr  # no raw text in server logs


# --- the shadow server: shadow metrics, queue overflow ---------------------------------------------------


def test_shadow_metrics_and_log(servers):
    server = servers["shadow"]
    texts = ["i love this movie so much " * 5, "bad"]  # long enough for max_length 16 to matter
    for _ in range(3):
        response = httpx.post(f"{server.url}/v1/classify", json={"texts": texts}, timeout=10)
        assert response.status_code == 200, response.text
    body = response.json()
    assert {r["status"] for r in body["results"]} <= {"ok"}  # default guard: nothing to object to
    samples = _metrics(server.url)
    assert samples["textgate_shadow_comparisons_total{}"] >= 6
    assert 0 <= samples["textgate_shadow_agreement_rate{}"] <= 1
    assert math.isclose(samples["textgate_shadow_agreement_rate{}"] + samples["textgate_shadow_flip_rate{}"], 1)
    assert samples["textgate_shadow_errors_total{}"] == 0
    pairs = {k: v for k, v in samples.items() if k.startswith("textgate_shadow_label_pairs_total")}
    assert sum(pairs.values()) == samples["textgate_shadow_comparisons_total{}"]
    assert {f"textgate_shadow_label_delta{{label={label}}}" for label in LABELS} <= set(samples)
    model = httpx.get(f"{server.url}/v1/model").json()
    assert model["shadow"]["fingerprint"] != model["fingerprint"]  # max_length is in the fingerprint
    with sqlite3.connect(server.folder / "log.db") as db:
        rows = db.execute("SELECT shadow_label, shadow_fingerprint, shadow_scores, shadow_tokens, shadow_truncated, "
                          "tokens FROM predictions WHERE request_id = ? ORDER BY item",
                          (body["request_id"],)).fetchall()
        models = dict(db.execute("SELECT fingerprint, label_names FROM log_models").fetchall())
    assert len(rows) == 2 and all(label in LABELS for label, *_ in rows)
    for label, fingerprint, scores, shadow_tokens, shadow_truncated, tokens in rows:
        assert fingerprint == model["shadow"]["fingerprint"]  # the shadow's own outputs, kept per item
        probabilities = json.loads(scores)
        assert set(probabilities) == set(LABELS) and math.isclose(sum(probabilities.values()), 1, rel_tol=1e-5)
        assert max(probabilities, key=probabilities.get) == label
        assert shadow_tokens <= 16 and shadow_tokens <= tokens
    assert rows[0][4] == 1 and rows[1][4] == 0  # max_length 16 cut only the long text
    assert {fp: tuple(json.loads(names)) for fp, names in models.items()} == {
        model["fingerprint"]: LABELS, model["shadow"]["fingerprint"]: LABELS}


def test_full_queue_answers_503_with_retry_after(servers):
    url = f"{servers['shadow'].url}/v1/classify"
    payload = {"texts": ["i love this movie so much tbh " * 3, "awful day"]}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as c:
            return await asyncio.gather(*(c.post(url, json=payload) for _ in range(48)))

    statuses: list[int] = []
    for _ in range(5):  # concurrency is timing-dependent; a few bursts make an overflow certain
        responses = asyncio.run(burst())
        statuses += [r.status_code for r in responses]
        rejected = [r for r in responses if r.status_code == 503]
        if rejected:
            assert rejected[0].headers["retry-after"] == "1" and "queue" in rejected[0].json()["detail"]
            break
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses and 200 in statuses


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(servers, tmp_path):
    server = servers["shadow"]  # no auth, so the fuzzer reaches the handlers
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
               "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
               "--max-examples", "40", "--phases", "examples,coverage,fuzzing",
               "--seed", "1", "--workers", "2", "--request-timeout", "10", "--generation-database", "none",
               "--suppress-health-check", "all"]
    result = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Tested: 5" in result.stdout and "No issues found" in result.stdout, result.stdout[-4000:]
    assert server.process.poll() is None


# --- in-process unit tests -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier(tiny_model_dir):
    from textgate.model import load_classifier, resolve_model_argument

    return load_classifier(resolve_model_argument(str(tiny_model_dir))[0])


def test_batcher_packs_within_the_budget_and_matches_predict(tiny_classifier):
    from textgate.infer import predict
    from textgate.serve.batcher import Batcher

    requests = [["i love this"], ["awful day " * 8, "meh", "ok"], ["great game tbh"] * 5, ["the old movie " * 6]]
    batches: list[int] = []
    budget = 40

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=budget, max_queue_texts=100,
                          on_batch=lambda rows, seconds: batches.append(rows))
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(texts) for texts in requests))
        finally:
            await batcher.close()

    results = asyncio.run(run())
    flat = [text for texts in requests for text in texts]
    expected = predict(tiny_classifier, flat, token_budget=budget, progress=False)
    got = np.concatenate([r.probabilities for r in results])
    np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([r.token_counts for r in results]), expected.token_counts)
    assert sum(batches) == len(flat)  # one cycle: all four requests packed together
    assert len(batches) > 1 and max(batches) <= budget // 3  # shortest text: [CLS] word [SEP]
    assert batches == sorted(batches) or batches[0] <= batches[-1]  # longest (fewest rows) first


def test_two_workers_share_the_queue_and_give_the_same_answers(tiny_classifier):
    import threading
    import time

    from textgate.infer import predict
    from textgate.serve.batcher import Batcher

    requests = [[f"i love this game {'lol ' * (i % 7)}", "meh"] for i in range(30)]
    threads: list[str] = []

    def on_batch(rows: int, seconds: float) -> None:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            time.sleep(0.2)  # hold the first worker, so the next requests must go to the other

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=1000, workers=2, on_batch=on_batch)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(requests[0]))
            await asyncio.sleep(0.05)
            rest = await asyncio.gather(*(batcher.submit(texts) for texts in requests[1:]))
            return [await first, *rest]
        finally:
            await batcher.close()

    results = asyncio.run(run())
    flat = [text for texts in requests for text in texts]
    expected = predict(tiny_classifier, flat, progress=False)
    np.testing.assert_allclose(np.concatenate([r.probabilities for r in results]), expected.probabilities, atol=1e-5)
    assert len(set(threads)) == 2


def test_two_idle_workers_split_the_queue_between_them(tiny_classifier):
    import threading

    from textgate.serve.batcher import Batcher

    batches: list[tuple[str, int]] = []

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=100, workers=2,
                          on_batch=lambda rows, seconds: batches.append((threading.current_thread().name, rows)))
        batcher.start()
        try:
            await asyncio.gather(*(batcher.submit([f"tweet number {i}"]) for i in range(32)))
        finally:
            await batcher.close()

    asyncio.run(run())
    assert sorted(rows for _, rows in batches) == [16, 16] and len({name for name, _ in batches}) == 2


@pytest.mark.parametrize("gather_ms, expected", [(60_000, [1, 5]), (0, [1, 1, 4])], ids=["gathers", "does-not"])
def test_a_free_worker_waits_for_a_fuller_batch_while_the_other_is_busy(tiny_classifier, gather_ms, expected):
    import threading

    from textgate.serve.batcher import Batcher

    sizes: list[int] = []
    release = threading.Event()

    def on_batch(rows: int, seconds: float) -> None:
        sizes.append(rows)
        if len(sizes) == 1:
            release.wait(20)  # the first worker stays busy until the other has run a batch
        else:
            release.set()

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=100, workers=2,
                          gather_ms=gather_ms, gather_texts=5, on_batch=on_batch)
        batcher.start()
        try:
            busy = asyncio.ensure_future(batcher.submit(["the first worker runs this"]))
            await asyncio.sleep(0.2)
            waiting = [asyncio.ensure_future(batcher.submit(["one more"]))]
            await asyncio.sleep(0.2)  # without gathering, the free worker runs this one alone
            waiting.append(asyncio.ensure_future(batcher.submit(["and", "four", "more", "texts"])))
            # Gathering stops at gather_texts (5 queued), not at the end of the 60 s window.
            await asyncio.wait_for(asyncio.gather(busy, *waiting), timeout=15)
        finally:
            release.set()
            await batcher.close()

    asyncio.run(run())
    assert sorted(sizes) == sorted(expected)


def test_texts_left_for_an_idle_worker_do_not_wait_to_gather(tiny_classifier):
    from textgate.serve.batcher import Batcher

    sizes: list[int] = []

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=100, workers=2,
                          gather_ms=60_000, gather_texts=64, on_batch=lambda rows, seconds: sizes.append(rows))
        batcher.start()
        try:  # the first worker takes half and leaves half: the idle one runs it at once
            await asyncio.wait_for(asyncio.gather(*(batcher.submit([f"text {i}"]) for i in range(8))), timeout=15)
        finally:
            await batcher.close()

    asyncio.run(run())
    assert sorted(sizes) == [4, 4]


def test_close_finishes_a_gathering_worker_and_a_lone_worker(tiny_classifier):
    import threading

    from textgate.serve.batcher import Batcher

    release = threading.Event()
    seen: list[int] = []

    def hold_first(rows: int, seconds: float) -> None:
        seen.append(rows)
        if len(seen) == 1:
            release.wait(20)

    async def gathering():
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=100, workers=2,
                          gather_ms=60_000, gather_texts=64, on_batch=hold_first)
        batcher.start()
        busy = asyncio.ensure_future(batcher.submit(["held"]))
        await asyncio.sleep(0.2)
        second = asyncio.ensure_future(batcher.submit(["gathered"]))  # the free worker waits for more
        await asyncio.sleep(0.2)
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.2)
        release.set()
        return await asyncio.wait_for(asyncio.gather(busy, second, closing), timeout=15)

    async def lone():  # close() before the only worker has even woken up for the queued text
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=100)
        batcher.start()
        queued = asyncio.ensure_future(batcher.submit(["queued"]))
        closing = asyncio.ensure_future(batcher.close())
        return (await asyncio.wait_for(asyncio.gather(queued, closing), timeout=15))[0]

    held, gathered, _ = asyncio.run(gathering())
    assert held.probabilities.shape == gathered.probabilities.shape == (1, 3)
    assert asyncio.run(lone()).probabilities.shape == (1, 3)


def test_an_idle_batcher_never_waits_to_gather(tiny_classifier):
    from textgate.serve.batcher import Batcher

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=4096, max_queue_texts=100, workers=2,
                          gather_ms=60_000, gather_texts=64)
        batcher.start()
        try:
            return await asyncio.wait_for(batcher.submit(["alone"]), timeout=30)
        finally:
            await batcher.close()

    assert asyncio.run(run()).probabilities.shape == (1, 3)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_worker_cores_are_disjoint_and_workers_run_pinned(tiny_classifier, monkeypatch):

    from textgate.serve import batcher as batcher_module
    from textgate.serve.batcher import Batcher, worker_cores

    allowed = sorted(os.sched_getaffinity(0))
    with monkeypatch.context() as patch:
        patch.setattr(batcher_module.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
        assert worker_cores(2, 2) == [[0, 1], [2, 3]]
        assert worker_cores(2, 1) == [[0], [1]]
        assert worker_cores(3, 2) is None  # not enough cores: no pinning
    seen: list[set[int]] = []
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")  # a user's own setting comes back after close()

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=256, max_queue_texts=10, worker_cores=[[allowed[-1]]],
                          on_batch=lambda rows, seconds: seen.append(os.sched_getaffinity(0)))
        batcher.start()
        try:
            await batcher.submit(["pinned"])
            return os.environ.get("TOKENIZERS_PARALLELISM")
        finally:
            await batcher.close()

    assert asyncio.run(run()) == "false"  # the Rust tokenizer's thread pool stays off while serving
    assert seen == [{allowed[-1]}] and os.sched_getaffinity(0) == set(allowed)
    assert os.environ.get("TOKENIZERS_PARALLELISM") == "true"
    with pytest.raises(ValueError, match="2 core sets for 1 workers"):
        Batcher(tiny_classifier, token_budget=256, max_queue_texts=10, worker_cores=[[0], [1]])
    with pytest.raises(ValueError, match="gather_ms must be >= 0.*Got -1"):
        Batcher(tiny_classifier, token_budget=256, max_queue_texts=10, gather_ms=-1)
    with pytest.raises(ValueError, match="gather_texts must be >= 1. Got 0"):
        Batcher(tiny_classifier, token_budget=256, max_queue_texts=10, gather_texts=0)
    assert Batcher(tiny_classifier, token_budget=256, max_queue_texts=10, gather_texts=64).gather_texts == 10


def test_split_threads_shares_the_cores():
    from textgate.serve.batcher import split_threads

    assert split_threads(None, cores=2) == (2, 1)
    assert split_threads(1, cores=2) == (1, 2)
    assert split_threads(None, cores=16) == (2, 8)
    assert split_threads(None, cores=1) == (1, 1)


def test_the_batcher_sets_torch_threads_while_it_runs_and_restores_them(tiny_classifier):
    import torch

    from textgate.serve.batcher import Batcher

    before = torch.get_num_threads()
    seen: list[int] = []

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=256, max_queue_texts=10, workers=2, torch_threads=1,
                          on_batch=lambda rows, seconds: seen.append(torch.get_num_threads()))
        batcher.start()
        try:
            await batcher.submit(["i love this"])
        finally:
            await batcher.close()

    asyncio.run(run())
    assert seen == [1] and torch.get_num_threads() == before


def test_batcher_rejects_when_the_queue_is_full(tiny_classifier):
    from textgate.serve.batcher import Batcher, QueueFull

    async def run():
        batcher = Batcher(tiny_classifier, token_budget=256, max_queue_texts=2)
        batcher.start()
        try:
            return await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["c"]), return_exceptions=True)
        finally:
            await batcher.close()

    first, second = asyncio.run(run())
    assert first.probabilities.shape == (2, 3)
    assert isinstance(second, QueueFull) and "at most 2" in str(second)


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 30, 101])
def test_chi2_sf_matches_scipy(dof):
    scipy_stats = pytest.importorskip("scipy.stats")
    for x in [0.0, 1e-6, 0.1, 0.5, 1, dof - 1 if dof > 1 else 0.3, dof, dof + 1, 2 * dof, 10 * dof + 50, 500]:
        assert math.isclose(chi2_sf(x, dof), scipy_stats.chi2.sf(x, dof), rel_tol=1e-9, abs_tol=1e-300), (x, dof)


def test_goodness_of_fit_and_psi_match_references():
    scipy_stats = pytest.importorskip("scipy.stats")
    counts, shares = [30, 50, 20], [0.2, 0.5, 0.3]
    statistic, p_value = chi2_goodness_of_fit(counts, shares)
    expected = scipy_stats.chisquare(counts, f_exp=[100 * s for s in shares])
    assert math.isclose(statistic, expected.statistic, rel_tol=1e-3)  # shares floored at 1e-4
    assert math.isclose(p_value, expected.pvalue, rel_tol=1e-3)
    actual = np.array(counts) / 100
    assert math.isclose(population_stability_index(counts, shares),
                        float(np.sum((actual - shares) * np.log(actual / shares))), rel_tol=1e-3)
    assert population_stability_index([20, 50, 30], shares) < 1e-6
    assert math.isnan(population_stability_index([0, 0, 0], shares))
    drift = LabelDrift({"a": 0.5, "b": 0.5}, window=4)
    drift.observe(["a", "a", "a", "a", "b", "b"])  # the window keeps the last four
    assert len(drift) == 4 and math.isclose(chi2_goodness_of_fit([2, 2], [0.5, 0.5])[1], drift.chi2_pvalue())
    drift.observe(["fallback-only"])  # a label outside the reference is a category of share 0
    assert drift.psi() > 1


@pytest.mark.parametrize("toml, field", [
    ("prot = 1", "prot"),
    ("port = 70000", "port"),
    ("log_ack = 'sometimes'", "log_ack"),
    ("max_queue_texts = 4\nmax_texts_per_request = 8", "(top level)"),
    ("[drift]\nwindow = 0", "drift.window"),
    ("[drift]\nreference = { a = -1 }", "drift.reference"),
    ("[guard]\nmin_confidence = 2", "guard.min_confidence"),
    ("[guard]\nunknown_rule = true", "guard.unknown_rule"),
    ("api_keys = ['']", "api_keys"),
    ("gather_ms = -1", "gather_ms"),
    ("gather_texts = 0", "gather_texts"),
    ("log_retry_s = -1", "log_retry_s"),
    ("header_timeout_s = 0", "header_timeout_s"),
    ("body_timeout_s = -2", "body_timeout_s"),
    ("log_hash_key = 'short'", "log_hash_key"),
    ("log_hash_key = '0123456789abcdef'\nlog_hash_key_file = 'k'", "(top level)"),
    ("log_url = 'postgresql://u@db/log'", "(top level)"),
], ids=["unknown-key", "port", "log-ack", "request-larger-than-queue", "window", "shares", "guard-value",
        "guard-key", "blank-key", "gather-ms", "gather-texts", "log-retry", "header-timeout", "body-timeout",
        "short-hash-key", "two-hash-keys", "postgres-without-hash-key"])
def test_config_errors_name_the_field(tmp_path, toml, field):
    path = tmp_path / "serve.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_serve_config(path)
    assert error.value.field == field and f"'{field}'" in str(error.value)


def test_config_defaults_keys_and_references(tmp_path):
    config = ServeConfig()
    assert (config.host, config.port, config.max_queue_texts, config.log_ack) == ("127.0.0.1", 8000, 2048, "committed")
    keyed = ServeConfig(api_keys=["a"])
    assert keyed.resolved_api_keys({"TEXTGATE_API_KEYS": " b, ,a,c"}) == ("a", "b", "c")
    assert reference_shares(DriftConfig(reference={"negative": 1, "positive": 3}), LABELS) == {
        "negative": 0.25, "neutral": 0.0, "positive": 0.75}
    with pytest.raises(ConfigError, match="does not have: happy"):
        reference_shares(DriftConfig(reference={"happy": 1.0}), LABELS)
    from textgate.predictions import Predictions, save_predictions

    save_predictions(Predictions(label_names=LABELS, predicted=np.array(["neutral", "neutral", "positive", "neutral"],
                                                                        dtype=object)), tmp_path / "ref.parquet")
    (tmp_path / "serve.toml").write_text('[drift]\nreference = "ref.parquet"\n')
    loaded = load_serve_config(tmp_path / "serve.toml")  # relative to the file
    assert reference_shares(loaded.drift, LABELS) == {"negative": 0.0, "neutral": 0.75, "positive": 0.25}
    report = {"metrics": {"label_names": list(LABELS), "confusion": [[1, 1, 0], [0, 2, 0], [0, 0, 4]]}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert reference_shares(DriftConfig(reference=str(tmp_path / "report.json")), LABELS) == {
        "negative": 0.125, "neutral": 0.375, "positive": 0.5}
    (tmp_path / "serve.toml").write_text('log_hash_key_file = "secrets/log.key"\n')
    assert load_serve_config(tmp_path / "serve.toml").log_hash_key_file == str(tmp_path / "secrets" / "log.key")
    assert (config.log_retry_s, config.header_timeout_s, config.body_timeout_s) == (10.0, 10.0, 30.0)


def test_request_timeout_is_504_and_shutdown_is_clean(tiny_classifier):
    from fastapi.testclient import TestClient

    from textgate.serve.app import create_app

    app = create_app(tiny_classifier, ServeConfig(log_url="", request_timeout_s=1e-6))
    with TestClient(app) as test_client:  # runs the lifespan: batcher start, warm-up, shutdown
        response = test_client.post("/v1/classify", json={"texts": ["i love this"] * 4})
        assert response.status_code == 504 and "request_timeout_s" in response.json()["detail"]
        assert response.headers["retry-after"] == "1"
        assert test_client.get("/healthz").json() == {"status": "ok"}
    assert app.state.service.batcher.queue_depth == 0


def test_serve_without_the_extra_names_the_install_command(monkeypatch, capsys, tiny_model_dir):
    from textgate.cli import EXIT_USAGE, main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    assert main(["serve", str(tiny_model_dir)]) == EXIT_USAGE
    assert "pip install 'textgate[serve]'" in capsys.readouterr().err


def test_readyz_503_carries_retry_after(tiny_classifier):
    from fastapi.testclient import TestClient

    from textgate.serve.app import create_app

    app = create_app(tiny_classifier, ServeConfig(log_url=""))
    response = TestClient(app).get("/readyz")  # no lifespan: never warmed up
    assert response.status_code == 503 and response.json() == {"status": "starting"}
    assert response.headers["retry-after"] == "1"


# --- non-finite model outputs ------------------------------------------------------------------------------


def test_non_finite_outputs_are_rejected_and_metrics_stay_finite(nan_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from textgate.guard import REASONS
    from textgate.model import load_classifier, resolve_model_argument
    from textgate.serve.app import create_app

    assert "non_finite" in REASONS
    classifier = load_classifier(resolve_model_argument(str(nan_model_dir))[0])
    config = ServeConfig(log_url=f"sqlite:///{tmp_path / 'log.db'}",
                         drift=DriftConfig(reference={"negative": 0.2, "neutral": 0.5, "positive": 0.3}))
    app = create_app(classifier, config)
    with TestClient(app) as test_client:
        response = test_client.post("/v1/classify", json={"texts": ["i love this", "awful day", "meh"],
                                                          "return_all_scores": True})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["logged"] == "committed"
        for result in body["results"]:
            assert (result["status"], result["valid"], result["label"], result["score"]) == (
                "rejected", False, None, None)
            assert "non_finite" in result["reasons"]
        text = test_client.get("/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    assert samples["textgate_guard_failures_total{rule=non_finite}"] == 3
    assert samples["textgate_predictions_total{label=none}"] == 3
    drift_gauges = {"textgate_label_drift_psi{}", "textgate_label_drift_chi2_pvalue{}"}  # NaN: empty window
    assert samples["textgate_label_drift_window_size{}"] == 0
    not_finite = [name for name, value in samples.items() if not math.isfinite(value) and name not in drift_gauges]
    assert not not_finite, not_finite
    assert samples["textgate_confidence_sum{}"] == 0


def test_metrics_skip_non_finite_scores():
    from textgate.serve.drift import LabelDrift
    from textgate.serve.prometheus import ServeMetrics

    metrics = ServeMetrics(model_name="m", fingerprint="f", revision=None,
                           drift=LabelDrift({"a": 0.5, "b": 0.5}, window=10))
    metrics.observe_results(["a", None, "b"], [0.75, math.nan, math.inf, -math.inf], 0, {"non_finite": 1})
    text = metrics.render()[0].decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
    assert samples["textgate_confidence_sum"] == 0.75 and samples["textgate_confidence_count"] == 1
    assert math.isfinite(samples["textgate_label_drift_psi"])


# --- slow clients: header and body read timeouts ------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(tiny_model_dir, tmp_path_factory):
    server = Server("strict", tmp_path_factory.mktemp("strict"), [str(tiny_model_dir)],
                    'log_url = ""\nheader_timeout_s = 1\nbody_timeout_s = 1\n')
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _until_closed(sock: socket.socket, trickle: bytes, bound_s: float = 60) -> bytes:
    """Send ``trickle`` a byte at a time until the server closes the connection; what it sent back.
    Fails when the connection is still open after ``bound_s`` (generous: it only has to end)."""
    deadline = time.monotonic() + bound_s
    received = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        try:
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    return received
                received += chunk
            elif trickle:
                sock.sendall(trickle[:1])
                trickle = trickle[1:]
        except (BrokenPipeError, ConnectionResetError):
            return received
    pytest.fail(f"the server kept a slow client's connection open for {bound_s} s (got {received[:80]!r})")


@pytest.mark.parametrize("opening, trickle", [
    (b"", b""),
    (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 5000),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 5000),
], ids=["silent", "trickled-header", "trickled-header-after-keep-alive"])
def test_a_slow_request_head_is_dropped(strict_server, opening, trickle):
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=10) as sock:
        sock.sendall(opening)
        received = _until_closed(sock, trickle)
    if opening.startswith(b"GET"):
        assert received.startswith(b"HTTP/1.1 200")  # the complete first request was answered


def test_a_slow_request_body_gets_408_and_is_dropped(strict_server):
    head = (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 6000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=10) as sock:
        sock.sendall(head + b'{"text": "')
        received = _until_closed(sock, b"a" * 5000)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"body_timeout_s" in received
    assert httpx.post(f"{strict_server.url}/v1/classify", json={"text": "i love this"}, timeout=10).status_code == 200


# --- the command ------------------------------------------------------------------------------------------


def test_serve_on_a_port_in_use_exits_2_before_loading_the_model(capsys, tmp_path):
    from textgate.cli import EXIT_USAGE, main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The model does not exist: the port is checked first, so the error is about the port.
        code = main(["serve", str(tmp_path / "no-such-model"), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert f"Port {port}" in err and "already in use" in err and "'port'" in err and "stop the process" in err
    assert "no-such-model" not in err
