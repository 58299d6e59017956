"""The collector accepts the golden payloads and answers bad input with a 4xx JSON error.

What is stored, and forgotten, is tested on each store (`on_every_store`); the answers to bad
input, where nothing reaches a store, on DuckDB only.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest

from tests.conftest import GOLDEN_APP, InThreadServer, load_golden, with_fresh_times
from tests.stores import on_every_store, props_of

CASES = load_golden("invalid/cases.json")


def post(server: InThreadServer, body: Any = None, content: bytes | None = None, **headers: str) -> httpx.Response:
    data = content if content is not None else json.dumps(body).encode()
    return httpx.post(server.url + "/v1/batch", content=data, headers=headers, timeout=30)


@on_every_store
@pytest.mark.parametrize("name", ["batch-minimal.json", "batch-command.json"])
def test_golden_batches_are_accepted_and_stored(app_server: InThreadServer, name: str) -> None:
    golden = with_fresh_times(load_golden(name))
    response = post(app_server, golden)
    assert response.status_code == 202, response.text
    count = len(golden["events"])
    assert response.json() == {
        "accepted": count,
        "rejected": 0,
        "results": [{"status": "accepted"}] * count,
    }
    stored = app_server.store.query("SELECT name, props, source FROM events ORDER BY time").rows
    assert [row[0] for row in stored] == [e["name"] for e in golden["events"]]
    assert props_of(app_server.store) == [e["props"] for e in golden["events"]]
    assert {row[2] for row in stored} == {"native"}


@on_every_store
def test_gzip_bodies_are_accepted(app_server: InThreadServer) -> None:
    body = gzip.compress(json.dumps(with_fresh_times(load_golden("batch-command.json"))).encode())
    response = post(app_server, content=body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_bad_batches_get_a_4xx_json_error(app_server: InThreadServer, case: dict[str, Any]) -> None:
    if "body_text" in case:
        response = post(app_server, content=case["body_text"].encode())
    else:
        response = post(app_server, with_fresh_times(case["body"]))
    assert response.status_code == case["status"], response.text
    error = response.json()["error"]
    assert error["code"] == case["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert app_server.store.query("SELECT count(*) FROM events").rows == [(0,)]


@on_every_store
def test_each_bad_event_is_rejected_alone(app_server: InThreadServer) -> None:
    rejections = CASES["event_rejections"]
    good = {"name": "good", "time": None}
    batch = with_fresh_times(
        {
            "app": GOLDEN_APP,
            "context": {},
            "events": [good, *[r["event"] for r in rejections], good],
        }
    )
    response = post(app_server, batch)
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert results[0] == results[-1] == {"status": "accepted"}
    assert [r.get("code") for r in results[1:-1]] == [r["code"] for r in rejections]
    assert response.json()["accepted"] == 2
    assert app_server.store.query("SELECT count(*) FROM events").rows == [(2,)]


def test_too_many_events(app_server: InThreadServer) -> None:
    batch = with_fresh_times({"app": GOLDEN_APP, "context": {}, "events": [{"name": "a", "time": None}] * 501})
    response = post(app_server, batch)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_events"


def test_oversized_and_bomb_bodies_get_413(app_server: InThreadServer) -> None:
    response = post(app_server, content=b"x" * (512 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    assert len(bomb) < 512 * 1024
    response = post(app_server, content=bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({"Content-Encoding": "br"}, b"{}", "unsupported_encoding"),
        ({"Content-Encoding": "gzip"}, b"not gzip at all", "invalid_gzip"),
        ({"Content-Encoding": "gzip"}, gzip.compress(b'{"app": "x"}')[:-12], "invalid_gzip"),
    ],
)
def test_bad_encodings(app_server: InThreadServer, headers: dict[str, str], body: bytes, code: str) -> None:
    response = post(app_server, content=body, **headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_unknown_paths_and_methods_answer_json(app_server: InThreadServer) -> None:
    missing = httpx.get(app_server.url + "/v2/batch")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(app_server.url + "/v1/batch")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_healthz(app_server: InThreadServer) -> None:
    assert httpx.get(app_server.url + "/healthz").json() == {"status": "ok"}


@on_every_store
def test_raw_ids_are_stored_only_as_keyed_hashes(app_server: InThreadServer) -> None:
    golden = with_fresh_times(load_golden("batch-command.json"))
    assert post(app_server, golden).status_code == 202
    raw_install, raw_session = golden["context"]["install"], golden["context"]["session"]
    rows = app_server.store.query("SELECT * FROM events").rows
    text = repr(rows)
    assert raw_install not in text and raw_session not in text
    installs = {row[5] for row in rows}
    assert len(installs) == 1 and len(next(iter(installs))) == 32


@on_every_store
def test_forget_deletes_every_event_of_one_install(app_server: InThreadServer) -> None:
    mine = with_fresh_times(load_golden("batch-command.json"))
    other = with_fresh_times(load_golden("batch-command.json"))
    other["context"]["install"] = "1" * 32
    for batch in (mine, mine, other):
        assert post(app_server, batch).status_code == 202
    forget = {"app": GOLDEN_APP, "install": mine["context"]["install"]}
    response = httpx.post(app_server.url + "/v1/forget", json=forget)
    assert response.status_code == 200 and response.json() == {"status": "accepted"}
    assert app_server.store.query("SELECT count(*) FROM events").rows == [(2,)]
    again = httpx.post(app_server.url + "/v1/forget", json=forget)
    assert (again.status_code, again.json()) == (200, {"status": "accepted"}), "the same answer: no oracle"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"app": GOLDEN_APP}, 400),
        ({"app": GOLDEN_APP, "install": ""}, 400),
        ([], 400),
        ({"app": "Not An App", "install": "a" * 32}, 400),
    ],
)
def test_forget_refuses_bad_input(app_server: InThreadServer, body: Any, status: int) -> None:
    response = httpx.post(app_server.url + "/v1/forget", json=body)
    assert response.status_code == status
    assert "code" in response.json()["error"]
