"""InfluxDB line protocol: parser and collector throughput, as ratios measured in the same run.

    .venv/bin/python benchmarks/bench_influx.py [--lines 1000] [--rounds 5] [--requests 100] [--clients 4]

1. The parser, in this process, against a Python floor that only reads and splits the
   same body (decode each line, split it on spaces and commas): the ratio is the price
   of the grammar (escapes, typed values, bounds).
2. The collector, `footfall serve` as a subprocess, taking Homebrew-style `formula_install`
   lines on `/api/v2/write` in batches of `--lines`, against the do-nothing ASGI endpoint
   (`baseline_app.py`) on the same Uvicorn settings: the ratio is the price of parsing,
   the pipeline (schema, safety net, country) and the fsynced log. Rate limits are off.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import free_port, rss_mib, wait_for

from footfall.server.ingest.protocols import influx

APP = "bench-brew"
TOKEN = "bench-token-0123456789abcdef"
UNLIMITED = {"FOOTFALL_RATE_PER_CLIENT": "0", "FOOTFALL_RATE_PER_APP": "0", "FOOTFALL_BYTES_PER_APP": "0"}
PACKAGES = ("wget", "jq", "git", "node", "python@3.12", "openssl@3", "ffmpeg", "gh")


def make_body(lines: int) -> bytes:
    now = int(time.time())
    return "\n".join(
        f"formula_install,ci=false,default_prefix=true,developer=false,devcmdrun=false,arch=arm64,"
        f'os=Linux\\ [WSL],on_request=true version="4.4.9",os_name_and_version="Ubuntu 24.04",'
        f'package="{PACKAGES[i % len(PACKAGES)]}",tap_name="homebrew/core" {now - i}'
        for i in range(lines)
    ).encode()


def floor(body: bytes) -> int:
    """Read and split, nothing more: the least any line-protocol reader in Python does."""
    count = 0
    for raw in body.split(b"\n"):
        line = raw.decode("utf-8")
        for part in line.split(" "):
            part.split(",")
        count += 1
    return count


def best_rate(work: Callable[[bytes], object], body: bytes, lines: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work(body)
        best = min(best, time.perf_counter() - started)
    return lines / best


def load(port: int, path: str, body: bytes, requests: int, clients: int, expected: int) -> float:
    counter = iter(range(requests))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "text/plain; charset=utf-8"}
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != expected:
                failures.append(f"status {response.status}: {answer[:200]!r}")
                break
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"load failed: {failures[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1000, help="lines per body (default 1000, about 300 KB)")
    parser.add_argument("--rounds", type=int, default=5, help="parser rounds; the best counts (default 5)")
    parser.add_argument("--requests", type=int, default=100, help="requests per server (default 100)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections (default 4)")
    args = parser.parse_args()
    body = make_body(args.lines)
    parsed = influx.parse_body(body)
    assert len(parsed.points) == args.lines and not parsed.errors, parsed.errors[:3]

    floor_rate = best_rate(floor, body, args.lines, args.rounds)
    parse_rate = best_rate(influx.parse_body, body, args.lines, args.rounds)
    print(
        f"line protocol, {args.lines} Homebrew-style lines ({len(body) / args.lines:.0f} bytes each), best of {args.rounds}"
    )
    print(f"  Python floor (read and split): {floor_rate:>10,.0f} lines/s")
    print(f"  footfall parser:               {parse_rate:>10,.0f} lines/s")
    print(f"  ratio parser/floor:            {parse_rate / floor_rate:>10.2f}")

    footfall = [sys.executable, "-m", "footfall.cli"]
    with tempfile.TemporaryDirectory() as data:
        subprocess.run(
            [*footfall, "app", "add", APP, "--influx-token", TOKEN, "--data", data], check=True, capture_output=True
        )
        ff_port, base_port = free_port(), free_port()
        servers = {
            "footfall": subprocess.Popen(
                [*footfall, "serve", "--data", data, "--port", str(ff_port)],
                stdout=subprocess.DEVNULL,
                env={**os.environ, **UNLIMITED},
            ),
            "baseline": subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "baseline_app:app",
                    "--port",
                    str(base_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                cwd=Path(__file__).parent,
                stdout=subprocess.DEVNULL,
            ),
        }
        try:
            wait_for(f"http://127.0.0.1:{ff_port}/healthz")
            wait_for(f"http://127.0.0.1:{base_port}/")
            targets = {
                "baseline": (base_port, "/", 202),
                "footfall": (ff_port, "/api/v2/write?bucket=b&precision=s", 204),
            }
            for port, path, status in targets.values():
                load(port, path, body, max(args.requests // 10, 2), args.clients, status)  # warm-up
            rates = {
                name: args.requests * args.lines / load(port, path, body, args.requests, args.clients, status)
                for name, (port, path, status) in targets.items()
            }
            memory = rss_mib(servers["footfall"].pid)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print(
        f"collector, {args.requests} requests x {args.lines} lines, {args.clients} clients, on {os.cpu_count()} cores"
    )
    print(f"  baseline (do-nothing ASGI):    {rates['baseline']:>10,.0f} lines/s")
    print(f"  footfall (acknowledged):       {rates['footfall']:>10,.0f} lines/s")
    print(f"  ratio footfall/baseline:       {rates['footfall'] / rates['baseline']:>10.2f}")
    print(f"  footfall RSS after load:       {memory:>10.0f} MiB")


if __name__ == "__main__":
    main()
