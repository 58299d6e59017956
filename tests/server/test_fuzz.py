"""Property tests: no input makes the decoders fail with anything but a clean BadRequest."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from footfall.server.errors import BadRequest
from footfall.server.protocols.framing import decompress, parse_json
from footfall.server.protocols.native import NativeBatch, NativeEvent, Rejection, decode_batch

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
    from footfall.server.protocols import ga_v1

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
    from footfall.server.protocols import ga4

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
