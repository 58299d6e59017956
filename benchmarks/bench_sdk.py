"""The SDK against other analytics clients, each as whole processes against loopback servers.

    .venv/bin/python benchmarks/bench_sdk.py      (needs: pip install -e '.[bench]')

Measured side by side in one run, with each library's defaults:
- import: the time `import X` adds to a bare interpreter (best of 15);
- track: the cost of one call on the host's thread (best of 3 runs of 1,000 calls);
- exit: a process that records one event and exits, against a fast server, a refused
  port, and a black hole that accepts connections and never answers; the time it adds
  to a bare interpreter, or "killed" when it still ran after 10 s;
- kept: of 1,000 events recorded just before exit, how many reached a fast server
  and a server that answers in 200 ms. For Footfall also: how many had arrived once
  the next run (which records one event) had delivered the spool.

"inline requests" is the style Docker-Locust used: a synchronous `requests.post`
with no timeout, tried three times, inside try/except.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILL_AFTER_S = 10.0
MARKER = re.compile(rb"evt-\d{6}")

CLIENTS: dict[str, tuple[str, str, str]] = {
    # name: (import statement, setup, one tracking call using `i`)
    "footfall": (
        "import footfall",
        "import footfall\nc = footfall.init(app='bench', endpoint=URL)",
        "c.track('bench_evt', marker=f'evt-{i:06d}')",
    ),
    "posthog": (
        "import posthog",
        "from posthog import Posthog\nc = Posthog('phc_bench', host=URL)",
        "c.capture('bench_evt', distinct_id='u1', properties={'marker': f'evt-{i:06d}'})",
    ),
    "segment": (
        "import segment.analytics",
        "import segment.analytics as c\nc.write_key = 'bench'\nc.host = URL",
        "c.track('u1', 'bench_evt', {'marker': f'evt-{i:06d}'})",
    ),
    "sentry-sdk": (
        "import sentry_sdk",
        "import sentry_sdk\nsentry_sdk.init(dsn=URL.replace('http://', 'http://public@') + '/1')",
        "sentry_sdk.capture_message(f'evt-{i:06d}')",
    ),
    "inline requests": (
        "import requests",
        textwrap.dedent("""
            import requests
            def track(i):
                for attempt in range(3):
                    try:
                        hit = {'v': '1', 't': 'event', 'ea': f'evt-{i:06d}'}
                        requests.post(URL + '/collect', data=hit)
                        return
                    except Exception:
                        pass
        """),
        "track(i)",
    ),
}


class CountingServer:
    """Answers every POST with 200 (after `delay`), and remembers every marker it saw."""

    def __init__(self, delay: float = 0.0) -> None:
        self.markers: set[bytes] = set()
        self.delay = delay
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip" or body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                elif encoding == "br":  # sentry-sdk compresses with brotli when it can
                    import brotli

                    body = brotli.decompress(body)
                server.markers.update(MARKER.findall(body))
                if server.delay:
                    time.sleep(server.delay)
                reply = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                return None  # clients killed mid-request are part of the benchmark

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def black_hole() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)  # connections complete in the kernel and are never accepted
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def environment(config_home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "DO_NOT_TRACK", "CI")}
    env = {k: v for k, v in env.items() if not k.startswith("FOOTFALL_")}
    env["XDG_CONFIG_HOME"] = config_home
    return env


def fresh_config() -> str:
    """A config dir whose user has seen Footfall's notice (first runs send nothing)."""
    home = tempfile.mkdtemp(prefix="ffbench-")
    os.makedirs(os.path.join(home, "footfall"))
    with open(os.path.join(home, "footfall", "bench.json"), "w") as handle:
        json.dump({"notice_version": 1}, handle)
    return home


def run(code: str, env: dict[str, str]) -> tuple[float, bool, str]:
    """Wall seconds, whether it finished by itself, and its stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        out, _ = process.communicate(timeout=KILL_AFTER_S)
        return time.perf_counter() - started, True, out
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return KILL_AFTER_S, False, ""


def best_wall(code: str, env: dict[str, str], runs: int = 15) -> float:
    return min(run(code, env)[0] for _ in range(runs))


def script(name: str, url: str, body: str) -> str:
    _, setup, _ = CLIENTS[name]
    return f"URL = {url!r}\n{setup}\n{body}"


def measure(name: str, bare: float, fast: CountingServer, slow: CountingServer, hole: str) -> dict[str, str]:
    imports, _, call = CLIENTS[name]
    row: dict[str, str] = {}
    env = environment(fresh_config())
    run(imports, env)  # writes bytecode, as an installed package has
    row["import"] = f"{(best_wall(imports, env) - bare) * 1000:.0f} ms"

    calls = 50 if name == "inline requests" else 1000
    timing = textwrap.dedent(f"""
        import time
        for i in range(20):
            {call}
        started = time.perf_counter()
        for i in range({calls}):
            {call}
        print((time.perf_counter() - started) / {calls} * 1e6)
    """)
    costs = [float(run(script(name, fast.url, timing), environment(fresh_config()))[2] or "nan") for _ in range(3)]
    row["track"] = f"{min(costs):,.1f} µs"

    for label, url in (("fast", fast.url), ("refused", refused_url()), ("black hole", hole)):
        wall, finished, _ = run(script(name, url, "i = 0\n" + call), environment(fresh_config()))
        row[f"exit, {label}"] = f"{wall - bare:.2f} s" if finished else "killed at 10 s"

    for label, server in (("fast", fast), ("200 ms", slow)):
        server.markers.clear()
        config = fresh_config()
        loop = f"for i in range(1000):\n    {call}\n"
        wall, finished, _ = run(script(name, server.url, loop), environment(config))
        kept = len(server.markers)
        cell = f"{kept:,}" + ("" if finished else " (killed)")
        if name == "footfall":
            run(script(name, server.url, "i = 999999\n" + call), environment(config))  # the next run
            cell += f" → {len(server.markers) - 1:,} after the next run"
        row[f"kept, {label}"] = cell
    return row


def main() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "footfall")], check=True)
    fast, slow = CountingServer(), CountingServer(delay=0.2)
    hole_socket, hole = black_hole()
    bare = best_wall("pass", environment(fresh_config()))
    columns = [
        "import",
        "track",
        "exit, fast",
        "exit, refused",
        "exit, black hole",
        "kept, fast",
        "kept, 200 ms",
    ]
    rows = {}
    for name in CLIENTS:
        print(f"measuring {name} ...", file=sys.stderr)
        rows[name] = measure(name, bare, fast, slow, hole)
    hole_socket.close()
    print(f"bare interpreter: {bare * 1000:.0f} ms; Python {sys.version.split()[0]}; {os.cpu_count()} cores\n")
    print("| client | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(row[c] for c in columns) + " |")


if __name__ == "__main__":
    main()
