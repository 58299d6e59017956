"""Real Locust, headless for a few seconds against a loopback target, reporting to a real collector."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import LiveServer, footfall_command, sdk_env, seed_notice_shown

LOCUSTFILE = """
import os
from locust import HttpUser, constant, task

import footfall.integrations.locust

footfall.integrations.locust.install(endpoint=os.environ["FOOTFALL_ENDPOINT"])


class Visitor(HttpUser):
    wait_time = constant(0.2)

    @task
    def index(self):
        self.client.get("/")
"""


@pytest.fixture
def target() -> Iterator[str]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_locust_run_is_reported(tmp_path: Path, live_server: LiveServer, target: str) -> None:
    subprocess.run(
        footfall_command("app", "add", "locust", "--data", str(live_server.data)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    seed_notice_shown(tmp_path / "config", "locust")
    env = sdk_env(tmp_path / "config", FOOTFALL_ENDPOINT=live_server.url)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "locustfile.py",
        "--headless",
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "3s",
        "--host",
        target,
        "--only-summary",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert live_server.stop() == 0

    store = DuckDBStore(live_server.data / "footfall.duckdb")
    try:
        rows = store.query("SELECT name, app_version, props FROM events WHERE app = 'locust' ORDER BY time").rows
    finally:
        store.close()
    assert [row[0] for row in rows] == ["start", "stop"]
    # Never `import locust` here: it would monkey-patch the test process with gevent.
    assert {row[1] for row in rows} == {importlib.metadata.version("locust")}
    start, stop = (json.loads(row[2]) for row in rows)
    assert start == {
        "mode": "standalone",
        "headless": True,
        "users": "1-9",
        "spawn_rate": "1-9",
        "run_time": "1-10s",
        "options": [
            "--headless",
            "--host",
            "--locustfile",
            "--only-summary",
            "--run-time",
            "--spawn-rate",
            "--users",
        ],
    }
    assert stop["mode"] == "standalone" and stop["outcome"] == "ok" and stop["duration"] in ("1-10s", "10-60s")
    assert target not in json.dumps([start, stop]), "option values never leave"
