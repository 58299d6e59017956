"""The GA4 Measurement Protocol: the real ga4mp client, GA4's limits and validation codes.

What is stored, and the requests dropped for a key or secret the store's registry does not hold,
are tested on each store (`on_every_store`); limits and validation, where nothing reaches a
store, on DuckDB only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from footfall.server.operations import secret_hash
from tests.conftest import InThreadServer
from tests.stores import on_every_store

MEASUREMENT_ID = "G-TEST12345"
SECRET = "s3cr3t-api-key"
FIREBASE_ID = "1:1234567890:android:321abc456def7890"


@pytest.fixture
def ga4_server(app_server: InThreadServer) -> InThreadServer:
    app_server.store.add_app("ga4-tool")
    app_server.store.add_key("ga4-tool", "ga4", MEASUREMENT_ID, secret_hash(SECRET))
    app_server.store.add_key("ga4-tool", "firebase", FIREBASE_ID, secret_hash(SECRET))
    return app_server


def stored(server: InThreadServer) -> list[dict[str, Any]]:
    rows = server.store.query(
        "SELECT name, install, session, props, source, time FROM events WHERE app = 'ga4-tool' ORDER BY time, name"
    ).dicts()
    for row in rows:
        row["props"] = json.loads(row["props"])
    return rows


def post(server: InThreadServer, body: Any, debug: bool = False, **query: str) -> httpx.Response:
    params = {"measurement_id": MEASUREMENT_ID, "api_secret": SECRET, **query}
    path = "/debug/mp/collect" if debug else "/mp/collect"
    return httpx.post(server.url + path, params=params, content=json.dumps(body).encode())


@on_every_store
def test_the_ga4mp_client(ga4_server: InThreadServer) -> None:
    from ga4mp import GtagMP

    tracker = GtagMP(api_secret=SECRET, measurement_id=MEASUREMENT_ID, client_id="1234567890.1764300000")
    tracker._base_domain = ga4_server.url + "/mp/collect"  # re-pointed: GA4 proper is not reachable here
    tracker._validation_domain = ga4_server.url + "/debug/mp/collect"
    event = tracker.create_new_event(name="level_up")
    event.set_event_param(name="level", value=5)
    event.set_event_param(name="character", value="wizard")
    tracker.send(events=[event])
    (row,) = stored(ga4_server)
    assert row["name"] == "level_up" and row["source"] == "ga4"
    assert row["props"]["level"] == 5 and row["props"]["character"] == "wizard"
    assert "1234567890.1764300000" not in json.dumps(row, default=str)


@on_every_store
def test_events_user_properties_and_timestamps(ga4_server: InThreadServer) -> None:
    an_hour_ago = int((time.time() - 3600) * 1e6)
    body = {
        "client_id": "c1",
        "timestamp_micros": an_hour_ago,
        "user_properties": {"plan": {"value": "pro"}},
        "events": [
            {
                "name": "search",
                "params": {"term_count": 2, "session_id": "123", "items": [{"a": 1}]},
            },
            {"name": "export", "params": {"format": "csv"}},
        ],
    }
    assert post(ga4_server, body).status_code == 204
    rows = stored(ga4_server)
    assert [r["name"] for r in rows] == ["export", "search"]
    search = rows[1]
    assert search["props"] == {"term_count": 2, "user_plan": "pro"}, "ids (session_id) and lists never stored"
    assert abs((dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - search["time"]).total_seconds() - 3600) < 60


@on_every_store
def test_firebase_app_instances(ga4_server: InThreadServer) -> None:
    body = {"app_instance_id": "a" * 32, "events": [{"name": "screen_open"}]}
    response = httpx.post(
        ga4_server.url + "/mp/collect",
        params={"firebase_app_id": FIREBASE_ID, "api_secret": SECRET},
        content=json.dumps(body),
    )
    assert response.status_code == 204
    assert [r["name"] for r in stored(ga4_server)] == ["screen_open"]


@on_every_store
@pytest.mark.parametrize(
    ("query", "body", "reason"),
    [
        (
            {"api_secret": "wrong-secret"},
            {"client_id": "c", "events": [{"name": "a"}]},
            "wrong_api_secret",
        ),
        (
            {"measurement_id": "G-UNKNOWN1"},
            {"client_id": "c", "events": [{"name": "a"}]},
            "unknown_measurement_id",
        ),
        ({}, {"events": [{"name": "a"}]}, "invalid_event"),
        ({}, {"client_id": "c", "events": [{"name": "first_open"}]}, "invalid_event"),
    ],
)
def test_dropped_requests_still_get_204(
    ga4_server: InThreadServer, query: dict[str, str], body: Any, reason: str
) -> None:
    assert post(ga4_server, body, **query).status_code == 204
    assert stored(ga4_server) == []
    assert ga4_server.metric("footfall_events_rejected_total", protocol="ga4", reason=reason) >= 1


def test_a_body_of_130_kb_is_dropped(ga4_server: InThreadServer) -> None:
    body = {"client_id": "c", "events": [{"name": "a", "params": {"p": "x" * 90}}] * 1500}
    assert len(json.dumps(body)) > 130 * 1024
    assert post(ga4_server, body).status_code == 204
    assert stored(ga4_server) == []


CODES = [
    ({"events": [{"name": "ok"}]}, "client_id", "VALUE_REQUIRED"),
    ({"client_id": "c"}, "events", "VALUE_REQUIRED"),
    ({"client_id": "c", "events": [{"name": "ok"}] * 26}, "events", "EXCEEDED_MAX_ENTITIES"),
    ({"client_id": "c", "events": [{"name": "session_start"}]}, "events[0].name", "NAME_RESERVED"),
    ({"client_id": "c", "events": [{"name": "google_thing"}]}, "events[0].name", "NAME_RESERVED"),
    ({"client_id": "c", "events": [{"name": "9lives"}]}, "events[0].name", "NAME_INVALID"),
    ({"client_id": "c", "events": [{"name": "x" * 41}]}, "events[0].name", "NAME_INVALID"),
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"ga_x": 1}}]},
        "events[0].params.ga_x",
        "NAME_RESERVED",
    ),
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"p": "v" * 101}}]},
        "events[0].params.p",
        "VALUE_OUT_OF_BOUNDS",
    ),
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {f"p{i}": i for i in range(26)}}]},
        "events[0].params",
        "EXCEEDED_MAX_ENTITIES",
    ),
    (
        {"client_id": "c", "timestamp_micros": 1_000_000, "events": [{"name": "ok"}]},
        "timestamp_micros",
        "VALUE_OUT_OF_BOUNDS",
    ),
    (
        {
            "client_id": "c",
            "user_properties": {"user_id": {"value": "x"}},
            "events": [{"name": "ok"}],
        },
        "user_properties.user_id",
        "NAME_RESERVED",
    ),
    (
        {
            "client_id": "c",
            "user_properties": {f"u{i}": {"value": 1} for i in range(26)},
            "events": [{"name": "ok"}],
        },
        "user_properties",
        "EXCEEDED_MAX_ENTITIES",
    ),
    # Numbers JSON cannot carry back out (json.dumps writes NaN and Infinity, as some clients do).
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"v": float("nan")}}]},
        "events[0].params.v",
        "VALUE_INVALID",
    ),
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"v": float("inf")}}]},
        "events[0].params.v",
        "VALUE_INVALID",
    ),
    (
        {"client_id": "c", "user_properties": {"plan": {"value": float("-inf")}}, "events": [{"name": "ok"}]},
        "user_properties.plan",
        "VALUE_INVALID",
    ),
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"n": 2**63}}]},
        "events[0].params.n",
        "VALUE_OUT_OF_BOUNDS",
    ),
    # Text held to the one storable rule: bidi overrides as well as control characters.
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"p": "a\u202eb"}}]},
        "events[0].params.p",
        "VALUE_INVALID",
    ),
    (
        {"client_id": "c", "user_properties": {"plan": {"value": "pro\u2066"}}, "events": [{"name": "ok"}]},
        "user_properties.plan",
        "VALUE_INVALID",
    ),
    ({"client_id": "c\u202e", "events": [{"name": "ok"}]}, "client_id", "VALUE_INVALID"),
    # Names: a trailing newline is not a name ("$" matched before it), and a refused name is
    # quoted escaped, never as a lone surrogate JSON cannot encode.
    ({"client_id": "c", "events": [{"name": "ok", "params": {"n\n": 1}}]}, "events[0].params.n\\n", "NAME_INVALID"),
    ({"client_id": "c", "events": [{"name": "ok\n"}]}, "events[0].name", "NAME_INVALID"),
    (
        {"client_id": "c", "events": [{"name": "ok", "params": {"\ud800": 1}}]},
        "events[0].params.\\ud800",
        "NAME_INVALID",
    ),
    (
        {"client_id": "c", "user_properties": {"x\ud800": {"value": "v"}}, "events": [{"name": "ok"}]},
        "user_properties.x\\ud800",
        "NAME_INVALID",
    ),
]


@pytest.mark.parametrize(("body", "path", "code"), CODES, ids=[c[2] + ":" + c[1] for c in CODES])
def test_debug_validation_codes(ga4_server: InThreadServer, body: Any, path: str, code: str) -> None:
    answer = post(ga4_server, body, debug=True).json()
    assert {"fieldPath": path, "validationCode": code} in [
        {"fieldPath": m["fieldPath"], "validationCode": m["validationCode"]} for m in answer["validationMessages"]
    ]
    assert all(m["description"] for m in answer["validationMessages"])


def test_debug_shows_the_record_as_stored_and_stores_nothing(ga4_server: InThreadServer) -> None:
    body = {
        "client_id": "c1",
        "events": [{"name": "search", "params": {"term": "ann@example.org", "n": 3}}],
    }
    answer = post(ga4_server, body, debug=True, api_secret="not-checked-as-in-GA").json()
    assert answer["validationMessages"] == []
    (record,) = answer["footfall"]["stored"]
    assert record["name"] == "search" and record["props"] == {"n": 3} and record["install"] != "c1"
    assert stored(ga4_server) == []
    unknown = post(ga4_server, body, debug=True, measurement_id="G-NOPE1234").json()
    assert unknown["validationMessages"][0]["fieldPath"] == "measurement_id"


def post_in_process(server: InThreadServer, body: bytes, declared_length: bytes) -> httpx.Response:
    """POST /mp/collect through the real app and a real httpx client, but no HTTP parser:
    Uvicorn's refuses a Content-Length that is not ASCII digits before the app sees it,
    and another ASGI server may not."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://footfall.test") as client:
            return await client.post(
                "/mp/collect",
                params={"measurement_id": MEASUREMENT_ID, "api_secret": SECRET},
                content=body,
                headers={"content-length": declared_length},
            )

    return asyncio.run(send())


def test_a_content_length_of_other_digits_or_too_many_is_answered_not_a_500(ga4_server: InThreadServer) -> None:
    body = json.dumps({"client_id": "c1", "events": [{"name": "search"}]}).encode()
    superscript = post_in_process(ga4_server, body, "\u00b2".encode("latin-1"))  # "²".isdigit() is True
    assert superscript.status_code == 400, superscript.text
    assert superscript.json()["error"]["code"] == "invalid_request"
    huge = post_in_process(ga4_server, body, b"9" * 5000)  # int() refuses more than 4,300 digits
    assert huge.status_code == 204, huge.text  # GA semantics: dropped, and counted
    assert ga4_server.metric("footfall_events_rejected_total", protocol="ga4", reason="body_too_large") == 1
    padded = post_in_process(ga4_server, body, b"0" * 40 + str(len(body)).encode())
    assert padded.status_code == 204, padded.text
    assert [row["name"] for row in stored(ga4_server)] == ["search"]


# Text with what JSON cannot carry back out (a lone surrogate) or may not be stored, and
# numbers JSON has no words for: Python's reader takes NaN, Infinity and 1e400.
AWKWARD_TEXT = st.text(alphabet=st.sampled_from("ab_1\ud800\x00\n\u202e\u2066\u00e9"), max_size=6)
AWKWARD_VALUES = AWKWARD_TEXT | st.floats() | st.integers() | st.booleans() | st.none()


@settings(max_examples=300, deadline=None)
@given(
    params=st.dictionaries(AWKWARD_TEXT | st.sampled_from(["n", "label"]), AWKWARD_VALUES, max_size=4),
    user_properties=st.dictionaries(
        AWKWARD_TEXT | st.sampled_from(["plan"]), st.fixed_dictionaries({"value": AWKWARD_VALUES}), max_size=3
    ),
)
@example(params={"\ud800": 1}, user_properties={}).via("red team 1")
@example(params={}, user_properties={"\ud800": {"value": "x"}}).via("red team 1")
@example(params={"v": float("nan")}, user_properties={}).via("red team 2")
@example(params={}, user_properties={"plan": {"value": float("-inf")}}).via("red team 2")
def test_what_is_answered_and_kept_is_always_strict_json(params: dict[str, Any], user_properties: Any) -> None:
    from footfall.server.ingest.protocols import ga4

    body = {"client_id": "c1", "user_properties": user_properties, "events": [{"name": "search", "params": params}]}
    received = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    parsed = ga4.parse_request(json.dumps(body).encode(), firebase=False, received=received)
    answer = {"validationMessages": [message.as_ga() for message in parsed.messages]}
    kept = [ga4.to_incoming(parsed, event, "app", "ua", "").props for event in parsed.events]
    # As Starlette's JSONResponse encodes the debug answer: a lone surrogate or a NaN raises.
    encoded = json.dumps([answer, kept], ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert json.loads(encoded) == [answer, kept]
    assert all(math.isfinite(v) for props in kept for v in props.values() if isinstance(v, float))
    assert not any("\ud800" in text for m in answer["validationMessages"] for text in m.values())
