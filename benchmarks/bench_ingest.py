"""Native ingestion throughput, as a ratio to a do-nothing ASGI endpoint in the same run.

    .venv/bin/python benchmarks/bench_ingest.py [--requests 400] [--batch 100] [--clients 8]

Both servers run as subprocesses on loopback with the same Uvicorn settings. Each
request posts one gzip-compressed batch, as the SDK does, over keep-alive
connections from `--clients` threads. Footfall answers only after the batch is
fsynced in its ingest log (the loader then stores it in DuckDB in bulk), so the ratio
is the price of validation, anonymisation and a durable write. The collector's rate limits and byte budgets are off (one client
sending flat out is what they stop); every other setting is the default. Also
prints the collector's resident memory after the load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import free_port, rss_mib, wait_for

REPO = Path(__file__).resolve().parents[1]
APP = "bench-tool"
# One client sending as fast as it can is what the rate limits and byte budgets exist to stop;
# this measures ingestion, so they are off here (every other setting is the default).
UNLIMITED = {"FOOTFALL_RATE_PER_CLIENT": "0", "FOOTFALL_RATE_PER_APP": "0", "FOOTFALL_BYTES_PER_APP": "0"}


def make_body(batch: int) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    events = [
        {
            "name": "command",
            "time": (now - dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "props": {"command": "build", "options": ["--fast", "--jobs"], "jobs": i % 8},
        }
        for i in range(batch)
    ]
    document = {
        "app": APP,
        "context": {
            "install": "0f8fad5bd9cb469fa16570867728950e",
            "session": "6ba7b8109dad11d180b400c04fd430c8",
            "app_version": "1.4.0",
            "platform": {
                "os": "linux",
                "os_version": "6.1",
                "arch": "x86_64",
                "runtime": "cpython",
                "runtime_version": "3.12",
            },
            "environment": {"ci": "", "container": ""},
        },
        "events": events,
    }
    return gzip.compress(json.dumps(document).encode())


def load(port: int, body: bytes, requests: int, clients: int) -> float:
    """Send `requests` posts over `clients` keep-alive connections; return the seconds taken."""
    counter = iter(range(requests))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            connection.request("POST", "/v1/batch", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 202:
                failures.append(f"status {response.status}")
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
    parser.add_argument("--requests", type=int, default=400, help="requests per server (default 400)")
    parser.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    args = parser.parse_args()

    footfall = [sys.executable, "-m", "footfall.cli"]
    body = make_body(args.batch)
    with tempfile.TemporaryDirectory() as data:
        subprocess.run([*footfall, "app", "add", APP, "--data", data], check=True, capture_output=True)
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
            results = {}
            for port in (base_port, ff_port):
                load(port, body, max(args.requests // 10, 10), args.clients)  # warm-up
            for name, port in (("baseline", base_port), ("footfall", ff_port)):
                elapsed = load(port, body, args.requests, args.clients)
                results[name] = args.requests * args.batch / elapsed
            memory = rss_mib(servers["footfall"].pid)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=30)

    ratio = results["footfall"] / results["baseline"]
    print(
        f"native ingestion, {args.requests} requests x {args.batch} events, {args.clients} clients,"
        f" gzip, on {os.cpu_count()} cores"
    )
    print(f"  baseline (do-nothing ASGI): {results['baseline']:>10,.0f} events/s")
    print(f"  footfall (acknowledged):    {results['footfall']:>10,.0f} events/s")
    print(f"  ratio footfall/baseline:    {ratio:>10.2f}")
    print(f"  footfall RSS after load:    {memory:>10.0f} MiB")


if __name__ == "__main__":
    main()
