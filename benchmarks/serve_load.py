"""Load test: textgate's server vs a naive FastAPI + transformers.pipeline app, same model,
loopback only, bounded in time; then a soak of textgate's server for memory growth.

    .venv/bin/python benchmarks/serve_load.py [--seconds 20] [--soak-seconds 300] [--clients 1 8 32]
        [--client raw|httpx] [--write]

For 1, 8 and 32 concurrent clients (each sends one tweet per request, back to back, for
--seconds), both servers are measured in the same run, one after the other at each level:
throughput (texts/s) and p50/p99 request latency. Target at 32 clients: textgate >= 3x the
naive throughput with a lower p99. The soak runs textgate at 8 clients for --soak-seconds and
reports the server's RSS at start and end (target: within 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_line
from markdown_section import replace_section

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "tweet-sentiment"
BIN = Path(sys.executable).parent
LEVELS = (1, 8, 32)
MARK_START, MARK_END = "<!-- serve-load:start -->", "<!-- serve-load:end -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(command: list[str], port: int, *, timeout: float = 180):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    try:
        wait_ready(port, process, timeout)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_ready(port: int, process: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


async def load(port: int, texts: list[str], clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = worker
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await http.post("/v1/classify", json={"texts": [texts[i % len(texts)]]})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            i += clients

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(w, http) for w in range(clients)))
        elapsed = time.perf_counter() - started
    return _summary(clients, latencies, errors, elapsed)


async def load_raw(port: int, texts: list[str], clients: int, seconds: float) -> dict:
    """The same closed loop as :func:`load` over raw keep-alive HTTP/1.1 connections.

    The generator shares the 2 cores with the server under test; httpx's pure-Python client
    costs ~0.37 of a core at 32 clients, this one a fraction of that, so less of what is
    measured is the generator's own CPU use. Both servers are measured with the same client."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    bodies = [json.dumps({"texts": [text]}).encode() for text in texts]

    async def client(worker: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = worker
        try:
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                started = time.perf_counter()
                writer.write(b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":", 1)[1] for line in head.lower().split(b"\r\n")
                                   if line.startswith(b"content-length:")))
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                i += clients
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(clients)))
    return _summary(clients, latencies, errors, time.perf_counter() - started)


def _summary(clients: int, latencies: list[float], errors: int, elapsed: float) -> dict:
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "errors": errors,
            "texts_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--soak-seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, nargs="+", default=list(LEVELS),
                        help="concurrency levels to measure (the verdict uses the largest)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: raw keep-alive sockets (light) or httpx (~0.4 core at 32 clients)")
    parser.add_argument("--serve-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a serve.toml line for textgate's server, e.g. gather_ms=0 (ablations)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    texts = [json.loads(line)["text"] for line in (DEMO / "test.jsonl").read_text().splitlines()[:4000]]
    spec = str(DEMO / "model.toml")
    work = Path(tempfile.mkdtemp(prefix="textgate-load-"))
    options = "".join(f"{option}\n" for option in args.serve_option)
    (work / "serve.toml").write_text(f'log_url = "sqlite:///{work}/log.db"\nmax_queue_texts = 4096\n{options}')
    textgate_port, naive_port = free_port(), free_port()
    textgate_cmd = [str(BIN / "textgate"), "serve", spec, "--config", str(work / "serve.toml"),
                    "--port", str(textgate_port)]
    naive_cmd = [sys.executable, str(REPO / "benchmarks" / "naive_server.py"), spec, str(naive_port)]
    generate = load_raw if args.client == "raw" else load
    env_note = (f"{machine_line()}, loopback, load generator ({args.client} client) in the same machine, "
                "sharing its cores")
    result: dict = {"date": dt.date.today().isoformat(), "machine": env_note, "seconds_per_level": args.seconds,
                    "serve_options": args.serve_option, "levels": []}
    for clients in sorted(args.clients):
        row = {"clients": clients}
        for name, command, port in (("naive", naive_cmd, naive_port), ("textgate", textgate_cmd, textgate_port)):
            with server(command, port):
                asyncio.run(generate(port, texts, clients, 3))  # warm-up
                row[name] = asyncio.run(generate(port, texts, clients, args.seconds))
            print(f"{clients} clients {name}: {row[name]}", file=sys.stderr)
        row["throughput_ratio"] = round(row["textgate"]["texts_per_s"] / row["naive"]["texts_per_s"], 2)
        result["levels"].append(row)
    with server(textgate_cmd, textgate_port) as process:
        asyncio.run(generate(textgate_port, texts, 8, 10))
        start_rss = rss_mb(process.pid)
        soak = asyncio.run(generate(textgate_port, texts, 8, args.soak_seconds))
        end_rss = rss_mb(process.pid)
    result["soak"] = {"seconds": args.soak_seconds, "clients": 8, "requests": soak["requests"],
                      "errors": soak["errors"], "rss_start_mb": round(start_rss, 1), "rss_end_mb": round(end_rss, 1),
                      "rss_change": round(end_rss / start_rss - 1, 4)}
    top = result["levels"][-1]  # the target is for 32 clients, the default top level
    result["verdict"] = {
        f"{top['clients']} clients: >= 3x naive throughput": bool(top["throughput_ratio"] >= 3),
        f"{top['clients']} clients: lower p99 than naive": bool(top["textgate"]["p99_ms"] < top["naive"]["p99_ms"]),
        "soak RSS flat within 10%": bool(abs(result["soak"]["rss_change"]) <= 0.10),
    }
    print(json.dumps(result, indent=2))
    if args.write:
        write_section(result, " ".join([".venv/bin/python", "benchmarks/serve_load.py", *sys.argv[1:]]))


def write_section(r: dict, command: str) -> None:
    lines = [MARK_START, f"Measured {r['date']}: {r['machine']}; {r['seconds_per_level']:g} s per level, one "
             "tweet per request, demo classifier (float32).", "", f"Command: `{command}`", "",
             "| clients | naive texts/s | naive p50 / p99 ms | textgate texts/s | textgate p50 / p99 ms | ratio |",
             "|---|---|---|---|---|---|"]
    for row in r["levels"]:
        n, t = row["naive"], row["textgate"]
        lines.append(f"| {row['clients']} | {n['texts_per_s']} | {n['p50_ms']} / {n['p99_ms']} | {t['texts_per_s']} | "
                     f"{t['p50_ms']} / {t['p99_ms']} | {row['throughput_ratio']}x |")
    s = r["soak"]
    lines += ["", f"Soak: {s['seconds']:g} s at {s['clients']} clients, {s['requests']:,} requests, {s['errors']} errors; "
              f"server RSS {s['rss_start_mb']} MB -> {s['rss_end_mb']} MB ({100 * s['rss_change']:+.1f}%).", "",
              "Targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in r["verdict"].items()) + ".",
              MARK_END]
    replace_section(lines, start=MARK_START, end=MARK_END, heading="## Serving load (issue 4)")


if __name__ == "__main__":
    main()
