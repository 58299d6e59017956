"""Operating the collector: readiness, metrics, limits, proxies, schemas and the ingest log.

Readiness, schemas, and the ingest log loading into a store that failed and came back, or under
concurrent writers, are tested on each store (`on_every_store`). Rate limits, timeouts, proxies
and backpressure (where nothing is loaded: the store fails throughout) stay on DuckDB: the store
plays no part in them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GOLDEN_APP, InThreadServer, load_golden, wait_until, with_fresh_times
from tests.stores import FLAKY_FACTORIES, FlakyStore, on_every_store


def batch(**props: Any) -> dict[str, Any]:
    return with_fresh_times(
        {
            "app": GOLDEN_APP,
            "context": {"install": "a" * 32},
            "events": [{"name": "start", "time": None, "props": props}],
        }
    )


@on_every_store
def test_readyz_and_metrics(app_server: InThreadServer) -> None:
    assert httpx.get(app_server.url + "/readyz").json() == {"status": "ready", "warnings": []}
    httpx.post(app_server.url + "/v1/batch", json=batch())
    httpx.post(app_server.url + "/v1/batch", json={**batch(), "app": "nope"})
    text = httpx.get(app_server.url + "/metrics").text
    assert 'footfall_events_accepted_total{protocol="native"} 1' in text
    assert 'footfall_events_rejected_total{protocol="native",reason="unknown_app"} 1' in text
    assert "footfall_log_unloaded_segments 0" in text
    assert 'footfall_commit_seconds_bucket{le="+Inf"} 1' in text


def test_per_client_rate_limit_answers_429_with_retry_after(app_server_factory: Any) -> None:
    # Through a trusted proxy on loopback: this host itself is not limited per client (docs/collector.md).
    server: InThreadServer = app_server_factory(rate_per_client=0.5, burst_per_client=2, trusted_proxies="127.0.0.1")
    remote = {"X-Forwarded-For": "198.51.100.20"}
    statuses = [httpx.post(server.url + "/v1/batch", json=batch(), headers=remote) for _ in range(3)]
    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert statuses[2].json()["error"]["code"] == "rate_limited"
    assert int(statuses[2].headers["retry-after"]) >= 1


def test_per_app_rate_limit(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(rate_per_app=1, burst_per_app=3)
    many = with_fresh_times({"app": GOLDEN_APP, "context": {}, "events": [{"name": "a", "time": None}] * 3})
    assert httpx.post(server.url + "/v1/batch", json=many).status_code == 202
    refused = httpx.post(server.url + "/v1/batch", json=many)
    assert refused.status_code == 429 and "retry-after" in refused.headers


def test_forget_is_rate_limited(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(forget_per_minute=2)
    body = {"app": GOLDEN_APP, "install": "a" * 32}
    assert [httpx.post(server.url + "/v1/forget", json=body).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_a_slow_client_cannot_hold_a_worker(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(read_timeout_s=0.5)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"app":'
        )
        started = time.monotonic()
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408") and "request_timeout" in answer
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("trusted", "country"), [("127.0.0.0/8", "US"), ("", "")])
def test_x_forwarded_for_only_from_trusted_proxies(app_server_factory: Any, trusted: str, country: str) -> None:
    server: InThreadServer = app_server_factory(trusted_proxies=trusted)
    response = httpx.post(server.url + "/v1/batch", json=batch(), headers={"X-Forwarded-For": "8.8.8.8"})
    assert response.status_code == 202
    assert server.store.query("SELECT country FROM events").rows == [(country,)]


@on_every_store
def test_app_schema_drops_undeclared_events_and_properties(app_server: InThreadServer) -> None:
    schema = {
        "events": {
            "start": {
                "mode": {"type": "enum", "values": ["fast", "slow"]},
                "jobs": {"type": "bucket"},
            }
        }
    }
    headers = {"Authorization": f"Bearer {app_server.token}"}
    put = httpx.put(f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/schema", json=schema, headers=headers)
    assert put.status_code == 200 and put.json()["events"] == ["start"]
    body = with_fresh_times(
        {
            "app": GOLDEN_APP,
            "context": {},
            "events": [
                {
                    "name": "start",
                    "time": None,
                    "props": {"mode": "fast", "jobs": "10-99", "secret": "x", "extra": 1},
                },
                {"name": "start", "time": None, "props": {"mode": "warp"}},
                {"name": "undeclared", "time": None},
            ],
        }
    )
    results = httpx.post(app_server.url + "/v1/batch", json=body).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected"]
    assert results[2]["code"] == "undeclared_event"
    props = [json.loads(p) for (p,) in app_server.store.query("SELECT props FROM events ORDER BY time").rows]
    assert props == [{"mode": "fast", "jobs": "10-99"}, {}]
    assert app_server.metric("footfall_properties_dropped_total", protocol="native", reason="undeclared_property") == 2
    assert app_server.metric("footfall_properties_dropped_total", protocol="native", reason="wrong_type") == 1
    bad = httpx.put(
        f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/schema",
        json={"events": {"a": {"b": {"type": "blob"}}}},
        headers=headers,
    )
    assert bad.status_code == 400 and "type must be one of" in bad.json()["error"]["message"]


@on_every_store
def test_when_the_store_fails_events_wait_in_the_log_and_load_in_order(
    app_server_factory: Any, tmp_path: Path, store_kind: str
) -> None:
    store = FLAKY_FACTORIES[store_kind](tmp_path)
    server: InThreadServer = app_server_factory(store=store)
    store.failing = True
    for n in range(5):
        response = httpx.post(server.url + "/v1/batch", json=batch(n=n))
        assert response.status_code == 202, "acknowledged: it is fsynced in the log"
    wait_until(lambda: server.app.state.context.log.last_error, 10, "the loader to find the store down")
    assert store.query_now("SELECT count(*) FROM events").rows == [(0,)]
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["warnings"], "collection goes on; the operator is told"
    store.failing = False
    wait_until(lambda: store.query_now("SELECT count(*) FROM events").rows == [(5,)], 60, "the loader to retry")
    loaded = [json.loads(p)["n"] for (p,) in store.query("SELECT props FROM events ORDER BY received, time").rows]
    if store_kind == "clickhouse":  # it keeps whole seconds, and no order within one: what came is what was sent
        loaded.sort()
    assert loaded == [0, 1, 2, 3, 4]


def test_backpressure_stops_acknowledging_at_the_log_cap(app_server_factory: Any, tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "flaky.duckdb")
    server: InThreadServer = app_server_factory(store=store, max_log_bytes=600)
    store.failing = True
    answers = [httpx.post(server.url + "/v1/batch", json=batch(n=n)) for n in range(4)]
    assert answers[0].status_code == 202 and answers[-1].status_code == 503
    assert answers[-1].json()["error"]["code"] == "backpressure"
    assert int(answers[-1].headers["retry-after"]) >= 1
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 503 and "backpressure" in ready.text
    refused = sum(answer.status_code == 503 for answer in answers)
    assert f"footfall_log_backpressure_refusals {refused}" in httpx.get(server.url + "/metrics").text
    # Review: events were counted as accepted before backpressure refused them (and again on each retry).
    assert server.metric("footfall_events_accepted_total", protocol="native") == len(answers) - refused
    assert server.metric("footfall_events_rejected_total", protocol="native", reason="backpressure") == refused


@on_every_store
def test_concurrent_writers_and_the_spool_lose_nothing(app_server: InThreadServer) -> None:
    errors: list[int] = []

    def send(offset: int) -> None:
        for n in range(10):
            status = httpx.post(app_server.url + "/v1/batch", json=batch(n=offset + n)).status_code
            if status != 202:
                errors.append(status)

    threads = [threading.Thread(target=send, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert app_server.store.query("SELECT count(*) FROM events").rows == [(40,)]
    golden = load_golden("batch-command.json")
    assert golden["app"] == GOLDEN_APP
