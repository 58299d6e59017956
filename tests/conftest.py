"""Shared fixtures: real servers on loopback, real DuckDB files, the golden payloads."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "contract" / "golden"
GOLDEN_APP = "golden-tool"


def load_golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def with_fresh_times(batch: Any) -> Any:
    """Golden times are fixed; move them (and null times) to just before now, in order."""
    fresh = copy.deepcopy(batch)
    if isinstance(fresh, dict) and isinstance(fresh.get("events"), list):
        now = dt.datetime.now(dt.timezone.utc)
        count = len(fresh["events"])
        for index, event in enumerate(fresh["events"]):
            if isinstance(event, dict) and (
                event.get("time") is None or "2026-11-28T10" in str(event["time"])
            ):
                event["time"] = iso(now - dt.timedelta(seconds=count - index))
    return fresh


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class LiveServer:
    url: str
    data: Path
    process: subprocess.Popen[bytes]
    log: Path
    log_handle: BinaryIO

    @property
    def token(self) -> str:
        return str(json.loads((self.data / "secrets.json").read_text())["admin_token"])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_handle.close()
        return self.process.returncode


def footfall_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "footfall.cli", *args]


def start_server(data: Path, log: Path) -> LiveServer:
    handle = log.open("wb")
    process = subprocess.Popen(
        footfall_command("serve", "--data", str(data), "--port", "0"),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    server_file = data / "server.json"
    try:
        wait_until(lambda: server_file.exists() or process.poll() is not None, 30, "server.json")
        if process.poll() is not None:
            raise AssertionError(f"footfall serve exited: {log.read_text()}")
        url = json.loads(server_file.read_text())["url"]
        wait_until(lambda: healthy(url), 30, "/healthz")
    except BaseException:
        process.kill()
        process.wait()
        handle.close()
        raise
    return LiveServer(url, data, process, log, handle)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """`footfall serve` as a real subprocess on a free loopback port."""
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class InThreadServer:
    url: str
    store: Any
    data: Path

    @property
    def token(self) -> str:
        return str(json.loads((self.data / "secrets.json").read_text())["admin_token"])


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[InThreadServer]:
    """`create_app` on a real Uvicorn server in a thread, with a real DuckDB file."""
    import uvicorn

    from footfall.server.serving import bind
    from footfall.server.settings import Settings
    from footfall.server.stores.duckdb import DuckDBStore
    from footfall.server.web import create_app

    data = tmp_path / "data"
    data.mkdir()
    store = DuckDBStore(data / "footfall.duckdb")
    store.add_app(GOLDEN_APP)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(
        create_app(Settings(data=data), store), log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 15, "uvicorn to start")
        yield InThreadServer(f"http://127.0.0.1:{sock.getsockname()[1]}", store, data)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        store.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable from the developer's shell may switch analytics off or on."""
    for name in list(os.environ):
        if name in ("DO_NOT_TRACK", "FOOTFALL_DEBUG", "CI") or name.startswith("FOOTFALL_"):
            monkeypatch.delenv(name)
