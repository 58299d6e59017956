"""Red team: poison batches must not lose other clients' acknowledged events, and one
request must not stall the server.

Found: a lone surrogate ("\\ud800", a valid JSON escape) in a context field passed
validation and got 202; DuckDB's insert then failed for the whole group commit, so every
other request in that group was spooled, and the spool's replayer stopped at the bad file
for good. And the safety net, run on the event loop, held /healthz for seconds. (The spool
is now the ingest log; its loader must hold the same line.)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import gzip
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest

from footfall.server.errors import StoreUnavailable
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.pipeline import keyed_hash
from footfall.server.ingest.segments import encode, sealed_segments
from footfall.server.operations import secret_hash
from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import GOLDEN_APP, InThreadServer, footfall_command, iso, start_server
from tests.stores import SlowLookupStore

SURROGATE = "\\ud800"  # as it travels: a JSON escape that json.loads turns into a lone surrogate
CONTEXT_FIELDS = [
    ("app_version",),
    *[("platform", f) for f in ("os", "os_version", "arch", "runtime", "runtime_version")],
    *[("environment", f) for f in ("ci", "container")],
]


def batch_text(install: str, count: int, poison_at: tuple[str, ...] | None = None) -> bytes:
    """A native batch as JSON text, with a lone-surrogate escape at one context field if asked."""
    now = dt.datetime.now(dt.timezone.utc)
    context: dict[str, Any] = {
        "install": install,
        "session": install + "-run",
        "app_version": "1.0.0",
        "platform": {"os": "linux", "os_version": "6.1", "arch": "x86_64", "runtime": "cpython"},
        "environment": {"ci": "", "container": ""},
    }
    marker = "@@POISON@@"
    if poison_at is not None:
        target = context
        for key in poison_at[:-1]:
            target = target[key]
        target[poison_at[-1]] = marker
    events = [{"name": "command", "time": iso(now - dt.timedelta(seconds=count - i))} for i in range(count)]
    text = json.dumps({"app": GOLDEN_APP, "context": context, "events": events})
    return text.replace(marker, "x" + SURROGATE).encode()


def stored_count(store: DuckDBStore) -> int:
    return int(store.query("SELECT count(*) FROM events").rows[0][0])


@pytest.mark.parametrize("field", CONTEXT_FIELDS, ids=".".join)
def test_a_lone_surrogate_in_any_context_field_is_refused(app_server: InThreadServer, field: tuple[str, ...]) -> None:
    response = httpx.post(
        app_server.url + "/v1/batch",
        content=batch_text("poisoned-01", 2, field),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_context"
    assert stored_count(app_server.store) == 0


def test_poison_batches_racing_honest_ones_lose_no_honest_event(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(rate_per_client=0, rate_per_app=0)
    honest, poison, per_batch = 60, 20, 20
    jobs = [("honest", i) for i in range(honest)] + [("poison", i) for i in range(poison)]
    jobs.sort(key=lambda job: (job[1] % 4, job[0]))  # interleave them

    def send(job: tuple[str, int]) -> tuple[str, int, int]:
        kind, n = job
        field = CONTEXT_FIELDS[n % len(CONTEXT_FIELDS)] if kind == "poison" else None
        body = batch_text(f"{kind}-install-{n:04d}", per_batch, field)
        with httpx.Client(timeout=30) as client:
            response = client.post(server.url + "/v1/batch", content=body, headers={"Content-Type": "application/json"})
        accepted = response.json().get("accepted", 0) if response.status_code == 202 else 0
        return kind, response.status_code, accepted

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, jobs))
    acknowledged = sum(accepted for _, _, accepted in results)
    assert all(status == 202 for kind, status, _ in results if kind == "honest")
    assert all(status == 400 for kind, status, _ in results if kind == "poison")
    assert acknowledged == honest * per_batch
    assert stored_count(server.store) == acknowledged
    assert server.app.state.context.log.quarantined() == 0


def record(name: str = "command", version: str = "1.0.0", install: str = "a" * 32) -> EventRecord:
    moment = dt.datetime(2026, 11, 30, 12, 0, 0)
    return EventRecord(
        time=moment,
        received=moment,
        app=GOLDEN_APP,
        app_version=version,
        name=name,
        install=install,
        session="b" * 32,
        os="linux",
        os_version="6.1",
        arch="x86_64",
        runtime="cpython",
        runtime_version="3.11",
        ci="",
        container="",
        country="",
        props="{}",
        source="native",
    )


def test_the_store_refuses_a_bad_record_alone(tmp_path: Path) -> None:
    """Below the pipeline: a record the engine cannot take fails neither its group nor its own batch."""
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    try:
        store.add_app(GOLDEN_APP)
        futures: list[Future[Any]] = []
        for n in range(30):  # queued back to back, so the writer commits them in groups
            bad = n % 3 == 0
            futures.append(store.write([record(), record(version="x\ud800" if bad else "2.0"), record()]))
        refused = [f.result(timeout=30) for f in futures]
        assert refused == [(1,) if n % 3 == 0 else () for n in range(30)]
        assert stored_count(store) == 30 * 3 - 10
    finally:
        store.close()


def line(item: EventRecord) -> bytes:
    return encode(item)


def put_segment(ingest_log: IngestLog, number: int, lines: list[bytes]) -> None:
    """A sealed segment, as a writer leaves it (written aside, then renamed: a loader may be looking)."""
    temporary = ingest_log.folder / f".segment-{number}.tmp"
    temporary.write_bytes(b"".join(lines))
    temporary.rename(ingest_log.folder / f"{number:020d}-00-0000test.seg")


def test_an_unloadable_segment_is_quarantined_line_by_line_not_retried_ahead_of_good_data(
    app_server: InThreadServer,
) -> None:
    ingest_log: IngestLog = app_server.app.state.context.log
    good = line(record(install="c" * 32))
    poisoned = line(record(version="x\ud800"))  # escaped in the line; the engine refuses it
    put_segment(ingest_log, 1, [good, poisoned, b"{not json\n", good])
    put_segment(ingest_log, 2, [good])

    ingest_log.catch_up()
    assert sealed_segments(ingest_log.folder) == []
    assert stored_count(app_server.store) == 3
    assert ingest_log.quarantined() == 2

    ready = httpx.get(app_server.url + "/readyz")
    assert ready.status_code == 200  # collection goes on; the operator is told
    assert any("quarantine" in w for w in ready.json()["warnings"])
    metrics = httpx.get(app_server.url + "/metrics").text
    assert "footfall_log_quarantined_events 2" in metrics
    assert ingest_log.load_ready() == 0  # nothing is retried forever


def test_a_removed_apps_logged_events_are_not_loaded(app_server: InThreadServer) -> None:
    ingest_log: IngestLog = app_server.app.state.context.log
    app_server.store.add_app("leaving")
    leaving = dataclasses.replace(record(), app="leaving")
    app_server.store.remove_app("leaving")
    put_segment(ingest_log, 1, [line(leaving), line(record())])
    ingest_log.catch_up()
    assert app_server.store.query("SELECT DISTINCT app FROM events").rows == [(GOLDEN_APP,)]
    assert sealed_segments(ingest_log.folder) == [] and ingest_log.quarantined() == 0


def test_forget_reaches_quarantined_events(app_server: InThreadServer) -> None:
    """Quarantine keeps what could not be stored for an operator, but not past a user's forget."""
    ingest_log: IngestLog = app_server.app.state.context.log
    ingestor = app_server.app.state.context.ingestor
    raw = "quarantined-install-01"
    hashed = keyed_hash(ingestor._key, "install", GOLDEN_APP, raw)
    put_segment(ingest_log, 1, [line(record(version="x\ud800", install=hashed)), line(record(version="y\ud800"))])
    ingest_log.catch_up()
    assert ingest_log.quarantined() == 2
    response = httpx.post(app_server.url + "/v1/forget", json={"app": GOLDEN_APP, "install": raw})
    assert response.status_code == 200
    assert ingest_log.quarantined() == 1
    assert hashed not in "".join(path.read_text() for path in ingest_log.quarantine.iterdir())


GA_CONTROL_CASES = [
    {"av": "1.0\x1b[31m"},
    {"an": "tool\x00name"},
    {"el": "label\u202ereversed"},
    {"ea": "act\x07ion"},
]


@pytest.mark.parametrize("extra", GA_CONTROL_CASES, ids=lambda e: next(iter(e)))
def test_ga_v1_text_with_control_characters_is_not_stored(app_server: InThreadServer, extra: dict[str, str]) -> None:
    app_server.store.add_key(GOLDEN_APP, "ga-tid", "UA-777-1")
    params = {"v": "1", "tid": "UA-777-1", "cid": "1234567.89012345", "t": "event", "ec": "cat", "ea": "act"}
    response = httpx.post(app_server.url + "/collect", content=urllib.parse.urlencode({**params, **extra}))
    assert response.status_code == 200  # GA semantics: always 2xx
    clean = httpx.post(app_server.url + "/collect", content=urllib.parse.urlencode(params))
    assert clean.status_code == 200
    rows = app_server.store.query("SELECT app_version, name, props FROM events").rows
    assert len(rows) >= 1
    for row in rows:
        for text in row:
            assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E for c in text), row


def test_ga4_lone_surrogates_are_not_stored(app_server: InThreadServer) -> None:
    app_server.store.add_key(GOLDEN_APP, "ga4", "G-POISON1", secret_hash("s3cret"))
    body = (
        '{"client_id": "1234.5678", "events": ['
        '{"name": "poisoned", "params": {"label": "x\\ud800y", "ok": "fine"}},'
        '{"name": "clean", "params": {"label": "fine"}}]}'
    )
    url = app_server.url + "/mp/collect?measurement_id=G-POISON1&api_secret=s3cret"
    response = httpx.post(url, content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 204
    rows = app_server.store.query("SELECT name, props FROM events ORDER BY name").rows
    assert rows[0] == ("clean", '{"label":"fine"}')  # its neighbour is stored
    for _, props in rows[1:]:  # the poisoned event is dropped, or kept without the bad property
        assert json.loads(props) == {"ok": "fine"}
    assert app_server.app.state.context.log.quarantined() == 0


@pytest.mark.parametrize(
    "where",
    ["app_version", "os", "ci", "prop_key", "prop_value", "list_item"],
)
def test_sensitive_text_is_not_stored_in_any_field(app_server: InThreadServer, where: str) -> None:
    email = "alice@example.com"
    now = dt.datetime.now(dt.timezone.utc)
    context: dict[str, Any] = {
        "install": "sensitive-01",
        "app_version": email if where == "app_version" else "1.0",
        "platform": {"os": email if where == "os" else "linux"},
        "environment": {"ci": email if where == "ci" else ""},
    }
    props: dict[str, Any] = {"mode": "fast"}
    if where == "prop_value":
        props["owner"] = email
    if where == "list_item":
        props["owners"] = ["bob", email]
    if where == "prop_key":
        props["a0123456789abcdef0123456789abcdef0123456789"] = True  # a hex token as a key
    batch = {"app": GOLDEN_APP, "context": context, "events": [{"name": "command", "time": iso(now), "props": props}]}
    response = httpx.post(app_server.url + "/v1/batch", json=batch)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    rows = app_server.store.query("SELECT * FROM events").rows
    assert len(rows) == 1
    assert "alice" not in repr(rows[0]) and "0123456789abcdef0123" not in repr(rows[0])
    assert '"mode":"fast"' in str(rows[0])  # the rest of the event is kept


HOSTILE_STRING = "aA1-" * 50  # 200 characters that kept the old token pattern scanning to the end from every start


def hostile_body() -> bytes:
    """About 4 MiB inflated, 20 KB on the wire: every property a long string the safety net must look at."""
    now = dt.datetime.now(dt.timezone.utc)
    props = {f"p{n}": HOSTILE_STRING for n in range(32)}
    events = [{"name": "command", "time": iso(now), "props": props} for _ in range(500)]
    batch = {"app": "hostile", "context": {"install": "hostile-000001"}, "events": events}
    return gzip.compress(json.dumps(batch).encode())


def test_healthz_answers_promptly_while_hostile_batches_are_processed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(footfall_command("app", "add", "hostile", "--data", str(data)), check=True, capture_output=True)
    server = start_server(
        data,
        tmp_path / "server.log",
        env={"FOOTFALL_RATE_PER_CLIENT": "0", "FOOTFALL_RATE_PER_APP": "0", "FOOTFALL_BYTES_PER_APP": "0"},
    )
    body = hostile_body()
    assert len(body) < 64 * 1024
    try:
        stop = threading.Event()
        answered: list[int] = []

        def attack() -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set() and len(answered) < 12:  # bounded
                    response = client.post(
                        server.url + "/v1/batch",
                        content=body,
                        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                    )
                    answered.append(response.status_code)

        attackers = [threading.Thread(target=attack) for _ in range(3)]
        for thread in attackers:
            thread.start()
        time.sleep(0.3)
        latencies = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            started = time.monotonic()
            with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
                assert response.status == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        stop.set()
        for thread in attackers:
            thread.join(60)
        assert answered and all(status == 202 for status in answered)
        latencies.sort()
        # The bound the issue sets; generous on a shared 2-core machine, where the old code took seconds.
        assert latencies[int(len(latencies) * 0.9)] < 0.25, latencies[-5:]
        assert latencies[-1] < 1.0, latencies[-5:]
    finally:
        server.stop()


def test_retrying_while_the_store_is_down_never_repeats_a_quarantined_line(tmp_path: Path) -> None:
    """Review: the undecodable lines were appended to quarantine on every retry, one copy a second."""
    down = DuckDBStore(tmp_path / "down.duckdb")
    down.add_app(GOLDEN_APP)
    down.close()  # every load now fails as unavailable
    ingest_log = IngestLog(tmp_path / "log", down, 0, 0)
    put_segment(ingest_log, 1, [line(record()), b"{not json\n"])
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            ingest_log.load_ready()
    assert ingest_log.quarantined() == 0  # nothing was judged while the store could not answer
    ingest_log.close()
    store = DuckDBStore(tmp_path / "up.duckdb")
    store.add_app(GOLDEN_APP)
    back = IngestLog(tmp_path / "log", store, 0, 0)
    try:
        assert back.load_ready() == 1
        assert back.quarantined() == 1 and sealed_segments(tmp_path / "log") == []
    finally:
        back.close()
        store.close()


def test_key_lookups_never_hold_the_event_loop(app_server_factory: Any, tmp_path: Path) -> None:
    """Review: GA4 and InfluxDB looked their key up on the event loop; on an ingest worker an
    unknown key asks the owner, so a slow owner stalled every client of that worker."""
    server = app_server_factory(store=SlowLookupStore(tmp_path / "slow.duckdb"))
    stop = threading.Event()
    answered: list[int] = []

    def unknown_keys() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set() and len(answered) < 40:  # bounded
                answered.append(
                    client.post(
                        server.url + "/api/v2/write?bucket=b",
                        content=b"m n=1i",
                        headers={"Authorization": "Token unknown-token-0123456789"},
                    ).status_code
                )
                answered.append(client.post(server.url + "/mp/collect?measurement_id=G-UNKNOWN&api_secret=x",
                                            json={"client_id": "1.2", "events": [{"name": "run"}]}).status_code)  # fmt: skip

    senders = [threading.Thread(target=unknown_keys) for _ in range(3)]
    for thread in senders:
        thread.start()
    time.sleep(0.3)
    latencies = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in senders:
            thread.join(60)
    assert set(answered) == {401, 204}, "unknown keys: InfluxDB's 401, GA4's silent 204"
    # Each lookup takes 0.5 s; on the event loop, /healthz waited behind them.
    assert max(latencies) < 1.0, sorted(latencies)[-5:]  # generous on a shared machine; it stalled 3 s
