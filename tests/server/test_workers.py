"""`footfall serve --workers 2` end to end: real processes on loopback, a real DuckDB file.

Each request opens a fresh connection, so the kernel spreads them over the owner and the
worker; the log folder is watched during the load to show that both took events.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import http.client
import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from footfall.server.edge.app import build_context
from footfall.server.edge.forwarding import OwnerClient, OwnerView, Reporter
from footfall.server.edge.internal import add_report, registry_snapshot
from footfall.server.errors import Backpressure, StoreUnavailable
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.segments import SegmentLog
from footfall.server.settings import Settings
from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import LiveServer, footfall_command, start_server, wait_until

TID = "UA-7-1"
# The limits are off here: these tests send hundreds of requests from one address.
WORKERS_ENV = {
    "FOOTFALL_WORKERS": "2",
    "FOOTFALL_RATE_PER_CLIENT": "0",
    "FOOTFALL_RATE_PER_APP": "0",
    "FOOTFALL_BYTES_PER_APP": "0",
}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a fresh connection (so each may land on any process)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def send_batch(url: str, app: str, markers: list[str], install: str = "install-1", source: str = "127.0.0.1") -> int:
    body = json.dumps(
        {
            "app": app,
            "context": {"install": install},
            "events": [{"name": "tick", "time": now_iso(), "props": {"marker": m}} for m in markers],
        }
    ).encode()
    return request(url, "POST", "/v1/batch", body, {"Content-Type": "application/json"}, source)[0]


def send_hit(url: str, marker: str) -> int:
    body = urllib.parse.urlencode(
        {"v": "1", "tid": TID, "cid": "555.1", "t": "event", "ec": "c", "ea": "a", "el": marker}
    )
    return request(url, "POST", "/collect", body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})[0]


def add_app(data: Path, app: str, *extra: str) -> None:
    subprocess.run(footfall_command("app", "add", app, "--data", str(data), *extra), check=True, capture_output=True)


def stored_markers(data: Path) -> collections.Counter[str]:
    """How often each marker (a native `marker` property, a GA `el` label) is stored (warm-up events aside)."""
    store = DuckDBStore(data / "footfall.duckdb")
    try:
        rows = store.query_now("SELECT props FROM events WHERE app != 'warmup'").rows
    finally:
        store.close()
    counts: collections.Counter[str] = collections.Counter()
    for (props,) in rows:
        document = json.loads(props)
        counts[document.get("marker") or document.get("label") or ""] += 1
    return counts


def worker_pids(data: Path) -> list[int]:
    """The ingest worker processes serving `data` (their command line names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"footfall.server.operator.worker" in command and any(str(data).encode() in part for part in command):
            pids.append(int(entry.name))
    return pids


class FolderWatch:
    """Records which worker numbers name the log's segments while a load runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            try:
                names = os.listdir(self.folder)
            except OSError:
                continue
            self.seen.update(name.split("-")[1] for name in names if name.endswith((".open", ".seg")))

    def __enter__(self) -> FolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_load(url: str, threads: int, requests_each: int, prefix: str, stop: threading.Event | None = None) -> list[str]:
    """Native batches and GA hits from `threads` threads, each on fresh connections; the acknowledged markers."""
    acknowledged: list[str] = []
    lock = threading.Lock()

    def load(thread: int) -> None:
        for n in range(requests_each):
            if stop is not None and stop.is_set():
                return
            try:
                if n % 2:
                    markers = [f"{prefix}-{thread}-{n}-{i}" for i in range(3)]
                    ok = send_batch(url, "demo", markers) == 202
                else:
                    markers = [f"{prefix}-{thread}-{n}-ga"]
                    ok = send_hit(url, markers[0]) == 200
            except OSError:
                return  # the server is gone: never acknowledged
            if ok:
                with lock:
                    acknowledged.extend(markers)

    workers = [threading.Thread(target=load, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return acknowledged


def wait_for_worker(server: LiveServer) -> None:
    """Until the ingest worker takes connections (it starts a second or two after the owner).

    Each warm-up batch comes from its own address (127.0.1.x), so a per-client limit a test
    sets is still whole for 127.0.0.1.
    """
    with FolderWatch(server.data / "log") as watch:
        deadline = time.monotonic() + 30
        n = 0
        while "01" not in watch.seen:
            assert time.monotonic() < deadline, "the ingest worker took no connection in 30 s"
            n += 1
            send_batch(
                server.url, "warmup", [f"warmup-{time.monotonic_ns()}"], source=f"127.0.{1 + n // 250}.{n % 250 + 1}"
            )
            time.sleep(0.01)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[LiveServer]:
    data = tmp_path / "data"
    add_app(data, "demo", "--ga-tid", TID)
    add_app(data, "warmup")
    server = start_server(data, tmp_path / "server.log", WORKERS_ENV)
    try:
        wait_for_worker(server)
        yield server
    finally:
        server.stop()


def summary_events(server: LiveServer, app: str) -> int:
    status, _, body = request(server.url, "GET", f"/api/v1/apps/{app}/summary", headers=auth(server))
    assert status == 200, body
    return int(json.loads(body)["events"])


def auth(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def test_both_processes_take_events_and_every_read_sees_them_at_once(two_workers: LiveServer) -> None:
    server = two_workers
    with FolderWatch(server.data / "log") as watch:
        acknowledged = run_load(server.url, threads=6, requests_each=40, prefix="e2e")
    assert watch.seen >= {"00", "01"}, f"segments seen only of workers {watch.seen}"
    assert len(acknowledged) == 6 * 20 * 3 + 6 * 20
    # Read-your-writes right after the last acknowledgement, through whichever process answers.
    assert summary_events(server, "demo") == len(acknowledged)
    report = subprocess.run(
        footfall_command("report", "demo", "--data", str(server.data), "--format", "json"),
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(report.stdout)["events"] == len(acknowledged)

    # /metrics counts what both processes acknowledged (a worker reports every second).
    def accepted() -> float:
        text = request(server.url, "GET", "/metrics")[2].decode()
        return sum(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith("footfall_events_accepted_total{")
        )

    warmup = summary_events(server, "warmup")
    wait_until(lambda: accepted() == len(acknowledged) + warmup, 5, "every acknowledged event counted in /metrics")
    assert server.stop() == 0
    stored = stored_markers(server.data)
    assert all(stored[m] == 1 for m in acknowledged)


def test_line_protocol_writes_are_taken_by_the_worker_itself(tmp_path: Path) -> None:
    token = "a-long-influx-token-0123456789"
    data = tmp_path / "data"
    add_app(data, "brewlike", "--influx-token", token, "--influx-bucket", "analytics")
    add_app(data, "warmup")
    server = start_server(data, tmp_path / "server.log", WORKERS_ENV)
    try:
        wait_for_worker(server)
        folder = server.data / "log"
        summary_events(server, "warmup")  # a read seals every process's segments and loads them
        before = set(os.listdir(folder))
        new_names: set[str] = set()
        stop = threading.Event()

        def watch() -> None:  # segment files appearing while only line protocol is sent
            while not stop.wait(0.002):
                new_names.update(name for name in os.listdir(folder) if name not in before)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        headers = {"Authorization": f"Token {token}", "Content-Type": "text/plain; charset=utf-8"}
        statuses = [
            request(server.url, "POST", "/api/v2/write?bucket=analytics&precision=s",
                    f"command_run,ci=false command=\"install\",marker=\"lp-{n}\"".encode(), headers)[0]
            for n in range(60)
        ]  # fmt: skip
        stop.set()
        watcher.join()
        assert statuses == [204] * 60
        assert any("-01-" in name for name in new_names), f"no line landed in the worker's own segments: {new_names}"
        assert summary_events(server, "brewlike") == 60, "read-your-writes across processes"
    finally:
        server.stop()
    stored = stored_markers(data)
    assert all(stored[f"lp-{n}"] == 1 for n in range(60))


def test_dashboard_login_by_link_works_whichever_process_answers(two_workers: LiveServer) -> None:
    server = two_workers
    wait_until(lambda: "login?code=" in server.log.read_text(), 10, "the login link")
    code = re.search(r"login\?code=(\S+)", server.log.read_text())
    assert code is not None
    status, headers, _ = request(server.url, "GET", f"/login?code={code.group(1)}")
    assert status == 303
    cookies = [value.split(";")[0] for value in headers.get_all("Set-Cookie") or []]
    session = next(cookie for cookie in cookies if cookie.startswith("footfall_session="))
    for _ in range(30):  # fresh connections: both processes answer some
        status, _, body = request(server.url, "GET", "/", headers={"Cookie": session})
        assert status == 200
        assert b"demo" in body
    status, headers, _ = request(server.url, "GET", "/", headers={"Cookie": "footfall_session=forged"})
    assert status == 303 and headers["Location"].endswith("/login")


def test_an_app_added_by_the_cli_is_taken_by_every_process_within_two_seconds(two_workers: LiveServer) -> None:
    server = two_workers
    assert send_batch(server.url, "late", ["before"]) == 422  # unknown_app
    add_app(server.data, "late")
    added = time.monotonic()
    answers = [send_batch(server.url, "late", [f"late-{n}"]) for n in range(40)]
    # Generous for a loaded machine: an unknown app refreshes the worker's view at once.
    assert time.monotonic() - added < 10
    assert answers == [202] * 40
    with FolderWatch(server.data / "log") as watch:
        assert all(send_batch(server.url, "late", [f"late2-{n}"]) == 202 for n in range(40))
    assert watch.seen >= {"00", "01"}


def test_a_forget_through_any_process_removes_what_the_other_acknowledged(two_workers: LiveServer) -> None:
    server = two_workers
    forgotten, kept = [], []
    with FolderWatch(server.data / "log") as watch:
        for n in range(40):
            assert send_batch(server.url, "demo", [f"f-{n}"], install="forget-me-please") == 202
            assert send_batch(server.url, "demo", [f"k-{n}"], install="keep-me-please") == 202
            forgotten.append(f"f-{n}")
            kept.append(f"k-{n}")
    assert watch.seen >= {"00", "01"}
    # At once: most of these events still sit in the processes' open segments.
    body = json.dumps({"app": "demo", "install": "forget-me-please"}).encode()
    status, _, answer = request(server.url, "POST", "/v1/forget", body, {"Content-Type": "application/json"})
    assert status == 200, answer
    assert summary_events(server, "demo") == len(kept)
    assert server.stop() == 0
    stored = stored_markers(server.data)
    assert not [m for m in forgotten if stored[m]]
    assert all(stored[m] == 1 for m in kept)


def test_a_killed_worker_is_restarted_and_its_acknowledged_events_load(two_workers: LiveServer) -> None:
    server = two_workers
    [first] = worker_pids(server.data)
    stop = threading.Event()
    acknowledged: list[str] = []

    def load() -> None:
        acknowledged.extend(run_load(server.url, threads=4, requests_each=200, prefix="death", stop=stop))

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(1.0)
    os.kill(first, signal.SIGKILL)  # in the middle of the load
    wait_until(lambda: any(pid != first for pid in worker_pids(server.data)), 15, "a new worker")
    time.sleep(1.0)
    stop.set()
    loader.join()
    assert len(acknowledged) > 100
    # At least: a request the kill cut off after its append is stored but was never acknowledged.
    assert summary_events(server, "demo") >= len(acknowledged)
    assert server.stop() == 0
    stored = stored_markers(server.data)
    assert not [m for m in acknowledged if stored[m] != 1]
    assert max(stored.values()) == 1


def test_one_worker_serves_as_before_without_a_socket(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_app(data, "demo")
    server = start_server(data, tmp_path / "server.log")
    try:
        assert send_batch(server.url, "demo", ["solo"]) == 202
        assert worker_pids(data) == []
        assert not (data / "run" / "owner.sock").exists()
    finally:
        assert server.stop() == 0


def test_the_owner_killed_leaves_no_worker_serving(two_workers: LiveServer) -> None:
    [worker] = worker_pids(two_workers.data)
    os.kill(two_workers.process.pid, signal.SIGKILL)
    two_workers.process.wait()
    # The worker sees its pipe from the owner end, stops serving, and exits.
    wait_until(lambda: not Path(f"/proc/{worker}").exists() or b"Z" in _state(worker), 10, "the worker to exit")
    with pytest.raises(OSError):
        send_batch(two_workers.url, "demo", ["orphan"])


def _state(pid: int) -> bytes:
    try:
        return (Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1])[:1]
    except (OSError, IndexError):
        return b"Z"


def one_record(app: str = "demo") -> EventRecord:
    moment = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return EventRecord(
        time=moment, received=moment, app=app, app_version="1", name="tick", install="", session="", os="",
        os_version="", arch="", runtime="", runtime_version="", ci="", container="", country="", props="{}",
        source="native",
    )  # fmt: skip


def test_a_worker_decides_backpressure_from_every_process_segments(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    other = SegmentLog(folder, worker=3)  # another process's segments, not yet loaded
    for _ in range(20):
        other.append([one_record()] * 50).result()
    other.close()
    [segment] = folder.glob("*.seg")
    assert segment.stat().st_size > 10_000
    tidy_up = folder / ".rewrite.seg.tmp"  # the owner's rewrite under way: a worker never touches it
    tidy_up.write_bytes(b"")
    worker_log = IngestLog(folder, None, max_bytes=10_000, max_age_s=0, worker=1)
    worker_log.start()  # its thread counts the folder
    try:
        assert tidy_up.exists()
        assert "bytes wait to be stored" in worker_log.pressure()
        with pytest.raises(Backpressure):
            worker_log.append([one_record()])
        segment.unlink()  # the owner loaded it
        wait_until(lambda: not worker_log.pressure(), 5, "the worker to count the folder again")
        worker_log.append([one_record()]).result(timeout=5)
    finally:
        worker_log.close()
    assert [path.name.split("-")[1] for path in folder.glob("*.seg")] == ["01"]


def test_chromium_shows_the_logged_in_dashboard_over_two_workers(browser: Any, two_workers: LiveServer) -> None:
    server = two_workers
    assert send_batch(server.url, "demo", ["seen-in-the-browser"]) == 202
    code = re.search(r"login\?code=(\S+)", server.log.read_text())
    assert code is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/login?code={code.group(1)}")
        page.wait_for_url(server.url + "/")
        for _ in range(5):  # each navigation may open new connections, to either process
            page.goto(server.url + "/apps/demo")
            assert page.locator("h1").first.inner_text().strip().startswith("demo")
            assert "tick" in page.content()
    finally:
        context.close()


def test_every_collecting_route_is_answered_by_the_workers_themselves(app_server: Any) -> None:
    """INGEST_PATHS is kept by hand; InfluxDB's routes were missed once, so the writes were relayed
    to the owner instead of spreading over the workers. Every collecting route but forget (which
    only the owner can carry out) must be in it."""
    from footfall.server.edge import collection, influx
    from footfall.server.operator.worker import INGEST_PATHS

    collecting = {
        route.path
        for route in app_server.app.routes
        if getattr(route, "endpoint", None) is not None
        and route.endpoint.__module__ in (collection.__name__, influx.__name__)
    }
    assert "/api/v2/write" in collecting and "/v1/batch" in collecting
    assert collecting - {"/v1/forget"} <= INGEST_PATHS, collecting - INGEST_PATHS


class OwnerSocket(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Two of the owner's internal routes on a Unix socket, answered from a real owner context:
    the registry snapshot, and counter reports, whose first answer comes `late_s` late (a busy
    owner, after the worker stopped waiting)."""

    daemon_threads = True

    def __init__(self, path: str, ctx: Any, late_s: float = 0.0) -> None:
        self.ctx, self.late_s, self.received = ctx, late_s, 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, document: Any) -> None:
                body = json.dumps(document).encode()
                with contextlib.suppress(BrokenPipeError):  # a late answer's client has gone
                    self.send_response(200)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self.answer(registry_snapshot(owner.ctx.store, owner.ctx.ingestor.removals))

            def do_POST(self) -> None:
                document = json.loads(self.rfile.read(int(self.headers["content-length"])))
                add_report(owner.ctx, document)
                owner.received += 1
                if owner.received == 1:
                    time.sleep(owner.late_s)
                self.answer({"status": "ok"})

        super().__init__(path, Handler)


def test_a_report_whose_answer_was_lost_is_added_once(tmp_path: Path) -> None:
    """A worker's counter report that the owner added but answered too late is sent again;
    the owner adds it once (before: the counts doubled)."""
    owner_data, worker_data = tmp_path / "owner", tmp_path / "worker"
    owner_data.mkdir(mode=0o700)
    worker_data.mkdir(mode=0o700)
    store = DuckDBStore(owner_data / "footfall.duckdb")
    owner = build_context(Settings(data=owner_data), store)
    worker = build_context(Settings(data=worker_data), store, worker=1)
    address = str(tmp_path / "owner.sock")
    server = OwnerSocket(address, owner, late_s=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reporter = Reporter(OwnerClient(address, timeout_s=0.3), worker.metrics, worker.log)
        worker.metrics.count("footfall_test_total", "A test counter.", 5)
        with pytest.raises(StoreUnavailable):
            reporter.report()  # added by the owner, but its answer came too late
        worker.metrics.count("footfall_test_total", "A test counter.", 2)
        reporter.report()  # the first report again, as it was, then what came since
        reporter.report()  # nothing new: nothing sent
        assert server.received == 3
        assert owner.metrics.snapshot()[0]["footfall_test_total"][1] == {(): 7.0}
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def test_an_app_removed_and_created_again_between_two_refreshes_is_forgotten_by_a_worker(tmp_path: Path) -> None:
    """Its registry looks the same before and after, but what the worker cached about the old
    app (distinct-value slots) must not carry over to the new one (before: nothing noticed)."""
    data = tmp_path / "owner"
    data.mkdir(mode=0o700)
    store = DuckDBStore(data / "footfall.duckdb")
    owner = build_context(Settings(data=data), store)
    address = str(tmp_path / "owner.sock")
    server = OwnerSocket(address, owner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store.add_app("tool")
        view = OwnerView(OwnerClient(address))
        removed: list[str] = []
        view.on_removed = removed.append
        view.refresh()
        assert view.has_app("tool") and removed == []
        owner.operations.remove_app("tool")
        store.add_app("tool")
        view.refresh()
        assert removed == ["tool"] and view.has_app("tool")
        view.refresh()
        assert removed == ["tool"], "one removal, forgotten once"
    finally:
        server.shutdown()
        server.server_close()
        store.close()
