"""`footfall serve --workers 2`: what crosses from the TCP port to the owner's Unix socket.

A worker tells the owner the client's address in `x-footfall-peer`; only the owner's
socket trusts it. A client that sends the header itself, to the worker or to the owner,
must gain nothing: not a fresh rate-limit bucket, not the internal routes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from footfall.server.errors import StoreUnavailable
from footfall.server.ingest.log import IngestLog, hold_worker_lock
from footfall.server.ingest.segments import SegmentLog
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import LiveServer, start_server
from tests.server.test_workers import WORKERS_ENV, add_app, one_record, request, send_batch, wait_for_worker


@pytest.fixture
def limited_workers(tmp_path: Path) -> Iterator[LiveServer]:
    """--workers 2 with a per-client limit: 3 at once, then 1 a second (per process)."""
    data = tmp_path / "data"
    add_app(data, "demo")
    add_app(data, "warmup")
    # This host is not limited per client: the client is a remote address behind a trusted proxy.
    limited = {
        **WORKERS_ENV,
        "FOOTFALL_RATE_PER_CLIENT": "1",
        "FOOTFALL_BURST_PER_CLIENT": "3",
        "FOOTFALL_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    server = start_server(data, tmp_path / "server.log", limited)
    try:
        wait_for_worker(server)
        yield server
    finally:
        server.stop()


def forged(n: int) -> dict[str, str]:
    """One remote client (behind the trusted proxy) claiming a different address (in a different
    network) for each request."""
    return {"x-footfall-peer": f"10.{n}.0.1", "X-Forwarded-For": "203.0.113.9", "Content-Type": "application/json"}


def test_a_forged_peer_header_gets_no_fresh_forget_budget(limited_workers: LiveServer) -> None:
    # Forgets are answered by the owner: directly, or forwarded by the worker with the real address.
    body = json.dumps({"app": "demo", "install": "someone-else-entirely"}).encode()
    statuses = [request(limited_workers.url, "POST", "/v1/forget", body, forged(n))[0] for n in range(14)]
    # 6 a minute (the default): had either process believed the header, every request would pass.
    assert statuses.count(200) <= 6
    assert statuses.count(429) >= 8


def test_a_forged_peer_header_gets_no_fresh_ingest_budget(limited_workers: LiveServer) -> None:
    statuses = []
    for n in range(30):
        statuses.append(
            request(
                limited_workers.url,
                "POST",
                "/v1/batch",
                json.dumps({"app": "demo", "context": {}, "events": []}).encode(),
                forged(n),
            )[0]
        )
    # Each process allows a burst of 3 and 1 a second; 30 requests with 30 claimed addresses.
    assert statuses.count(429) >= 20, statuses


def test_the_internal_routes_are_not_reachable_over_tcp(limited_workers: LiveServer) -> None:
    url = limited_workers.url
    for n in range(20):  # fresh connections: both processes answer some
        for path in ("/internal/config", "/%69nternal/config", "/internal/distinct?app=demo&field=os&limit=5"):
            status, _, body = request(url, "GET", path, headers=forged(n))
            assert status in (404, 429), body
            assert b"apps" not in body and b"values" not in body
        report = {"counters": [["footfall_events_accepted_total", "forged", {"protocol": "native"}, 1e9]]}
        status, _, _ = request(url, "POST", "/internal/report", json.dumps(report).encode(), forged(n))
        assert status in (404, 405, 429)
    metrics = request(url, "GET", "/metrics")[2].decode()
    assert "1000000000" not in metrics


def test_the_owner_socket_is_private(limited_workers: LiveServer) -> None:
    run = limited_workers.data / "run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    socket_mode = (run / "owner.sock").stat()
    assert stat.S_ISSOCK(socket_mode.st_mode)
    assert stat.S_IMODE(socket_mode.st_mode) == 0o600


def test_a_batch_still_works_through_the_limited_server(limited_workers: LiveServer) -> None:
    assert send_batch(limited_workers.url, "demo", ["one"]) == 202


def test_a_forget_never_says_done_while_a_worker_still_holds_the_install_unsealed(tmp_path: Path) -> None:
    """Found in review: past the 2 s wait for a worker's seal, a forget rewrote what was sealed
    and returned, while the worker's open segment still held the install's events, which then
    loaded. A forget (and an app's removal) must fail, to be retried, instead."""
    folder = tmp_path / "log"
    install = "a" * 32
    lock = hold_worker_lock(folder, 1, 0)  # held by a live worker process...
    assert lock is not None
    hung_worker = SegmentLog(folder, worker=1, max_age=3600)  # ...that never seals
    hung_worker.append([dataclasses.replace(one_record(), install=install)]).result(timeout=10)
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    owner = IngestLog(folder, store, max_bytes=10**9, max_age_s=0)
    owner.request_seals = lambda: None
    owner.live_workers = lambda: {1}
    try:
        with pytest.raises(StoreUnavailable, match="try again"):
            owner.forget("demo", install)
        with pytest.raises(StoreUnavailable):
            owner.forget_app("demo")
        owner.catch_up()  # a read goes on, a moment stale
        hung_worker.close()  # it seals at last
        assert owner.forget("demo", install) == 1
    finally:
        owner.close()
        store.close()
        os.close(lock)
