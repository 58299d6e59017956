"""The collector against nginx returning 204, both on loopback, loaded by wrk in one run.

    .venv/bin/python benchmarks/bench_collector.py [--seconds 8]

Needs Debian's nginx and wrk (apt-get install nginx wrk). Measures:
- native batched ingestion: POST /v1/batch, 100 gzip events per request, in events/s;
- GA v1 single hits: POST /collect, one form-encoded hit per request, in hits/s;
- the collector's resident memory (RSS) sampled through a sustained native load.
Footfall answers only after a commit. Rate limits are off for the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from common import free_port, rss_mib, wait_for

APP = "bench-tool"
TID = "UA-424242-1"
NGINX_CONF = """
daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {prefix}/body;
  server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }} }}
"""
LUA = """
wrk.method = "POST"
local f = io.open("{body}", "rb"); wrk.body = f:read("*all"); f:close()
wrk.headers["Content-Type"] = "{content_type}"
{extra}
"""


def native_body(events: int) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    batch = {
        "app": APP,
        "context": {
            "install": "0f8fad5bd9cb469fa16570867728950e",
            "session": "6ba7b8109dad11d180b400c04fd430c8",
            "app_version": "1.4.0",
            "platform": {"os": "linux", "os_version": "6.1"},
            "environment": {"ci": "", "container": ""},
        },
        "events": [
            {
                "name": "command",
                "time": (now - dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                "props": {"command": "build", "options": ["--fast"], "jobs": i % 8},
            }
            for i in range(events)
        ],
    }
    return gzip.compress(json.dumps(batch).encode())


def wrk(url: str, script: Path, seconds: int) -> float:
    """Requests per second; every non-2xx answer makes the run fail."""
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{url} answered non-2xx:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="seconds per measurement (default 8)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install nginx wrk")
    work = Path(tempfile.mkdtemp(prefix="ffbench-"))
    footfall = [sys.executable, "-m", "footfall.cli"]
    data = work / "data"
    subprocess.run(
        [*footfall, "app", "add", APP, "--ga-tid", TID, "--data", str(data)],
        check=True,
        capture_output=True,
    )
    ff_port, nginx_port = free_port(), free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(prefix=work, port=nginx_port))
    env = {**os.environ, "FOOTFALL_RATE_PER_CLIENT": "0", "FOOTFALL_RATE_PER_APP": "0"}
    processes = {
        "nginx": subprocess.Popen(
            ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)], stderr=subprocess.DEVNULL
        ),
        "footfall": subprocess.Popen(
            [*footfall, "serve", "--data", str(data), "--port", str(ff_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    }
    try:
        wait_for(f"http://127.0.0.1:{ff_port}/healthz")
        wait_for(f"http://127.0.0.1:{nginx_port}/")
        (work / "native.bin").write_bytes(native_body(100))
        (work / "hit.txt").write_bytes(
            b"v=1&tid=" + TID.encode() + b"&cid=35009a79-1a05-49d7&t=event&ec=cli&ea=run&el=x&ev=3"
        )
        scripts = {
            "native": work / "native.lua",
            "ga": work / "ga.lua",
        }
        scripts["native"].write_text(
            LUA.format(
                body=work / "native.bin",
                content_type="application/json",
                extra='wrk.headers["Content-Encoding"] = "gzip"',
            )
        )
        scripts["ga"].write_text(
            LUA.format(body=work / "hit.txt", content_type="application/x-www-form-urlencoded", extra="")
        )
        results: dict[str, float] = {}
        for name, path, script in (("native", "/v1/batch", "native"), ("ga", "/collect", "ga")):
            results[f"{name} nginx"] = wrk(f"http://127.0.0.1:{nginx_port}{path}", scripts[script], args.seconds)
            results[f"{name} footfall"] = wrk(f"http://127.0.0.1:{ff_port}{path}", scripts[script], args.seconds)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                samples.append(rss_mib(processes["footfall"].pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        sustained = wrk(f"http://127.0.0.1:{ff_port}/v1/batch", scripts["native"], max(args.seconds * 2, 15))
        done.set()
        sampler.join()
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    native_ratio = results["native footfall"] / results["native nginx"]
    ga_ratio = results["ga footfall"] / results["ga nginx"]
    print(f"collector vs nginx 204, wrk -t2 -c16 {args.seconds}s each, loopback, {os.cpu_count()} cores\n")
    print("| measure | nginx 204 | footfall | ratio |")
    print("|---|---|---|---|")
    print(
        f"| native, 100 events/request | {results['native nginx'] * 100:,.0f} events/s"
        f" | {results['native footfall'] * 100:,.0f} events/s | {native_ratio:.3f} |"
    )
    print(
        f"| GA v1, one hit/request | {results['ga nginx']:,.0f} hits/s | {results['ga footfall']:,.0f} hits/s"
        f" | {ga_ratio:.3f} |"
    )
    print(
        f"\nsustained native load: {sustained * 100:,.0f} events/s for {max(args.seconds * 2, 15)} s;"
        f" collector RSS min {min(samples):.0f} MiB, max {max(samples):.0f} MiB, last {samples[-1]:.0f} MiB"
    )


if __name__ == "__main__":
    main()
