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

from tests.clickhouse import clickhouse_server  # noqa: F401 (a fixture: Debian's clickhouse-server on loopback)
from tests.clickhouse_cluster import clickhouse_replicas, clickhouse_shards, zookeeper  # noqa: F401 (fixtures: clusters on loopback)
from tests.postgres import postgres_server  # noqa: F401 (a fixture: Debian's PostgreSQL on loopback)
from tests.stores import DEFAULT_KIND, NEEDS, STORE_FACTORIES, StoreFactory

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
            if isinstance(event, dict) and (event.get("time") is None or "2026-11-28T10" in str(event["time"])):
                event["time"] = iso(now - dt.timedelta(seconds=count - index))
    return fresh


@pytest.fixture(autouse=True, scope="session")
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test may touch the real home: HOME and every XDG directory point into a temporary folder.

    Subprocesses inherit these. A test that still writes footfall state under the real home
    fails the session at the end.
    """
    real_home = Path(os.environ.get("HOME") or Path.home())
    started = time.time()
    home = tmp_path_factory.mktemp("home")
    names = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_STATE_HOME": home / ".local" / "state",
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(path) for name, path in names.items()})
    try:
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    escaped = [
        path
        for folder in (real_home / ".config" / "footfall", real_home / ".local" / "share" / "footfall")
        if folder.is_dir()
        for path in folder.rglob("*")
        if path.is_file() and path.stat().st_mtime >= started
    ]
    if escaped:
        pytest.fail(f"tests wrote to the real home: {escaped[:5]}")


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


def start_server(data: Path, log: Path, env: dict[str, str] | None = None) -> LiveServer:
    handle = log.open("wb")
    process = subprocess.Popen(
        footfall_command("serve", "--data", str(data), "--port", "0"),
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    server_file = data / "server.json"

    def announced() -> bool:  # a killed server may have left its own server.json behind
        try:
            return bool(json.loads(server_file.read_text())["pid"] == process.pid)
        except (OSError, ValueError, KeyError):
            return False

    try:
        wait_until(lambda: announced() or process.poll() is not None, 30, "server.json")
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
    app: Any

    @property
    def token(self) -> str:
        return str(json.loads((self.data / "secrets.json").read_text())["admin_token"])

    @property
    def metrics(self) -> Any:
        return self.app.state.context.metrics

    def metric(self, name: str, **labels: str) -> float:
        return float(self.metrics.value(name, **labels))


CHROMIUM = "/usr/bin/chromium"  # Debian's; tests never download a browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; skipped when missing, failed under CI=true."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required under CI: make test installs it with apt-get")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")  # so a module's shared data set can be loaded once per store
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store the test runs on (tests/stores.py): DEFAULT_KIND, or each in turn under `@on_every_store`."""
    kind: str = getattr(request, "param", DEFAULT_KIND)
    if kind in NEEDS:
        request.getfixturevalue(NEEDS[kind])
    return kind


@pytest.fixture(scope="module")
def store_factory(store_kind: str) -> StoreFactory:
    """Makes a new, empty store of `store_kind` from a folder the test owns."""
    return STORE_FACTORIES[store_kind]


@pytest.fixture
def app_server_factory(tmp_path: Path, store_factory: StoreFactory) -> Iterator[Any]:
    """Start `create_app` on a real Uvicorn server in a thread, with a new store of `store_kind`
    (a DuckDB file, or a ClickHouse database under `@on_every_store`: tests/stores.py).

    `app_server_factory(store=None, **settings)`; every server started is stopped after the test.
    """
    import uvicorn

    from footfall.server.edge.app import create_app
    from footfall.server.operator.serving import bind
    from footfall.server.settings import Settings

    running: list[tuple[Any, threading.Thread, Any, Any]] = []

    def start(store: Any = None, **settings: Any) -> InThreadServer:
        data = tmp_path / f"data{len(running)}"
        data.mkdir()
        store = store or store_factory(data)
        store.add_app(GOLDEN_APP)
        sock = bind("127.0.0.1", 0)
        app = create_app(Settings(data=data, **settings), store)
        config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock, store))
        wait_until(lambda: server.started, 15, "uvicorn to start")
        return InThreadServer(f"http://127.0.0.1:{sock.getsockname()[1]}", store, data, app)

    yield start
    for server, thread, sock, store in running:
        server.should_exit = True
        thread.join(15)
        sock.close()
        store.close()


@pytest.fixture
def app_server(app_server_factory: Any) -> InThreadServer:
    server: InThreadServer = app_server_factory()
    return server


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable from the developer's shell may switch analytics off or on."""
    for name in list(os.environ):
        if name in ("DO_NOT_TRACK", "FOOTFALL_DEBUG", "CI") or name.startswith("FOOTFALL_"):
            monkeypatch.delenv(name)


class CollectorStub:
    """A real HTTP server on loopback that counts requests and answers as told.

    `mode` is "ok" (202), "error" (500), "garbage" (not HTTP at all), "hang"
    (accepts, never answers), "slow" (answers after `delay` seconds), or a list of
    statuses to answer in turn (then 202), with `retry_after` sent on 429 and 503.
    """

    def __init__(self, mode: Any = "ok", delay: float = 2.0, retry_after: str | None = None) -> None:
        import http.server
        import socketserver

        self.mode = mode
        self.delay = delay
        self.retry_after = retry_after
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with stub._lock:
                    stub.requests.append((self.path, body, dict(self.headers)))
                    status = stub._next_status()
                if status == "hang":
                    stub._stop.wait(30)
                    return
                if status == "garbage":
                    self.wfile.write(b"\x00\xffnot http at all\r\n\r\n")
                    return
                if status == "slow":
                    time.sleep(stub.delay)
                    status = 202
                self.send_response(int(status))
                if stub.retry_after and status in (429, 503):
                    self.send_header("Retry-After", stub.retry_after)
                reply = b'{"accepted": 1, "rejected": 0, "results": [], "deleted": 3}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _next_status(self) -> Any:
        if isinstance(self.mode, list):
            return self.mode.pop(0) if self.mode else 202
        return {"ok": 202, "error": 500}.get(self.mode, self.mode)

    @property
    def events(self) -> list[dict[str, Any]]:
        import gzip as gz

        with self._lock:
            bodies = [b for path, b, _ in self.requests if path == "/v1/batch"]
        return [e for b in bodies for e in json.loads(gz.decompress(b))["events"]]

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def collector_stub() -> Iterator[Any]:
    """Make stubs with `collector_stub(mode=...)`; all are closed after the test."""
    made: list[CollectorStub] = []

    def make(mode: Any = "ok", **kwargs: Any) -> CollectorStub:
        stub = CollectorStub(mode, **kwargs)
        made.append(stub)
        return stub

    yield make
    for stub in made:
        stub.close()


def sdk_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a host process: its own config dir, no opt-outs."""
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "FOOTFALL_DEBUG", "CI")}
    env = {k: v for k, v in env.items() if not k.startswith("FOOTFALL_") and k not in ("GITHUB_ACTIONS",)}
    env["XDG_CONFIG_HOME"] = str(home)
    env.update(extra)
    return env


def seed_notice_shown(config_home: Path, app: str, version: int = 1) -> None:
    directory = config_home / "footfall"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{app}.json").write_text(json.dumps({"notice_version": version}))


def run_host(script: str, env: dict[str, str], timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a host program as a whole process; returns the result and its wall time."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    return result, time.monotonic() - started
