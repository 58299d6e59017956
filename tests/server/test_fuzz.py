"""Property tests: no input makes the decoders fail with anything but a clean BadRequest."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.server.errors import BadRequest
from footfall.server.ingest.protocols.framing import decompress, parse_json
from footfall.server.ingest.protocols.native import NativeBatch, NativeEvent, Rejection, decode_batch

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0)
MAX_AGE = dt.timedelta(hours=72)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=30,
)
times = st.one_of(
    st.none(),
    st.text(max_size=45),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
        lambda d: d.isoformat() + "Z"
    ),
    st.just("2026-11-28T11:00:00Z"),
)
events = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"name": st.one_of(st.just("command"), st.text(max_size=70)), "time": times},
        optional={"props": st.one_of(json_values, st.dictionaries(st.text(max_size=70), scalars, max_size=40))},
    ),
)
contexts = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "install": st.one_of(st.none(), st.text(max_size=130), st.just("0f8fad5bd9cb469fa16570867728950e")),
            "session": st.one_of(st.none(), st.text(max_size=130)),
            "app_version": json_values,
            "platform": st.one_of(json_values, st.dictionaries(st.sampled_from(["os", "arch"]), json_values)),
            "environment": json_values,
        },
    ),
)
batches = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "app": st.one_of(st.just("golden-tool"), st.text(max_size=70)),
            "context": contexts,
            "events": st.one_of(json_values, st.lists(events, max_size=8)),
        },
        optional={"dropped": json_values},
    ),
)


def decode(document: Any) -> NativeBatch | None:
    try:
        return decode_batch(document, received=RECEIVED, max_events=5, max_age=MAX_AGE)
    except BadRequest as exc:
        assert exc.code and exc.message and 400 <= exc.status < 500
        return None


@settings(max_examples=600, deadline=None)
@given(batches)
def test_decode_batch_never_crashes(document: Any) -> None:
    batch = decode(document)
    if batch is not None:
        assert len(batch.events) == len(document["events"])
        for event in batch.events:
            assert isinstance(event, (NativeEvent, Rejection))
            if isinstance(event, NativeEvent):
                assert RECEIVED - MAX_AGE <= event.time <= RECEIVED + dt.timedelta(minutes=5)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["", "gzip", "identity", "deflate", "GZIP "]))
def test_framing_never_crashes_on_bytes(body: bytes, encoding: str) -> None:
    try:
        parse_json(decompress(body, encoding, 10_000))
    except BadRequest as exc:
        assert 400 <= exc.status < 500


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_gzip_round_trip_and_cap(data: bytes) -> None:
    packed = gzip.compress(data)
    assert decompress(packed, "gzip", len(data)) == data
    if data:
        try:
            decompress(packed, "gzip", len(data) - 1)
        except BadRequest as exc:
            assert exc.code == "payload_too_large"
        else:
            raise AssertionError("a body over the cap must be refused")


def test_deeply_nested_json_is_a_clean_error() -> None:
    try:
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    except BadRequest as exc:
        assert exc.code == "invalid_json"
    else:
        raise AssertionError("expected BadRequest")


@settings(max_examples=400, deadline=None)
@given(
    st.text(max_size=3000)
    | st.builds(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()),
        st.dictionaries(
            st.sampled_from(["v", "tid", "cid", "t", "ec", "ea", "qt", "ev", "cd1", "cm1", "uip", "z"]),
            st.text(max_size=30),
        ),
    )
)
def test_ga_v1_hits_never_crash(text: str) -> None:
    from footfall.server.ingest.protocols import ga_v1

    hit = ga_v1.parse_hit(text)
    assert isinstance(hit.valid, bool)
    if hit.valid:
        incoming = ga_v1.to_incoming(hit, "app", RECEIVED, "ua", None, lambda ip, anonymise: "")
        assert incoming.time <= RECEIVED and incoming.source == "ga-v1"
    _, problems = ga_v1.split_batch(text)
    assert all(isinstance(p.description, str) for p in problems)


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=2000)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {
            "client_id": st.text(max_size=10),
            "events": st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(max_size=45)},
                    optional={"params": json_values, "timestamp_micros": json_values},
                ),
                max_size=30,
            ),
        },
        optional={"user_properties": json_values, "timestamp_micros": json_values},
    ).map(lambda v: json.dumps(v).encode())
)
def test_ga4_requests_never_crash(body: bytes) -> None:
    from footfall.server.ingest.protocols import ga4

    parsed = ga4.parse_request(body, firebase=False, received=RECEIVED)
    assert len(parsed.events) <= ga4.MAX_EVENTS
    for message in parsed.messages:
        assert message.code in {
            "VALUE_INVALID",
            "VALUE_REQUIRED",
            "NAME_INVALID",
            "NAME_RESERVED",
            "VALUE_OUT_OF_BOUNDS",
            "EXCEEDED_MAX_ENTITIES",
            "NAME_DUPLICATED",
        }
    for event in parsed.events:
        ga4.to_incoming(parsed, event, "app", "ua", "")


# -- report filters and the /api/v1 handlers, with credentials -----------------------------

# ASCII digits and others for which str.isdigit() is True but int() refuses them (²) or accepts them (٣).
digit_strings = st.text(
    alphabet="0123456789\u00b2\u00b3\u00b9\u0663\u06f5\u07c5\u0967", min_size=1, max_size=8
) | st.integers(0, 10**6).map(str)
day_counts = st.one_of(st.none(), digit_strings, st.just("9" * 5000), st.text(max_size=12))
dates = st.one_of(
    st.none(),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01", "9999-12-31", "1970-01-01", "2999-12-31", "3000-01-01"]),
    st.text(max_size=12),
)
filter_params = st.fixed_dictionaries(
    {},
    optional={
        "days": day_counts,
        "start": dates,
        "end": dates,
        "version": st.text(max_size=70),
        "country": st.text(max_size=3),
        "ci": st.sampled_from(["include", "exclude", "only", "", "x"]),
        "container": st.text(max_size=10),
    },
).map(lambda d: {k: v for k, v in d.items() if v is not None})


@settings(max_examples=500, deadline=None)
@given(filter_params)
def test_filters_accept_or_refuse_cleanly(params: dict[str, str]) -> None:
    from footfall.server.errors import UsageError
    from footfall.server.query.filters import Filters

    try:
        filters = Filters.from_params(params)
    except UsageError as exc:
        assert exc.status == 400 and exc.message
        return
    filters.where("app")  # a day past the end, as SQL bounds
    previous = filters.previous()  # a whole range before the start
    assert previous.days == filters.days


def test_the_api_handlers_never_fail_on_odd_filters(app_server_factory: Any) -> None:
    import httpx

    from tests.conftest import GOLDEN_APP, InThreadServer

    server: InThreadServer = app_server_factory(rate_per_client=0)
    seen: set[int] = set()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as client:

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
        @given(filter_params, st.sampled_from(["overview", "timeseries", "versions", "dimensions", "retention"]))
        def check(params: dict[str, str], report: str) -> None:
            for path in (
                f"/api/v1/apps/{GOLDEN_APP}/summary",
                f"/api/v1/apps/{GOLDEN_APP}/reports/{report}",
                f"/apps/{GOLDEN_APP}",
            ):
                answer = client.get(path, params=params)
                seen.add(answer.status_code)
                assert answer.status_code < 500, (path, params, answer.text[:300])
                if answer.status_code == 400 and path.startswith("/api/"):
                    assert answer.json()["error"]["message"]

        check()
    assert 200 in seen and 400 in seen and 401 not in seen  # the handlers ran, with credentials


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["ev", "qt", "utt", "cm1", "z"]), digit_strings | st.just("9" * 5000))
def test_ga_v1_integers_never_crash(field: str, value: str) -> None:
    from footfall.server.ingest.protocols import ga_v1

    params = {"v": "1", "tid": "UA-1-1", "cid": "c", "t": "timing", "utc": "c", "utv": "v", "utt": "1", field: value}
    hit = ga_v1.parse_hit(urllib.parse.urlencode(params))
    if hit.valid:
        incoming = ga_v1.to_incoming(hit, "app", RECEIVED, "ua", None, lambda ip, anonymise: "")
        assert incoming.time <= RECEIVED
    else:
        assert hit.reason.startswith("value_invalid_")


@settings(max_examples=300, deadline=None)
@given(digit_strings | st.just("9" * 5000) | st.integers(-(2**70), 2**70) | st.floats())
def test_ga4_timestamps_never_crash(micros: Any) -> None:
    from footfall.server.ingest.protocols import ga4

    body = {"client_id": "c.1", "timestamp_micros": micros, "events": [{"name": "run", "timestamp_micros": micros}]}
    parsed = ga4.parse_request(json.dumps(body).encode(), firebase=False, received=RECEIVED)
    assert parsed.events or parsed.messages
