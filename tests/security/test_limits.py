"""Red-team regressions for abuse and limits (issue 11): rate limits on every collector
protocol, a bounded rate-limit table, slowloris, odd input that used to answer 500,
distinct-value cardinality and the per-app byte budget.

Everything runs against real servers on loopback with real DuckDB files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import select
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from footfall.server.edge.ratelimit import TokenBuckets
from footfall.server.metrics import Metrics
from footfall.server.operations import secret_hash
from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import GOLDEN_APP, InThreadServer, LiveServer, footfall_command, start_server, with_fresh_times

TID = "UA-777-1"
CID = "35009a79-1a05-49d7-b876-2b884d0f825b"
MEASUREMENT_ID = "G-LIMITS1"
SECRET = "limits-secret"


@pytest.fixture
def ga_factory(app_server_factory: Any) -> Any:
    """A server with a GA v1 tid and a GA4 measurement id registered to "ga-tool"."""

    def start(**settings: Any) -> InThreadServer:
        server: InThreadServer = app_server_factory(**settings)
        server.store.add_app("ga-tool")
        server.store.add_key("ga-tool", "ga-tid", TID)
        server.store.add_key("ga-tool", "ga4", MEASUREMENT_ID, secret_hash(SECRET))
        return server

    return start


def hit(**params: Any) -> dict[str, Any]:
    return {"v": "1", "tid": TID, "cid": CID, "t": "event", "ec": "cli", "ea": "run", **params}


# The new modules are imported inside the tests that use them, so that this file also runs
# against the code before the fix, where each of those tests fails on its own.


def ga4_body(**fields: Any) -> dict[str, Any]:
    return {"client_id": "1234567890.1764300000", "events": [{"name": "run", "params": {"n": 1}}], **fields}


def ga4_params() -> dict[str, str]:
    return {"measurement_id": MEASUREMENT_ID, "api_secret": SECRET}


def stored_count(server: InThreadServer, app: str = "ga-tool") -> int:
    return int(server.store.query("SELECT count(*) FROM events WHERE app = $app", {"app": app}).rows[0][0])


def bearer(server: InThreadServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


# The per-client rate does not apply to this host itself, so the tests of that limit send through a
# trusted proxy on loopback, as a remote client seen behind nginx or Caddy.
BEHIND_PROXY = {"trusted_proxies": "127.0.0.1/32"}
REMOTE = {"X-Forwarded-For": "203.0.113.7"}


# -- 1. rate limits on GA v1 and GA4 -------------------------------------------------


def test_a_ga_v1_burst_from_one_address_is_not_all_stored(ga_factory: Any) -> None:
    server = ga_factory(rate_per_client=1, burst_per_client=50, **BEHIND_PROXY)
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers=REMOTE) as client:
        answers = [client.get("/collect", params=hit(el=f"n{n}")) for n in range(600)]
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {200}  # GA semantics: every hit gets its pixel
    assert all(a.headers["content-type"] == "image/gif" for a in answers)
    stored = stored_count(server)
    assert 50 <= stored <= 50 + elapsed * 1 + 5, (stored, elapsed)
    refused = 600 - stored
    assert server.metric("footfall_events_rejected_total", protocol="ga-v1", reason="rate_limited") == refused
    assert server.metric("footfall_rate_limited_total", scope="client") == refused


def test_a_ga_v1_batch_refused_by_the_client_limit_counts_every_hit(ga_factory: Any) -> None:
    server = ga_factory(rate_per_client=0.001, burst_per_client=1, **BEHIND_PROXY)
    body = "\n".join(urllib.parse.urlencode(hit(el=f"n{n}")) for n in range(5))
    with httpx.Client(base_url=server.url, headers=REMOTE) as client:
        answers = [client.post("/batch", content=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert stored_count(server) == 5
    assert server.metric("footfall_events_rejected_total", protocol="ga-v1", reason="rate_limited") == 10


def test_a_ga4_burst_from_one_address_is_not_all_stored(ga_factory: Any) -> None:
    server = ga_factory(rate_per_client=1, burst_per_client=30, **BEHIND_PROXY)
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers=REMOTE) as client:
        answers = [client.post("/mp/collect", params=ga4_params(), json=ga4_body()) for _ in range(300)]
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {204}
    stored = stored_count(server)
    assert 30 <= stored <= 30 + elapsed * 1 + 5, (stored, elapsed)
    assert server.metric("footfall_events_rejected_total", protocol="ga4", reason="rate_limited") == 300 - stored
    assert server.metric("footfall_rate_limited_total", scope="client") == 300 - stored


# -- 2. the rate-limit table ------------------------------------------------------------


def test_the_table_evicts_the_idlest_client_not_the_oldest() -> None:
    buckets = TokenBuckets(rate=1, burst=5, max_keys=3)
    first, second, third, fourth = (buckets.key_for_address(f"10.0.0.{n}") for n in range(1, 5))
    for key in (first, second, third):
        assert buckets.take(key) == 0
    assert buckets.take(first) == 0  # the oldest entry is busy again: `second` is now the idlest
    assert buckets.take(fourth) == 0
    assert buckets.holds(first) and buckets.holds(third) and buckets.holds(fourth)
    assert not buckets.holds(second)


def test_the_table_is_bounded_even_when_nobody_is_refused() -> None:
    buckets = TokenBuckets(rate=100, burst=100, max_keys=1000)
    for n in range(20_000):
        assert buckets.take(buckets.key_for_address(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")) == 0
    assert buckets.size() <= 1000


def test_a_busy_client_keeps_its_empty_bucket_while_others_flood_the_table() -> None:
    buckets = TokenBuckets(rate=0.001, burst=2, max_keys=100)
    attacker = buckets.key_for_address("192.0.2.1")
    assert buckets.take(attacker) == 0 and buckets.take(attacker) == 0
    for n in range(1000):  # fresh addresses push the table past its bound
        buckets.take(buckets.key_for_address(f"198.51.{n // 256}.{n % 256}"))
        if n % 50 == 0:
            assert buckets.take(attacker) > 0  # still refused: its bucket was never forgotten


def test_ipv6_clients_are_keyed_by_their_64_and_ipv4_by_the_address() -> None:
    from footfall.server.edge.ratelimit import client_network

    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("10.0.0.1") != client_network("10.0.0.2")
    assert client_network("::ffff:10.0.0.1") == client_network("10.0.0.1") == "10.0.0.1"
    buckets = TokenBuckets(rate=0.001, burst=1)
    assert buckets.take(buckets.key_for_address("2001:db8::1")) == 0
    assert buckets.take(buckets.key_for_address("2001:db8::dead:beef")) > 0  # same /64: same bucket
    assert buckets.take(buckets.key_for_address("2001:db8:0:1::1")) == 0  # another /64
    assert buckets.take(buckets.key_for_address("10.0.0.1")) == 0
    assert buckets.take(buckets.key_for_address("10.0.0.2")) == 0


def test_a_server_behind_a_proxy_limits_an_ipv6_64_as_one_client(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(
        trusted_proxies="127.0.0.1/32", rate_per_client=0.001, burst_per_client=2
    )
    batch = with_fresh_times({"app": GOLDEN_APP, "context": {}, "events": [{"name": "run", "time": None}]})

    def send(address: str) -> int:
        return httpx.post(server.url + "/v1/batch", json=batch, headers={"X-Forwarded-For": address}).status_code

    assert [send(f"2001:db8:5:6::{n}") for n in range(1, 4)] == [202, 202, 429]
    assert send("2001:db8:5:7::1") == 202


# -- 3. slowloris ---------------------------------------------------------------------------


def closed_by_peer(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except OSError:
        return True


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path / "data",
        tmp_path / "server.log",
        env={"FOOTFALL_HEADER_TIMEOUT_S": "2", "FOOTFALL_KEEP_ALIVE_S": "2", "FOOTFALL_MAX_CONNECTIONS": "1000"},
    )
    try:
        yield server
    finally:
        server.stop()


def test_idle_and_half_sent_connections_are_closed_and_others_are_served(slow_server: LiveServer) -> None:
    host, port = slow_server.url.removeprefix("http://").split(":")
    address = (host, int(port))
    idle = [socket.create_connection(address, timeout=5) for _ in range(150)]
    half_sent = [socket.create_connection(address, timeout=5) for _ in range(150)]
    for sock in half_sent:
        sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    # A keep-alive connection that finished one request, then sent half of the next.
    second = socket.create_connection(address, timeout=5)
    second.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert second.recv(4096).startswith(b"HTTP/1.1 200")
    second.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    held = [*idle, *half_sent, second]
    try:
        started = time.monotonic()
        answer = httpx.get(slow_server.url + "/healthz", timeout=10)
        assert answer.status_code == 200
        assert time.monotonic() - started < 3.0  # generous: 2 cores shared with other agents
        deadline = time.monotonic() + 20  # the timeout is 2 s; the rest is slack for a loaded machine
        still_open = list(held)
        while still_open and time.monotonic() < deadline:
            still_open = [s for s in still_open if not closed_by_peer(s)]
            time.sleep(0.2)
        assert not still_open, f"{len(still_open)} of {len(held)} slow connections were never closed"
        assert httpx.get(slow_server.url + "/healthz", timeout=10).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_full_server_answers_503_then_recovers_when_idle_connections_time_out(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data",
        tmp_path / "server.log",
        env={"FOOTFALL_HEADER_TIMEOUT_S": "2", "FOOTFALL_MAX_CONNECTIONS": "20"},
    )
    host, port = server.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(30)]
    try:
        time.sleep(0.3)  # let the server accept them all
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 503
        deadline = time.monotonic() + 20
        status = 503
        while status == 503 and time.monotonic() < deadline:
            time.sleep(0.3)
            status = httpx.get(server.url + "/healthz", timeout=10).status_code
        assert status == 200
    finally:
        for sock in idle:
            sock.close()
        server.stop()


# -- 4. odd but well-formed input: never a 500 --------------------------------------------

ODD_DAYS = ["²", "٣", "9" * 5000, "0", "3661", "-1", "1e3"]
ODD_RANGES = [
    {"end": "9999-12-31"},
    {"start": "0001-01-01"},
    {"start": "0001-01-01", "end": "0001-01-05"},
    {"start": "9999-12-30", "end": "9999-12-31"},
    {"end": "1970-01-03", "days": "30"},
]


@pytest.mark.parametrize("days", ODD_DAYS)
def test_odd_day_counts_are_a_clean_400_on_the_api_and_dashboard(app_server: InThreadServer, days: str) -> None:
    with httpx.Client(base_url=app_server.url, headers=bearer(app_server)) as client:
        for path in (f"/api/v1/apps/{GOLDEN_APP}/summary", f"/api/v1/apps/{GOLDEN_APP}/reports/overview"):
            answer = client.get(path, params={"days": days})
            assert answer.status_code == 400, (path, answer.text[:200])
            assert answer.json()["error"]["code"] in ("invalid_request", "usage")
        page = client.get(f"/apps/{GOLDEN_APP}", params={"days": days})
        assert page.status_code == 400 and "days must be" in page.text


@pytest.mark.parametrize("params", ODD_RANGES)
def test_dates_at_the_edges_of_time_are_a_clean_400(app_server: InThreadServer, params: dict[str, str]) -> None:
    with httpx.Client(base_url=app_server.url, headers=bearer(app_server)) as client:
        answer = client.get(f"/api/v1/apps/{GOLDEN_APP}/reports/overview", params=params)
        assert answer.status_code == 400 and answer.json()["error"]["message"]
        assert client.get(f"/apps/{GOLDEN_APP}", params=params).status_code == 400


@pytest.mark.parametrize("field", ["ev", "qt", "utt", "cm1"])
@pytest.mark.parametrize("value", ["²", "9" * 5000])
def test_ga_v1_odd_integers_keep_ga_semantics(ga_factory: Any, field: str, value: str) -> None:
    server = ga_factory()
    params = {**hit(t="timing", utc="c", utv="v", utt="5"), field: value}
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/collect", params=params).status_code == 200
        assert client.post("/collect", content=urllib.parse.urlencode(params)).status_code == 200
        debug = client.get("/debug/collect", params=params)
        assert debug.status_code == 200
        result = debug.json()["hitParsingResult"][0]
        assert result["valid"] is (field == "cm1")  # a custom metric that is not a number is kept as text
    if field == "cm1":
        props = [json.loads(r[0]) for r in server.store.query("SELECT props FROM events").rows]
        assert len(props) == 2  # GET and POST /collect; debug stores nothing
        assert all(p.get("cm1") == (value if len(value) <= 150 else None) for p in props)
    else:
        assert stored_count(server) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp_micros": "²"},
        {"timestamp_micros": "9" * 5000},
        {"timestamp_micros": 10**30},
        {"timestamp_micros": -(10**30)},
        {"client_id": "\ud800"},
        {"client_id": "abc\x00def"},
        {"events": [{"name": "run", "timestamp_micros": "²"}]},
        {"events": [{"name": "run", "params": {"label": "\udfff"}}]},
        {"user_properties": {"plan": {"value": "\ud800"}}},
    ],
)
def test_ga4_odd_values_are_dropped_with_a_message(ga_factory: Any, fields: dict[str, Any]) -> None:
    server = ga_factory()
    body = json.dumps(ga4_body(**fields)).encode()  # ASCII: a lone surrogate travels as a valid \ud800 escape
    with httpx.Client(base_url=server.url) as client:
        answer = client.post("/mp/collect", params=ga4_params(), content=body)
        assert answer.status_code == 204
        debug = client.post("/debug/mp/collect", params=ga4_params(), content=body)
        assert debug.status_code == 200
        assert debug.json()["validationMessages"]
    if "user_properties" in fields:  # only the bad property goes; the event is kept without it
        (props,) = [json.loads(r[0]) for r in server.store.query("SELECT props FROM events").rows]
        assert "user_plan" not in props
    else:
        assert stored_count(server) == 0


@pytest.mark.parametrize("dropped", ["1e400", "9" * 400, "1000001", "-1"])
def test_a_huge_dropped_count_is_refused_and_metrics_keep_working(app_server: InThreadServer, dropped: str) -> None:
    batch = with_fresh_times({"app": GOLDEN_APP, "context": {}, "events": [{"name": "run", "time": None}]})
    body = json.dumps(batch)[:-1] + f', "dropped": {dropped}}}'
    answer = httpx.post(app_server.url + "/v1/batch", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_batch"
    metrics = httpx.get(app_server.url + "/metrics")
    assert metrics.status_code == 200 and "footfall_client_dropped_total" not in metrics.text


def test_a_reported_dropped_count_within_the_cap_is_counted_exactly(app_server: InThreadServer) -> None:
    batch = with_fresh_times({"app": GOLDEN_APP, "context": {}, "events": [{"name": "run", "time": None}]})
    batch["dropped"] = 1_000_000
    assert httpx.post(app_server.url + "/v1/batch", json=batch).status_code == 202
    text = httpx.get(app_server.url + "/metrics").text
    assert f'footfall_client_dropped_total{{app="{GOLDEN_APP}"}} 1000000' in text  # not 1e+06


def test_metrics_render_any_amount() -> None:
    metrics = Metrics()
    metrics.count("footfall_test_total", "A test.", 10**400, kind="huge")
    metrics.count("footfall_test_total", "A test.", 10**400, kind="huge")
    metrics.count("footfall_test_total", "A test.", float("nan"), kind="nan")
    metrics.count("footfall_test_total", "A test.", 1234567, kind="exact")
    metrics.gauge("footfall_test_gauge", "A gauge.", lambda: float("inf"))
    text = metrics.render()
    assert 'footfall_test_total{kind="exact"} 1234567\n' in text
    assert 'footfall_test_total{kind="nan"} 0\n' in text
    huge = next(line for line in text.splitlines() if 'kind="huge"' in line)
    assert float(huge.split()[-1]) > 1e300
    assert "footfall_test_gauge +Inf\n" in text


# -- 5. cardinality ----------------------------------------------------------------------


def test_2000_distinct_versions_through_ga_store_at_most_the_cap_plus_other(ga_factory: Any) -> None:
    cap = 1000  # the default, so that the same test shows the 2,000 versions stored before the cap existed
    server = ga_factory(rate_per_client=0)
    with httpx.Client(base_url=server.url) as client:
        for start in range(0, 2000, 20):
            lines = [urllib.parse.urlencode(hit(av=f"9.{n}.0", an="tool")) for n in range(start, start + 20)]
            assert client.post("/batch", content="\n".join(lines)).status_code == 200
    versions = {r[0] for r in server.store.query("SELECT DISTINCT app_version FROM events").rows}
    assert stored_count(server) == 2000
    assert len(versions) <= cap + 1 and "other" in versions
    assert server.metric("footfall_values_folded_total", field="app_version") == 2000 - cap
    page = httpx.get(f"{server.url}/apps/ga-tool", headers=bearer(server))
    assert page.status_code == 200 and page.text.count("<option") < cap + 100


def record(version: str, name: str = "run", app: str = "tool") -> EventRecord:
    moment = dt.datetime(2026, 11, 20, 12, 0, 0)
    return EventRecord(
        moment,
        moment,
        app,
        version,
        name,
        "i",
        "s",
        "linux",
        "6.1",
        "x86_64",
        "cpython",
        "3.12",
        "",
        "",
        "DE",
        "{}",
        "native",
    )


def test_the_guard_is_seeded_from_the_store_so_a_restart_keeps_the_cap(tmp_path: Path) -> None:
    from footfall.server.ingest.cardinality import OTHER, CardinalityGuard

    store = DuckDBStore(tmp_path / "footfall.duckdb")
    try:
        store.add_app("tool")
        store.write([record(f"1.{n}") for n in range(5)]).result(timeout=30)
        guard = CardinalityGuard(store, max_values=5)
        assert guard.fold(record("1.3")).app_version == "1.3"  # known: kept
        assert guard.fold(record("2.0")).app_version == OTHER  # new, and the field is full
        other_app = guard.fold(record("2.0", app="other-tool"))
        assert other_app.app_version == "2.0"  # the cap is per app
        roomy = CardinalityGuard(store, max_values=6)
        assert roomy.fold(record("3.0"), learn=False).app_version == "3.0"  # a preview: not remembered
        assert roomy.fold(record("3.1")).app_version == "3.1"
        assert roomy.fold(record("3.0")).app_version == OTHER
    finally:
        store.close()


def test_event_names_are_capped_too(ga_factory: Any) -> None:
    from footfall.server.ingest.cardinality import OTHER

    server = ga_factory(max_distinct_values=3, rate_per_client=0)
    with httpx.Client(base_url=server.url) as client:
        for n in range(10):
            body = ga4_body(events=[{"name": f"made_up_{n}"}])
            assert client.post("/mp/collect", params=ga4_params(), json=body).status_code == 204
    names = sorted(r[0] for r in server.store.query("SELECT DISTINCT name FROM events").rows)
    assert names == ["made_up_0", "made_up_1", "made_up_2", OTHER]


# -- 6. the per-app byte budget ------------------------------------------------------------


def test_native_over_the_byte_budget_is_429_with_retry_after(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(bytes_per_app=10, burst_bytes_per_app=20_000)
    events = [{"name": "run", "time": None, "props": {"label": "x" * 150}} for _ in range(60)]
    batch = with_fresh_times({"app": GOLDEN_APP, "context": {}, "events": events})
    packed = gzip.compress(json.dumps(batch).encode())
    assert len(packed) < 2_000 < 10_000 < len(json.dumps(batch))  # the budget counts inflated bytes
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    first = httpx.post(server.url + "/v1/batch", content=packed, headers=headers)
    second = httpx.post(server.url + "/v1/batch", content=packed, headers=headers)
    assert first.status_code == 202
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert second.json()["error"]["code"] == "rate_limited"
    assert server.metric("footfall_rate_limited_total", scope="app_bytes") == 1
    assert stored_count(server, GOLDEN_APP) == 60


def test_ga_over_the_byte_budget_is_a_counted_drop(ga_factory: Any) -> None:
    server = ga_factory(bytes_per_app=1, burst_bytes_per_app=2_000, rate_per_client=0)
    with httpx.Client(base_url=server.url) as client:
        v1 = [client.get("/collect", params=hit(el="x" * 150)) for _ in range(30)]
        ga4 = [client.post("/mp/collect", params=ga4_params(), json=ga4_body()) for _ in range(30)]
    assert {a.status_code for a in v1} == {200} and {a.status_code for a in ga4} == {204}
    stored = stored_count(server)
    assert 0 < stored < 20
    dropped_v1 = server.metric("footfall_events_rejected_total", protocol="ga-v1", reason="byte_budget")
    dropped_ga4 = server.metric("footfall_events_rejected_total", protocol="ga4", reason="byte_budget")
    assert dropped_v1 > 0 and dropped_ga4 > 0 and stored + dropped_v1 + dropped_ga4 == 60


@pytest.mark.parametrize("path", ["/debug/collect", "/debug/mp/collect?measurement_id=G-NONE"])
def test_the_debug_endpoints_are_rate_limited_too_and_still_answer_200(app_server_factory: Any, path: str) -> None:
    server = app_server_factory(rate_per_client=1, burst_per_client=5, **BEHIND_PROXY)
    body = b"v=1&tid=UA-1-1&cid=1.2&t=event&ec=a&ea=b" if "mp" not in path else b'{"client_id": "1.2", "events": []}'
    with httpx.Client(headers=REMOTE) as client:
        answers = [client.post(server.url + path, content=body) for _ in range(20)]
    assert all(a.status_code == 200 for a in answers)
    assert any("slow down" in a.text for a in answers)
    assert not any("slow down" in a.text for a in answers[:5])


# -- 7. the defaults, this host, and the warning when a limit bites (issue 9) -----------------


def native_batch(app: str, events: int) -> dict[str, Any]:
    batch: dict[str, Any] = with_fresh_times(
        {"app": app, "context": {}, "events": [{"name": "run", "time": None}] * events}
    )
    return batch


def test_this_host_is_not_limited_per_client_but_a_client_behind_a_trusted_proxy_is(app_server_factory: Any) -> None:
    local: InThreadServer = app_server_factory(rate_per_client=0.001, burst_per_client=2)
    with httpx.Client(base_url=local.url) as client:
        assert [client.post("/v1/batch", json=native_batch(GOLDEN_APP, 1)).status_code for _ in range(5)] == [202] * 5
    assert local.metric("footfall_rate_limited_total", scope="client") == 0

    proxied: InThreadServer = app_server_factory(rate_per_client=0.001, burst_per_client=2, **BEHIND_PROXY)
    with httpx.Client(base_url=proxied.url) as client:
        remote = [client.post("/v1/batch", json=native_batch(GOLDEN_APP, 1), headers=REMOTE) for _ in range(3)]
        # The trusted proxy's own requests (no X-Forwarded-For) are limited too: it speaks for others.
        own = [client.post("/v1/batch", json=native_batch(GOLDEN_APP, 1)) for _ in range(3)]
    assert [r.status_code for r in remote] == [202, 202, 429]
    assert [r.status_code for r in own] == [202, 202, 429]
    assert proxied.metric("footfall_rate_limited_total", scope="client") == 2


def test_the_defaults_let_a_busy_tool_through_from_this_host(app_server_factory: Any) -> None:
    """A benchmark or a busy tool on loopback, with the defaults a user gets: no 429, nothing dropped.
    100,000 events in a few seconds is past the old per-app default (5,000 events/s after a burst of
    50,000: here the in-thread server takes about 15,000 events/s), and 400 GA hits are past the
    per-client burst (200)."""
    server: InThreadServer = app_server_factory()
    server.store.add_key(GOLDEN_APP, "ga-tid", TID)
    body = gzip.compress(json.dumps(native_batch(GOLDEN_APP, 500)).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        native = [client.post("/v1/batch", content=body, headers=headers).status_code for _ in range(200)]
        ga = [client.get("/collect", params=hit(el=f"n{n}")).status_code for n in range(400)]
    assert native == [202] * 200 and ga == [200] * 400
    assert server.metric("footfall_events_accepted_total", protocol="native") == 100_000
    assert server.metric("footfall_events_accepted_total", protocol="ga-v1") == 400
    assert "footfall_rate_limited_total" not in httpx.get(server.url + "/metrics").text


def test_the_first_refusal_of_each_limit_logs_one_warning_naming_its_setting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(footfall_command("app", "add", "busy", "--data", str(data)), check=True, capture_output=True)
    limits = {"RATE_PER_APP": "0.001", "BURST_PER_APP": "2", "RATE_PER_CLIENT": "0.001", "BURST_PER_CLIENT": "5"}
    env = {f"FOOTFALL_{name}": value for name, value in {**limits, "TRUSTED_PROXIES": "127.0.0.1"}.items()}
    server = start_server(data, tmp_path / "server.log", env=env)
    try:
        with httpx.Client(base_url=server.url) as client:
            by_app = [client.post("/v1/batch", json=native_batch("busy", 2)).status_code for _ in range(5)]
            # Each client (the proxy itself, then a remote one) has 5 requests: then its own limit bites.
            by_client = [client.post("/v1/batch", json=native_batch("busy", 1), headers=REMOTE) for _ in range(7)]
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert by_app == [202, 429, 429, 429, 429] and {r.status_code for r in by_client} == {429}
    assert 'footfall_rate_limited_total{scope="app"} 9' in metrics
    assert 'footfall_rate_limited_total{scope="client"} 2' in metrics
    warnings = [json.loads(line) for line in server.log.read_text().splitlines() if "rate limit:" in line]
    assert [w["level"] for w in warnings] == ["warning", "warning"], warnings  # once per limit, not per request
    by_app_warning, by_client_warning = sorted(warnings, key=lambda w: "--rate-per-client" in w["message"])
    assert "app 'busy'" in by_app_warning["message"]
    for flag in ("--rate-per-app", "FOOTFALL_RATE_PER_APP", "--burst-per-app", "FOOTFALL_BURST_PER_APP"):
        assert flag in by_app_warning["message"]
    for flag in ("--rate-per-client", "FOOTFALL_RATE_PER_CLIENT", "--burst-per-client"):
        assert flag in by_client_warning["message"]
    assert "203.0.113" not in server.log.read_text()  # the warning never holds an address
