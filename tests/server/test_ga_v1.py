"""Google Analytics Measurement Protocol v1: real clients, GA's semantics, GA's limits.

What is stored is tested on each store (`on_every_store`); the hits dropped and the debug
endpoint's answers, where nothing reaches a store, on DuckDB only.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import requests

from tests.conftest import InThreadServer
from tests.stores import on_every_store

TID = "UA-12345-1"
CID = "35009a79-1a05-49d7-b876-2b884d0f825b"


@pytest.fixture
def ga_server(app_server: InThreadServer) -> InThreadServer:
    app_server.store.add_app("ga-tool")
    app_server.store.add_key("ga-tool", "ga-tid", TID)
    return app_server


def stored(server: InThreadServer) -> list[dict[str, Any]]:
    rows = server.store.query(
        "SELECT name, install, session, app_version, os, os_version, arch, country, props, source, time, received"
        " FROM events WHERE app = 'ga-tool' ORDER BY time"
    ).dicts()
    for row in rows:
        row["props"] = json.loads(row["props"])
    return rows


def hit(**params: Any) -> dict[str, Any]:
    return {"v": "1", "tid": TID, "cid": CID, "t": "event", "ec": "cli", "ea": "run", **params}


@on_every_store
def test_the_google_measurement_protocol_client(ga_server: InThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from google_measurement_protocol import event, report

    report_module = sys.modules["google_measurement_protocol.report"]  # the package's `report` is the function
    monkeypatch.setattr(report_module, "TRACKING_URI", ga_server.url + "/collect")  # re-point it, as users would
    responses = report(TID, CID, event("locust", "start", label="master", value=3))
    assert [r.status_code for r in responses] == [200]
    (row,) = stored(ga_server)
    assert row["name"] == "event" and row["source"] == "ga-v1"
    assert row["props"] == {"category": "locust", "action": "start", "label": "master", "value": 3}
    assert row["install"] and CID not in json.dumps(row, default=str)


@on_every_store
def test_the_exact_docker_locust_hit(ga_server: InThreadServer) -> None:
    payload = {
        "v": 1,
        "aip": 1,
        "tid": TID,
        "cid": "5.15.0-91-generic",
        "t": "event",
        "ec": "docker-locust",
        "ea": "start",
        "el": "master",
        "an": "docker-locust",
        "av": "0.8.1",
    }
    response = requests.post(ga_server.url + "/collect", data=payload)  # form-encoded, as Docker-Locust did
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    (row,) = stored(ga_server)
    assert row["app_version"] == "0.8.1"
    assert row["props"] == {
        "category": "docker-locust",
        "action": "start",
        "label": "master",
        "app_name": "docker-locust",
    }
    assert "5.15.0-91-generic" not in json.dumps(row, default=str), "the kernel-version 'id' is only ever hashed"


@on_every_store
def test_get_collect_and_the_batch_endpoint(ga_server: InThreadServer) -> None:
    assert httpx.get(ga_server.url + "/collect", params=hit(ea="get")).status_code == 200
    lines = "\n".join(httpx.QueryParams(h).__str__() for h in (hit(ea="b1"), hit(ea="b2"), {"v": "1"}))
    assert httpx.post(ga_server.url + "/batch", content=lines).status_code == 200
    assert sorted(r["props"]["action"] for r in stored(ga_server)) == [
        "b1",
        "b2",
        "get",
    ]  # one second: ClickHouse keeps no order within it
    assert ga_server.metric("footfall_events_rejected_total", protocol="ga-v1", reason="value_required_tid") == 1


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (
            "/batch",
            "\n".join(httpx.QueryParams(hit(ea=f"n{i}")).__str__() for i in range(21)),
            "request_too_large",
        ),
        (
            "/batch",
            "\n".join(httpx.QueryParams(hit(el="x" * 400)).__str__() for _ in range(45)),
            "request_too_large",
        ),
        ("/collect", httpx.QueryParams(hit(el="x" * 9000)).__str__(), "request_too_large"),
        ("/collect", "this is not a hit at all", "value_required_v"),
        ("/collect", "\x00\xff\xfe binary", "value_required_v"),
        ("/collect", httpx.QueryParams(hit(tid="UA-99999-9")).__str__(), "unknown_tid"),
        ("/collect", httpx.QueryParams(hit(t="nonsense")).__str__(), "value_invalid_t"),
        ("/collect", httpx.QueryParams({**hit(), "ec": ""}).__str__(), "value_required_ec"),
        ("/collect", httpx.QueryParams(hit(qt=str(5 * 3600 * 1000))).__str__(), "value_invalid_qt"),
    ],
)
def test_bad_hits_get_2xx_and_are_dropped_and_counted(
    ga_server: InThreadServer, path: str, body: str, reason: str
) -> None:
    response = httpx.post(ga_server.url + path, content=body.encode("utf-8", "surrogateescape"))
    assert 200 <= response.status_code < 300
    assert stored(ga_server) == []
    assert ga_server.metric("footfall_events_rejected_total", protocol="ga-v1", reason=reason) >= 1
    assert f'reason="{reason}"' in httpx.get(ga_server.url + "/metrics").text


def test_a_url_over_8000_bytes_is_dropped(ga_server: InThreadServer) -> None:
    response = httpx.get(ga_server.url + "/collect", params=hit(el="y" * 8100))
    assert response.status_code == 200 and stored(ga_server) == []


@on_every_store
def test_parameters_are_mapped_and_custom_dimensions_kept_apart(ga_server: InThreadServer) -> None:
    params = hit(
        t="screenview",
        cd="Home",
        cd1="pro",
        cd12="blue",
        cm="email",
        cm1="42",
        ul="en-gb",
        sr="1920x1080",
        ds="cli",
        aid="org.example.tool",
        utc="x",
        ev="7",
        z="123456",
    )
    del params["ec"], params["ea"]
    httpx.post(ga_server.url + "/collect", data=params)
    (row,) = stored(ga_server)
    assert row["name"] == "screenview"
    assert row["props"] == {
        "screen": "Home",
        "cd1": "pro",
        "cd12": "blue",
        "campaign_medium": "email",
        "cm1": 42,
        "language": "en-gb",
        "screen_resolution": "1920x1080",
        "data_source": "cli",
        "app_id": "org.example.tool",
        "timing_category": "x",
        "value": 7,
    }


@on_every_store
def test_queue_time_user_agent_and_country(ga_server: InThreadServer) -> None:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
    httpx.post(ga_server.url + "/collect", data=hit(ea="late", qt="60000", ua=ua, uip="8.8.8.8"))
    httpx.post(ga_server.url + "/collect", data=hit(ea="geo", geoid="DE", uip="8.8.8.8"))
    httpx.post(ga_server.url + "/collect", data=hit(ea="anon", aip="1", uip="8.8.8.8"))
    rows = {r["props"]["action"]: r for r in stored(ga_server)}
    late = rows["late"]
    assert 55 <= (late["received"] - late["time"]).total_seconds() <= 65
    assert (late["os"], late["os_version"], late["arch"], late["country"]) == (
        "windows",
        "10.0",
        "x86_64",
        "US",
    )
    assert rows["geo"]["country"] == "DE"
    assert rows["anon"]["country"] == "US", "aip truncates the address before the lookup"


@on_every_store
def test_values_that_identify_are_dropped(ga_server: InThreadServer) -> None:
    httpx.post(ga_server.url + "/collect", data=hit(el="ann@example.org", cd1="/home/ann/secret"))
    (row,) = stored(ga_server)
    assert row["props"] == {"category": "cli", "action": "run"}
    assert ga_server.metric("footfall_properties_dropped_total", protocol="ga-v1", reason="sensitive_email") == 1


def test_debug_collect_answers_hit_parsing_result(ga_server: InThreadServer) -> None:
    bad = httpx.post(ga_server.url + "/debug/collect", data={"v": "1", "t": "event"}).json()
    (result,) = bad["hitParsingResult"]
    assert result["valid"] is False and result["hit"].startswith("/debug/collect?")
    errors = {(m["messageType"], m["parameter"]) for m in result["parserMessage"]}
    assert {("ERROR", "tid"), ("ERROR", "cid"), ("ERROR", "ec"), ("ERROR", "ea")} <= errors
    assert bad["parserMessage"] == [{"messageType": "INFO", "description": "Found 1 hit in the request."}]

    good = httpx.get(ga_server.url + "/debug/collect", params=hit(el="ann@example.org", uip="8.8.8.8")).json()
    (result,) = good["hitParsingResult"]
    assert result["valid"] is True and result["parserMessage"] == []
    record = result["footfall"]["stored"]
    assert record["props"] == {"category": "cli", "action": "run"} and record["country"] == "US"
    assert result["footfall"]["droppedProperties"] == ["sensitive_email"]
    assert CID not in json.dumps(record) and "8.8.8.8" not in json.dumps(record)
    assert stored(ga_server) == [], "the debug endpoint stores nothing"

    unknown = httpx.get(ga_server.url + "/debug/collect", params=hit(tid="UA-1-1")).json()["hitParsingResult"][0]
    assert unknown["valid"] is True
    assert any(m["messageType"] == "INFO" and m["parameter"] == "tid" for m in unknown["parserMessage"])
