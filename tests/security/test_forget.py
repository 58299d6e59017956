"""Red-team regressions for forgetting an install and for the debug endpoints.

- `/v1/forget` must reach every id form a protocol stores (GA v1 `cid`/`uid`, GA4
  `client_id`, Firebase `app_instance_id`, native ids), answer the same whether anything
  was kept, and reach the ingest log too, so nothing comes back with a load.
- The debug endpoints must not hand out the keyed hash of a chosen id.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.segments import sealed_segments
from footfall.server.operations import secret_hash
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import GOLDEN_APP, InThreadServer, with_fresh_times
from tests.stores import FlakyStore

TID = "UA-12345-1"
MEASUREMENT_ID = "G-TEST12345"
FIREBASE_ID = "1:1234567890:android:321abc456def7890"
SECRET = "s3cr3t-api-key"
GA_CID = "1234567.89012345"  # what GA v1 clients (analytics.js, most libraries) send
NATIVE_ID = "a" * 32


def with_keys(server: InThreadServer) -> InThreadServer:
    server.store.add_key(GOLDEN_APP, "ga-tid", TID)
    server.store.add_key(GOLDEN_APP, "ga4", MEASUREMENT_ID, secret_hash(SECRET))
    server.store.add_key(GOLDEN_APP, "firebase", FIREBASE_ID, secret_hash(SECRET))
    return server


def native_batch(install: str, n: int = 0) -> dict[str, Any]:
    return with_fresh_times(
        {
            "app": GOLDEN_APP,
            "context": {"install": install},
            "events": [{"name": "start", "time": None, "props": {"n": n}}],
        }
    )


def forget(server: InThreadServer, install: Any, app: Any = GOLDEN_APP) -> httpx.Response:
    return httpx.post(server.url + "/v1/forget", json={"app": app, "install": install}, timeout=30)


def installs(server: InThreadServer) -> list[str]:
    return [row[0] for row in server.store.query("SELECT install FROM events ORDER BY install").rows]


def send_ga_v1(server: InThreadServer, **ids: str) -> None:
    hit = {"v": "1", "tid": TID, "t": "event", "ec": "cli", "ea": "run", **ids}
    assert httpx.post(server.url + "/collect", data=hit).status_code == 200


def send_ga4(server: InThreadServer, id_field: str, value: str, **query: str) -> None:
    params = {"api_secret": SECRET, **query}
    body = {id_field: value, "events": [{"name": "search", "params": {"n": 1}}]}
    response = httpx.post(server.url + "/mp/collect", params=params, content=json.dumps(body).encode())
    assert response.status_code == 204


# -- every id form can be forgotten ---------------------------------------------------


@pytest.mark.parametrize(
    ("send", "raw_id"),
    [
        (lambda s: send_ga_v1(s, cid=GA_CID), GA_CID),
        (lambda s: send_ga_v1(s, uid="user 42@example"), "user 42@example"),
        (lambda s: send_ga_v1(s, cid="35009a79-1a05-49d7-b876-2b884d0f825b"), "35009a79-1a05-49d7-b876-2b884d0f825b"),
        (
            lambda s: send_ga4(s, "client_id", "1234567890.1764300000", measurement_id=MEASUREMENT_ID),
            "1234567890.1764300000",
        ),
        (
            lambda s: send_ga4(s, "app_instance_id", "abcdef0123456789abcdef0123456789", firebase_app_id=FIREBASE_ID),
            "abcdef0123456789abcdef0123456789",
        ),
        (lambda s: httpx.post(s.url + "/v1/batch", json=native_batch(NATIVE_ID)), NATIVE_ID),
    ],
    ids=["ga-v1-dotted-cid", "ga-v1-uid", "ga-v1-uuid-cid", "ga4-client-id", "firebase-app-instance-id", "native"],
)
def test_every_stored_id_form_can_be_forgotten(app_server: InThreadServer, send: Any, raw_id: str) -> None:
    server = with_keys(app_server)
    send(server)
    send(server)
    assert httpx.post(server.url + "/v1/batch", json=native_batch("b" * 32)).status_code == 202  # someone else
    assert len(installs(server)) == 3
    response = forget(server, raw_id)
    assert response.status_code == 200, response.text
    assert len(installs(server)) == 1, "only the other install's event is left"


# -- one answer, whatever exists --------------------------------------------------------


def test_forget_answers_the_same_whether_anything_was_kept(app_server: InThreadServer) -> None:
    server = with_keys(app_server)
    send_ga_v1(server, uid="alice")
    answers = [
        forget(server, "alice"),  # stored: deleted
        forget(server, "alice"),  # gone now
        forget(server, "bob"),  # never seen
        forget(server, "alice", app="no-such-app"),  # no such app
    ]
    assert {(a.status_code, a.text) for a in answers} == {(200, '{"status":"accepted"}')}
    assert installs(server) == []


@pytest.mark.parametrize(
    "body",
    [
        {"app": GOLDEN_APP},
        {"app": GOLDEN_APP, "install": ""},
        {"app": GOLDEN_APP, "install": 12345},
        {"app": GOLDEN_APP, "install": "x" * 8193},
        {"app": "Not An App", "install": NATIVE_ID},
        {"install": NATIVE_ID},
        [],
    ],
)
def test_a_malformed_forget_is_a_clear_400(app_server: InThreadServer, body: Any) -> None:
    response = httpx.post(app_server.url + "/v1/forget", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_lone_surrogate_id_is_a_400_not_a_500(app_server: InThreadServer) -> None:
    body = b'{"app": "%s", "install": "ab\\ud800cd"}' % GOLDEN_APP.encode()
    response = httpx.post(app_server.url + "/v1/forget", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_forget_keeps_its_rate_limit(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(forget_per_minute=2)
    statuses = [forget(server, f"nobody-{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 429]


# -- the ingest log --------------------------------------------------------------------


def test_forgotten_events_in_the_log_are_never_loaded(app_server_factory: Any, tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "flaky.duckdb")
    server: InThreadServer = app_server_factory(store=store)
    ingest_log: IngestLog = server.app.state.context.log
    store.failing = True
    for n in range(3):
        for install in (NATIVE_ID, "b" * 32):
            assert httpx.post(server.url + "/v1/batch", json=native_batch(install, n)).status_code == 202
    assert forget(server, NATIVE_ID).status_code == 200
    lines = b"".join(p.read_bytes() for p in sealed_segments(ingest_log.folder)).splitlines()
    assert len(lines) == 3
    for path in sealed_segments(ingest_log.folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in ingest_log.folder.iterdir() if p.name.startswith(".")], "no temporary file left"
    store.failing = False  # the store is back
    ingest_log.load_ready()
    rows = store.query("SELECT install, props FROM events ORDER BY props").rows
    assert len(rows) == 3 and len({install for install, _ in rows}) == 1
    assert [json.loads(p)["n"] for _, p in rows] == [0, 1, 2]


def test_forget_then_load_and_load_then_forget_both_leave_nothing(app_server_factory: Any, tmp_path: Path) -> None:
    """The two orders a forget and a load can take; `Ingestor.forget` documents why both are safe."""
    store = FlakyStore(tmp_path / "flaky.duckdb")
    server: InThreadServer = app_server_factory(store=store)
    ingest_log: IngestLog = server.app.state.context.log
    store.failing = True
    assert httpx.post(server.url + "/v1/batch", json=native_batch(NATIVE_ID)).status_code == 202
    store.failing = False
    ingest_log.catch_up()  # load first ...
    assert forget(server, NATIVE_ID).status_code == 200  # ... then forget
    assert installs(server) == []
    store.failing = True
    assert httpx.post(server.url + "/v1/batch", json=native_batch(NATIVE_ID)).status_code == 202
    assert forget(server, NATIVE_ID).status_code == 200  # forget first ...
    store.failing = False
    ingest_log.catch_up()  # ... then load
    assert installs(server) == [] and sealed_segments(ingest_log.folder) == []


class GatedStore(FlakyStore):
    """Segment loads wait at a gate while `held`: a load paused between reading and committing."""

    held = False

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered, self.gate = threading.Event(), threading.Event()

    def load_segment(self, path: Path, segment: str) -> int | None:
        if self.held:
            self.entered.set()
            self.gate.wait(30)
        return super().load_segment(path, segment)


def test_a_forget_racing_a_load_leaves_nothing(app_server_factory: Any, tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "gated.duckdb")
    server: InThreadServer = app_server_factory(store=store)
    ingest_log: IngestLog = server.app.state.context.log
    store.failing = True
    assert httpx.post(server.url + "/v1/batch", json=native_batch(NATIVE_ID)).status_code == 202
    ingest_log.writer.seal()
    store.failing, store.held = False, True
    load = threading.Thread(target=ingest_log.load_ready)
    load.start()
    assert store.entered.wait(10), "the load read the segment and is about to store it"
    answers: list[int] = []
    forgetting = threading.Thread(target=lambda: answers.append(forget(server, NATIVE_ID).status_code))
    forgetting.start()
    forgetting.join(1.0)  # a safe forget waits here for the load; an unsafe one finishes
    store.gate.set()
    load.join(30)
    forgetting.join(30)
    store.held = False
    assert answers == [200]
    assert installs(server) == [], "the load's rows came after the forget's delete"


def test_log_forget_keeps_other_lines_and_deletes_emptied_files(tmp_path: Path) -> None:
    from footfall.server.stores.base import EventRecord

    def record(app: str, install: str, n: int) -> EventRecord:
        moment = __import__("datetime").datetime(2026, 1, 1, 12, 0, n)
        return EventRecord(
            moment, moment, app, "1.0", "start", install, "s" * 32, "linux", "6.1", "x86_64", "cpython", "3.12",
            "", "", "", json.dumps({"n": n}), "native",
        )  # fmt: skip

    store = DuckDBStore(tmp_path / "events.duckdb")
    ingest_log = IngestLog(tmp_path / "log", store, 0, 0, segment_age_s=60)
    try:
        ingest_log.append([record("tool", "h1", 0), record("tool", "h2", 1), record("other", "h1", 2)]).result(10)
        ingest_log.writer.seal()
        ingest_log.append([record("tool", "h1", 3)]).result(10)
        assert ingest_log.forget("tool", "h1") == 2
        (left,) = sealed_segments(tmp_path / "log")
        lines = [json.loads(line) for line in left.read_text().splitlines()]
        assert [(row["app"], row["install"]) for row in lines] == [("tool", "h2"), ("other", "h1")]
        assert ingest_log.forget("tool", "nobody") == 0 and ingest_log.forget("tool", "") == 0
        assert os.listdir(tmp_path / "log") == [left.name]
    finally:
        ingest_log.close()
        store.close()


# -- debug endpoints are no hash oracle ----------------------------------------------------


def test_ga_debug_collect_hides_the_stored_hash(app_server: InThreadServer) -> None:
    server = with_keys(app_server)
    send_ga_v1(server, cid=GA_CID)
    (stored_hash,) = installs(server)
    answer = httpx.get(
        server.url + "/debug/collect",
        params={"v": "1", "tid": TID, "cid": GA_CID, "t": "event", "ec": "cli", "ea": "run"},
    )
    record = answer.json()["hitParsingResult"][0]["footfall"]["stored"]
    assert record["install"] == "<keyed hash>" and record["session"] == "<keyed hash>"
    assert record["name"] == "event" and record["props"] == {"category": "cli", "action": "run"}
    assert stored_hash not in answer.text


@pytest.mark.parametrize("secret", [SECRET, "a-wrong-secret"])
def test_ga4_debug_hides_the_stored_hash_whatever_the_secret(app_server: InThreadServer, secret: str) -> None:
    server = with_keys(app_server)
    send_ga4(server, "client_id", "555.666", measurement_id=MEASUREMENT_ID)
    (stored_hash,) = installs(server)
    body = {"client_id": "555.666", "events": [{"name": "search", "params": {"n": 1}}]}
    answer = httpx.post(
        server.url + "/debug/mp/collect",
        params={"measurement_id": MEASUREMENT_ID, "api_secret": secret},
        content=json.dumps(body).encode(),
    )
    (record,) = answer.json()["footfall"]["stored"]
    assert record["install"] == "<keyed hash>" and record["name"] == "search"
    assert stored_hash not in answer.text
    assert installs(server) == [stored_hash], "the debug endpoint stored nothing"


# -- the data directory is private ---------------------------------------------------------


def loose_modes(data: Path) -> dict[str, str]:
    """Every path under `data` (and `data` itself) whose mode is not 0700 (folders) or 0600 (files)."""
    found = {}
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            found[str(path.relative_to(data))] = oct(mode)
    return found


def test_a_serving_data_directory_is_private(tmp_path: Path) -> None:
    from tests.conftest import footfall_command, start_server

    data = tmp_path / "data"
    subprocess.run(footfall_command("app", "add", GOLDEN_APP, "--data", str(data)), check=True, capture_output=True)
    server = start_server(data, tmp_path / "server.log")
    try:
        for n in range(3):
            response = httpx.post(server.url + "/v1/batch", json=native_batch(NATIVE_ID, n), timeout=30)
            assert response.status_code == 202
        login = httpx.get(server.url + "/api/v1/apps", headers={"Authorization": f"Bearer {server.token}"})
        assert login.status_code == 200
        names = {p.name for p in data.iterdir()}
        wanted = {"footfall.duckdb", "footfall.duckdb.wal", "secrets.json", "server.json", "accounts.sqlite"}
        assert wanted | {"accounts.sqlite-wal", "accounts.sqlite-shm"} <= names, names
        assert loose_modes(data) == {}, "while serving"
    finally:
        assert server.stop() == 0
    assert loose_modes(data) == {}, "after serving"


def test_a_demo_data_directory_is_private(tmp_path: Path) -> None:
    from tests.conftest import footfall_command

    data = tmp_path / "demo"
    result = subprocess.run(
        footfall_command("demo", "--data", str(data), "--scale", "0.05", "--days", "3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (data / "footfall.duckdb").exists() and loose_modes(data) == {}


def test_a_readable_data_directory_from_an_older_version_is_tightened(tmp_path: Path) -> None:
    from tests.conftest import footfall_command

    data = tmp_path / "old"
    (data / "log").mkdir(parents=True)
    for name in ("accounts.sqlite", "log/00000000000000000001-00-aaaaaaaa.seg"):
        (data / name).write_text("")
        os.chmod(data / name, 0o644)
    (data / "backup.sh").write_text("#!/bin/sh\n")  # the operator's own file: not Footfall's to change
    os.chmod(data / "backup.sh", 0o755)
    os.chmod(data, 0o755)
    os.chmod(data / "log", 0o755)
    result = subprocess.run(footfall_command("app", "list", "--data", str(data)), capture_output=True, text=True)
    assert loose_modes(data) == {"backup.sh": "0o755"}, result.stderr


# -- SDKs already deployed -------------------------------------------------------------------


def released_sdk_forget(transport: Any, app: str, install: str) -> int:
    """`Client.forget` as SDK releases up to commit afbc0ce shipped it, line for line.

    Those SDKs take only a 200 as success, then read `deleted` with a default of 0.
    Their transport (`HttpTransport.post_json`: gzip JSON, the same headers) is unchanged.
    """
    status, body, _ = transport.post_json("/v1/forget", {"app": app, "install": install})
    if status != 200:
        raise OSError(f"the collector answered {status}")
    deleted = json.loads(body).get("deleted", 0)
    return int(deleted)


def test_a_released_sdk_forget_still_succeeds(app_server: InThreadServer) -> None:
    from footfall.transport import HttpTransport

    assert httpx.post(app_server.url + "/v1/batch", json=native_batch(NATIVE_ID)).status_code == 202
    assert released_sdk_forget(HttpTransport(app_server.url), GOLDEN_APP, NATIVE_ID) == 0, (
        "a clean success: the old `analytics forget` says it is done, with no count to leak"
    )
    assert installs(app_server) == []
