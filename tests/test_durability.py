"""Nothing acknowledged is lost, and nothing that identifies is kept: whole servers, real files."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import random
import signal
import string
import subprocess
import threading
import time
import uuid
from pathlib import Path

from footfall.server.ingest.segments import SegmentLog
from footfall.server.operations import secret_hash
from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import LiveServer, footfall_command, healthy, start_server, wait_until
from tests.server.test_workers import (
    TID,
    WORKERS_ENV,
    FolderWatch,
    add_app,
    run_load,
    stored_markers,
    wait_for_worker,
    worker_pids,
)

CLIENT_IP = "127.0.0.9"  # the test's client connects from here, so it can be grepped for
FORWARDED_IP = "8.8.8.8"  # what a trusted proxy says the client was


def post(
    url: str,
    path: str,
    body: bytes,
    content_type: str,
    source: str = CLIENT_IP,
    headers: dict[str, str] | None = None,
) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type, **(headers or {})})
        return connection.getresponse().status
    finally:
        connection.close()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_kill_minus_nine_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(
        footfall_command("app", "add", "durable", "--data", str(data)),
        check=True,
        capture_output=True,
    )
    server = start_server(data, tmp_path / "server.log")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        for n in range(400):  # bounded: at most 400 requests per worker
            if stop.is_set():
                return
            markers = [f"w{worker}-{n}-{i}" for i in range(5)]
            body = json.dumps(
                {
                    "app": "durable",
                    "context": {},
                    "events": [{"name": "tick", "time": now_iso(), "props": {"marker": m}} for m in markers],
                }
            )
            try:
                status = post(server.url, "/v1/batch", body.encode(), "application/json", source="127.0.0.1")
            except OSError:
                return  # the server is gone: this request was never acknowledged
            if status == 202:
                with lock:
                    acknowledged.extend(markers)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 500 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(server.process.pid, signal.SIGKILL)  # in the middle of the load
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join()
    server.log_handle.close()
    assert len(acknowledged) >= 500

    restarted = start_server(data, tmp_path / "server2.log")
    assert restarted.stop() == 0
    store = DuckDBStore(data / "footfall.duckdb")
    try:
        found = {json.loads(p)["marker"] for (p,) in store.query("SELECT props FROM events").rows}
    finally:
        store.close()
    missing = set(acknowledged) - found
    assert not missing, f"{len(missing)} acknowledged events were lost"


def test_no_protocol_stores_or_logs_the_ip_or_a_raw_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(
        footfall_command(
            "app",
            "add",
            "private",
            "--ga-tid",
            "UA-777-1",
            "--ga4-measurement-id",
            "G-PRIVATE1",
            "--ga4-api-secret",
            "private-secret",
            "--data",
            str(data),
        ),
        check=True,
        capture_output=True,
    )
    env_proxies = {"FOOTFALL_TRUSTED_PROXIES": "127.0.0.0/8"}
    server = start_server(data, tmp_path / "server.log", env=env_proxies)
    ids = {name: uuid.uuid4().hex for name in ("native", "ga_v1", "ga4", "marker")}
    # Letters only: hex digits can form a Luhn-valid card number (1 in 2,000), refused by the safety net.
    ids["marker"] = "".join(random.choices(string.ascii_lowercase, k=16))
    native = {
        "app": "private",
        "context": {"install": ids["native"], "session": uuid.uuid4().hex},
        "events": [{"name": "start", "time": now_iso(), "props": {"marker": ids["marker"]}}],
    }
    forwarded = {"X-Forwarded-For": FORWARDED_IP}
    assert (
        post(
            server.url,
            "/v1/batch",
            json.dumps(native).encode(),
            "application/json",
            headers=forwarded,
        )
        == 202
    )
    hit = f"v=1&tid=UA-777-1&cid={ids['ga_v1']}&t=event&ec=cli&ea=run&uip={FORWARDED_IP}"
    assert post(server.url, "/collect", hit.encode(), "application/x-www-form-urlencoded") == 200
    ga4 = {"client_id": ids["ga4"], "events": [{"name": "level_up"}]}
    path = "/mp/collect?measurement_id=G-PRIVATE1&api_secret=private-secret"
    assert post(server.url, path, json.dumps(ga4).encode(), "application/json", headers=forwarded) == 204
    post(server.url, "/v1/batch", b"{broken", "application/json")  # an error path, logged or not
    host, port = server.url.removeprefix("http://").split(":")
    metrics = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        metrics.request("GET", "/metrics")
        metrics_text = metrics.getresponse().read()
    finally:
        metrics.close()
    assert server.stop() == 0

    store = DuckDBStore(data / "footfall.duckdb")
    try:
        countries = {c for (c,) in store.query("SELECT country FROM events").rows}
    finally:
        store.close()
    assert countries == {"US"}, "the country comes from the forwarded address"
    everything = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    everything += server.log.read_bytes() + metrics_text
    assert ids["marker"].encode() in everything, "positive control: the grep sees stored values"
    for secret in (
        CLIENT_IP,
        FORWARDED_IP,
        ids["native"],
        ids["ga_v1"],
        ids["ga4"],
        "private-secret",
    ):
        assert secret.encode() not in everything, secret
    assert secret_hash("private-secret").encode() in everything, "only the secret's hash is kept"


# -- several processes (`--workers 2`) -------------------------------------------------


def kill_every_collector_process(server: LiveServer) -> None:
    """`kill -9` of the owner and of every ingest worker, at once."""
    for pid in [server.process.pid, *worker_pids(server.data)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait()
    server.log_handle.close()
    wait_until(lambda: not worker_pids(server.data), 10, "no worker left")


def test_kill_minus_nine_of_every_process_of_two_workers_stores_each_acknowledged_event_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    add_app(data, "demo", "--ga-tid", TID)
    add_app(data, "warmup")
    server = start_server(data, tmp_path / "server.log", WORKERS_ENV)
    wait_for_worker(server)
    stop = threading.Event()
    acknowledged: list[str] = []
    loader = threading.Thread(
        target=lambda: acknowledged.extend(run_load(server.url, threads=6, requests_each=300, prefix="k", stop=stop))
    )
    loader.start()
    with FolderWatch(data / "log") as watch:
        time.sleep(1.5)  # native batches and GA hits, through both processes
    kill_every_collector_process(server)
    stop.set()
    loader.join()
    assert watch.seen >= {"00", "01"}
    assert len(acknowledged) > 100

    restarted = start_server(data, tmp_path / "server2.log", WORKERS_ENV)
    assert restarted.stop() == 0
    stored = stored_markers(data)
    assert not [m for m in acknowledged if stored[m] != 1], "an acknowledged event was lost or stored twice"
    assert max(stored.values()) == 1, "an event was stored twice"
    assert all(m.startswith("k-") for m in stored)


def write_large_segment(data: Path, events: int) -> list[str]:
    """One sealed segment of `events` events (tens of MB) in the log, as an earlier run would leave it."""
    received = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    markers = [f"bulk-{i}" for i in range(events)]
    writer = SegmentLog(data / "log", worker=7, max_bytes=1 << 40, max_age=3600)
    try:
        for start in range(0, events, 5000):
            records = [
                EventRecord(
                    time=received,
                    received=received,
                    app="bulk",
                    app_version="1.0",
                    name="tick",
                    install="a" * 32,
                    session="b" * 32,
                    os="linux",
                    os_version="6",
                    arch="x86_64",
                    runtime="python",
                    runtime_version="3.12",
                    ci="",
                    container="",
                    country="",
                    source="native",
                    props=json.dumps({"marker": marker, "padding": "x" * 300}),
                )
                for marker in markers[start : start + 5000]
            ]
            writer.append(records).result()
    finally:
        writer.close()
    return markers


def test_kill_minus_nine_during_a_bulk_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_app(data, "bulk")
    markers = write_large_segment(data, 150_000)
    [segment] = list((data / "log").glob("*.seg"))
    assert segment.stat().st_size > 50 * 1024 * 1024
    # The loader starts with the server, before it answers: kill every process at its first answer.
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        footfall_command("serve", "--data", str(data), "--port", "0"),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **WORKERS_ENV},
    )
    server = LiveServer("", data, process, tmp_path / "server.log", log)
    try:
        wait_until(lambda: (data / "server.json").exists() or process.poll() is not None, 30, "server.json")
        url = json.loads((data / "server.json").read_text())["url"]
        wait_until(lambda: healthy(url) or process.poll() is not None, 30, "/healthz")
    finally:
        kill_every_collector_process(server)
    assert segment.exists(), "the load finished before the kill: make the segment larger"

    restarted = start_server(data, tmp_path / "server2.log", WORKERS_ENV)
    assert restarted.stop() == 0
    stored = stored_markers(data)
    assert sum(stored.values()) == len(markers), "the segment was loaded twice, or partly"
    assert set(stored) == set(markers)
