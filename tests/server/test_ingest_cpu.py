"""The cheaper ingest path gives the answers, records and log bytes the plain one gave (issue 9).

- `decode_body`'s typed msgspec pass against `decode_batch(parse_json(...))`: the same batch or
  the same error, on the golden cases and on generated batches near the valid ones;
- `Ingestor.record_batch` against `Ingestor.record` event by event: the same records;
- log lines and props text against the json.dumps texts they replaced, byte for byte.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.server.errors import BadRequest
from footfall.server.ingest import segments
from footfall.server.ingest.pipeline import keyed_hash, props_text
from footfall.server.ingest.protocols import Incoming
from footfall.server.ingest.protocols.framing import parse_json
from footfall.server.ingest.protocols.native import (
    NativeBatch,
    NativeEvent,
    Rejection,
    decode_batch,
    decode_body,
    decode_typed,
    parse_time,
)
from footfall.server.stores.base import EVENT_COLUMNS, EventRecord
from tests.conftest import GOLDEN_APP, InThreadServer, load_golden, with_fresh_times

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0)
MAX_AGE = dt.timedelta(hours=72)
MAX_EVENTS = 5
CASES = load_golden("invalid/cases.json")


def plain(data: bytes) -> NativeBatch | tuple[str, str]:
    """The answer of the plain path: the batch, or the error's (code, message)."""
    try:
        return decode_batch(parse_json(data), received=RECEIVED, max_events=MAX_EVENTS, max_age=MAX_AGE)
    except BadRequest as exc:
        return exc.code, exc.message


def typed(data: bytes) -> NativeBatch | tuple[str, str] | None:
    """The answer of the typed pass alone (None: it leaves the batch to the plain path)."""
    try:
        return decode_typed(data, received=RECEIVED, max_events=MAX_EVENTS, max_age=MAX_AGE)
    except BadRequest as exc:
        return exc.code, exc.message


def assert_same_answer(data: bytes) -> NativeBatch | tuple[str, str] | None:
    fast, reference = typed(data), plain(data)
    if fast is not None:
        assert fast == reference
    try:
        answer: NativeBatch | tuple[str, str] = decode_body(
            data, received=RECEIVED, max_events=MAX_EVENTS, max_age=MAX_AGE
        )
    except BadRequest as exc:
        answer = exc.code, exc.message
    assert answer == reference
    return fast


def fresh(batch: Any) -> Any:
    """A golden batch with its times moved to just before RECEIVED."""
    moved = copy.deepcopy(batch)
    for index, event in enumerate(moved.get("events", []) if isinstance(moved, dict) else []):
        if isinstance(event, dict) and (event.get("time") is None or "2026-11-28T10" in str(event["time"])):
            event["time"] = (RECEIVED - dt.timedelta(seconds=10 - index)).isoformat() + "Z"
    return moved


@pytest.mark.parametrize("name", ["batch-minimal.json", "batch-command.json"])
def test_golden_batches_take_the_typed_pass(name: str) -> None:
    data = json.dumps(fresh(load_golden(name))).encode()
    assert isinstance(assert_same_answer(data), NativeBatch)


def test_the_benchmark_batch_takes_the_typed_pass() -> None:
    """The shape of benchmarks/bench_ingest.py's batch: 100 events of one context."""
    received = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    events = [
        {
            "name": "command",
            "time": (received - dt.timedelta(seconds=i)).isoformat() + "Z",
            "props": {"command": "build", "options": ["--fast", "--jobs"], "jobs": i % 8},
        }
        for i in range(100)
    ]
    context = load_golden("batch-command.json")["context"] | {"environment": {"ci": "", "container": ""}}
    data = json.dumps({"app": "bench-tool", "context": context, "events": events}).encode()
    received = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    batch = decode_typed(data, received=received, max_events=500, max_age=MAX_AGE)
    assert batch is not None and len(batch.events) == 100
    assert batch == decode_batch(parse_json(data), received=received, max_events=500, max_age=MAX_AGE)


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_golden_bad_batches_get_the_same_error(case: dict[str, Any]) -> None:
    data = case["body_text"].encode() if "body_text" in case else json.dumps(fresh(case["body"])).encode()
    assert_same_answer(data)


@pytest.mark.parametrize("rejection", CASES["event_rejections"], ids=[r["code"] for r in CASES["event_rejections"]])
def test_golden_bad_events_get_the_same_rejection(rejection: dict[str, Any]) -> None:
    good = {"name": "good", "time": None}
    batch = fresh({"app": GOLDEN_APP, "context": {}, "events": [good, rejection["event"], good]})
    assert assert_same_answer(json.dumps(batch).encode()) is None  # a rejection is for the plain path to word
    answer = plain(json.dumps(batch).encode())
    assert isinstance(answer, NativeBatch) and isinstance(answer.events[1], Rejection)
    assert answer.events[1].code == rejection["code"]


# Batches near the valid ones: half are valid in every part (with every shape the protocol
# allows: floats, escapes, non-ASCII, offsets, nulls); the rest are mostly right and sometimes
# wrong in a way the plain path words (a bad name, time, key, value, context, count, type,
# escape or extra field).
_good_names = st.sampled_from(["command", "start", "a", "x.y:z-w"])
_names = _good_names | st.sampled_from(["Command", "1st", "a" * 65, "n\n", "ok\u00e9", ""])
_good_keys = st.sampled_from(["command", "jobs", "options", "a_b"])
_keys = _good_keys | st.sampled_from(["Bad", "a-b", "k" * 65, "key\n", "é"])
_good_strings = st.sampled_from(["build", "--fast", "", "x" * 200, "é", "\\", 'say "hi"', "日本"])
_strings = _good_strings | st.sampled_from(["x" * 201, "a\x00b", "tab\t", "del\x7f", "\u202e"]) | st.text(max_size=12)
_good_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _good_strings,
    st.lists(_good_strings, max_size=32),
)
_values = st.one_of(
    _good_values,
    st.floats(allow_nan=True, allow_infinity=True),
    _strings,
    st.lists(_strings, max_size=34),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.just("a"), st.integers(), max_size=1),
)
_good_props = st.dictionaries(_good_keys, _good_values, max_size=4)
_props = st.one_of(
    st.dictionaries(_keys, _values, max_size=4),
    st.dictionaries(st.from_regex(r"[a-z]{1,3}", fullmatch=True), st.integers(), min_size=30, max_size=34),
    st.sampled_from([None, [], "x"]),
)


def _times_with(offsets: st.SearchStrategy[str], oldest_s: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda seconds, offset: (RECEIVED - dt.timedelta(seconds=seconds)).isoformat() + offset,
        st.integers(min_value=-299, max_value=oldest_s),
        offsets,
    )


_good_times = _times_with(st.sampled_from(["Z", "z", "+00:00", ""]), 71 * 3600)
_times = st.one_of(
    _times_with(st.sampled_from(["Z", "+05:30", "-08:00", "", "+01:00Z", "junk"]), 4 * 86_400),
    st.integers(min_value=-600, max_value=-300).map(lambda s: (RECEIVED - dt.timedelta(seconds=s)).isoformat()),
    st.sampled_from(["2026-11-28", "2026-11-28 11:00:00", "20261128T110000Z", "nope", "", None, 5]),
)
_good_events = st.fixed_dictionaries({"name": _good_names, "time": _good_times}, optional={"props": _good_props})
_events = st.one_of(
    _good_events,
    st.fixed_dictionaries({"name": _names, "time": _times}, optional={"props": _props, "extra": st.just(1)}),
    st.sampled_from([None, "event", []]),
)
_good_ids = st.sampled_from([None, "", "0f8fad5bd9cb469fa16570867728950e"])
_ids = _good_ids | st.sampled_from(["short", "has spaces in it", 7])
_good_texts = st.sampled_from([None, "1.4.0", "", "é", "x" * 64])
_texts = _good_texts | st.sampled_from(["x" * 65, "a\x01", 3]) | st.text(max_size=4)


def _context_of(ids: Any, texts: Any, sections: Any, extra: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {},
        optional={"install": ids, "session": ids, "app_version": texts, "platform": sections, "environment": sections}
        | extra,
    )


_good_sections = st.fixed_dictionaries({}, optional={"os": _good_texts, "arch": _good_texts, "ci": _good_texts})
_sections = _good_sections | st.sampled_from([None, {}, [], 0, "x", {"os": 1}, {"os": "a\x01"}])
_good_contexts = _context_of(_good_ids, _good_texts, _good_sections, {})
_contexts = _context_of(_ids, _texts, _sections, {"other": st.sampled_from(["x", 1, None])}) | st.sampled_from(
    [None, "x", []]
)
_good_batches = st.fixed_dictionaries(
    {"app": st.just(GOLDEN_APP), "context": _good_contexts, "events": st.lists(_good_events, min_size=1, max_size=5)},
    optional={"dropped": st.sampled_from([0, 5, 1_000_000])},
)
_batches = _good_batches | st.fixed_dictionaries(
    {
        "app": st.sampled_from([GOLDEN_APP, "My Tool", "x" * 65, "tool\n", ""]),
        "context": _contexts,
        "events": st.lists(_events, min_size=0, max_size=MAX_EVENTS + 1),
    },
    optional={"dropped": st.sampled_from([0, 5, -1, True, 10**7, None, 1.0]), "unknown": st.just(1)},
)


@st.composite
def _near_batches(draw: st.DrawFn) -> dict[str, Any]:
    """A valid batch with one part made wrong: the typed pass must see it or leave it."""
    batch: dict[str, Any] = draw(_good_batches)
    event = draw(st.sampled_from(batch["events"]))
    part = draw(st.sampled_from(["name", "time", "key", "value", "props", "context", "section", "top"]))
    if part == "name":
        event["name"] = draw(_names)
    elif part == "time":
        event["time"] = draw(_times)
    elif part == "key":
        event.setdefault("props", {})[draw(_keys)] = 1
    elif part == "value":
        event.setdefault("props", {})["command"] = draw(_values)
    elif part == "props":
        event["props"] = draw(_props)
    elif part == "context":
        batch["context"][draw(st.sampled_from(["install", "session", "app_version", "other"]))] = draw(_texts | _ids)
    elif part == "section":
        batch["context"][draw(st.sampled_from(["platform", "environment"]))] = draw(_sections)
    else:
        batch[draw(st.sampled_from(["app", "dropped", "unknown"]))] = draw(st.sampled_from(["My Tool", -1, 1.0, None]))
    return batch


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_near_batches(), ascii_only=st.booleans())
def test_typed_and_plain_paths_agree_on_nearly_valid_batches(batch: dict[str, Any], ascii_only: bool) -> None:
    assert_same_answer(json.dumps(batch, ensure_ascii=ascii_only).encode())


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_batches, ascii_only=st.booleans(), drop=st.sampled_from([None, "app", "context", "events"]))
def test_typed_and_plain_paths_agree_on_generated_batches(batch: dict[str, Any], ascii_only: bool, drop: str) -> None:
    if drop is not None:
        del batch[drop]
    assert_same_answer(json.dumps(batch, ensure_ascii=ascii_only).encode())


def test_the_generated_batches_do_take_the_typed_pass() -> None:
    """The property above is worth something only if many generated batches take the typed pass."""
    taken = 0

    @settings(max_examples=400, deadline=None, database=None)
    @given(batch=_batches)
    def count(batch: dict[str, Any]) -> None:
        nonlocal taken
        taken += isinstance(typed(json.dumps(batch).encode()), NativeBatch)

    count()
    assert taken >= 100


@settings(max_examples=500, deadline=None)
@given(
    moment=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    form=st.sampled_from(["offset", "Z", "naive"]),
)
def test_parse_time_is_the_utc_conversion(moment: dt.datetime, minutes: int, form: str) -> None:
    zone = dt.timezone(dt.timedelta(minutes=minutes))
    aware = moment.replace(tzinfo=zone)
    text = {"offset": aware.isoformat(), "Z": moment.isoformat() + "Z", "naive": moment.isoformat()}[form]
    expected = {
        "offset": aware.astimezone(dt.timezone.utc).replace(tzinfo=None),
        "Z": moment,
        "naive": moment,
    }[form]
    assert parse_time(text) == expected
    assert parse_time(text).tzinfo is None  # type: ignore[union-attr]


# -- records and lines ---------------------------------------------------------------


def test_record_batch_stores_what_record_stores(app_server: InThreadServer) -> None:
    ingestor = app_server.app.state.context.ingestor
    app_server.store.add_app("cpu-tool")
    context_fields = {
        "install": "0f8fad5bd9cb469fa16570867728950e",
        "session": "6ba7b8109dad11d180b400c04fd430c8",
        "app_version": "1.4.0",
        "platform": {"os": "linux", "os_version": "6.1", "arch": "x86_64", "runtime": "cpython", "runtime_version": ""},
        "environment": {"ci": "someone@example.com", "container": ""},  # sensitive: stored empty
    }
    document = {
        "app": "cpu-tool",
        "context": context_fields,
        "events": [
            {"name": "command", "time": "2026-11-28T11:00:00Z", "props": {"jobs": 4, "options": ["--fast"]}},
            {"name": "command", "time": "2026-11-28T11:00:01+02:00", "props": {"ratio": 0.5, "path": "/home/x/y"}},
            {"name": "start", "time": "2026-11-28T11:00:02", "props": {}},
            {"name": "command", "time": "1999-01-01T00:00:00Z"},  # too old: rejected by the decoder
            {"name": "ip:192.168.1.10", "time": "2026-11-28T11:00:03Z"},  # a sensitive name: refused
            {"name": "command", "time": "2026-11-28T11:00:04Z", "props": {"text": "é", "big": 2**70}},
        ],
    }
    batch = decode_batch(document, received=RECEIVED, max_events=10, max_age=MAX_AGE)
    recorded = ingestor.record_batch(batch, "DE")
    assert [r.get("code") for r in recorded.results] == [None, None, None, "time_too_old", "sensitive_name", None]
    assert recorded.results[4]["message"] == "'ip:192.168.1.10': " + (
        "the event name looks like something that identifies a person or a machine"
    )
    lines = recorded.lines.splitlines(keepends=True)
    assert recorded.accepted == len(lines) == 4
    expected = []
    for event in batch.events:
        if isinstance(event, NativeEvent):
            incoming = Incoming(
                app="cpu-tool",
                name=event.name,
                time=event.time,
                install=batch.context.install,
                session=batch.context.session,
                app_version=batch.context.app_version,
                platform=batch.context.platform,
                environment=batch.context.environment,
                props=event.props,
                source="native",
                country="DE",
            )
            record, _, _ = ingestor.record(incoming)
            if record is not None:
                expected.append(record)
    stored = [segments.decode(line) for line in lines]
    received = {record.received for record in stored}
    assert len(received) == 1  # one request, one time of receipt
    assert [dataclasses.replace(record, received=RECEIVED) for record in stored] == [
        dataclasses.replace(record, received=RECEIVED) for record in expected
    ]
    assert stored[0].ci == "" and stored[0].install == expected[0].install != ""


def test_one_install_and_run_hash_per_batch_context(app_server: InThreadServer) -> None:
    """The ids are hashed once per batch: every event of a batch carries that hash, and the
    next batch of the same install (another run) carries the same install hash."""
    key = bytes.fromhex(json.loads((app_server.data / "secrets.json").read_text())["install_key"])
    install = "0f8fad5bd9cb469fa16570867728950e"
    sessions = ["6ba7b8109dad11d180b400c04fd430c8", "7ba7b8109dad11d180b400c04fd430c9"]
    for session in sessions:
        golden = with_fresh_times(load_golden("batch-command.json"))
        golden["context"] |= {"install": install, "session": session}
        golden["events"] = golden["events"] * 3
        response = httpx.post(app_server.url + "/v1/batch", json=golden, timeout=30)
        assert response.status_code == 202 and response.json()["accepted"] == 6
    rows = app_server.store.query("SELECT install, session FROM events").rows
    assert len(rows) == 12
    assert {row[0] for row in rows} == {keyed_hash(key, "install", GOLDEN_APP, install)}
    assert sorted({row[1] for row in rows}) == sorted(keyed_hash(key, "session", GOLDEN_APP, s) for s in sessions)
    assert sorted(row[1] for row in rows).count(keyed_hash(key, "session", GOLDEN_APP, sessions[0])) == 6


TRICKY = EventRecord(
    time=dt.datetime(2026, 1, 1, 1, 2, 3, 4),
    received=dt.datetime(2026, 1, 1, 1, 2, 3),
    app="a",
    app_version='1.0\u00e9"\\',
    name="n\ud800",
    install="",
    session="x",
    os="\x7f",
    os_version="\u2028",
    arch="",
    runtime="r",
    runtime_version="",
    ci="",
    container="",
    country="DE",
    props='{"a":1}',
    source="native",
)
# What the log's encoder wrote for TRICKY before issue 9 (json.dumps of the row): the format stays.
TRICKY_LINE = (
    b'{"time":"2026-01-01T01:02:03.000004","received":"2026-01-01T01:02:03","app":"a",'
    b'"app_version":"1.0\\u00e9\\"\\\\","name":"n\\ud800","install":"","session":"x","os":"\\u007f",'
    b'"os_version":"\\u2028","arch":"","runtime":"r","runtime_version":"","ci":"","container":"",'
    b'"country":"DE","props":"{\\"a\\":1}","source":"native"}\n'
)


def test_a_log_line_is_the_bytes_it_was() -> None:
    assert segments.encode(TRICKY) == TRICKY_LINE
    assert segments.encode_lines([TRICKY, TRICKY]) == TRICKY_LINE * 2
    assert segments.decode(TRICKY_LINE) == TRICKY


def json_dumps_line(record: EventRecord) -> bytes:
    """The log line as json.dumps wrote it before issue 9."""
    row = {column: getattr(record, column) for column in EVENT_COLUMNS}
    row["time"], row["received"] = record.time.isoformat(), record.received.isoformat()
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


_any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(_any_text, min_size=15, max_size=15),
    times=st.lists(st.datetimes(), min_size=2, max_size=2),
)
def test_log_lines_are_json_dumps_lines(texts: list[str], times: list[dt.datetime]) -> None:
    record = EventRecord(times[0], times[1], *texts)
    line = segments.encode(record)
    assert line == json_dumps_line(record)
    other = segments.LineTemplate(record).line(times[1], texts[0]).encode()
    assert other == json_dumps_line(EventRecord(times[1], times[1], *texts[:13], texts[0], texts[14]))


_prop_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    _any_text,
    st.lists(_any_text, max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(props=st.dictionaries(st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), _any_text), _prop_values))
def test_props_text_is_json_dumps_text(props: dict[str, Any]) -> None:
    assert props_text(props) == json.dumps(props, separators=(",", ":"), sort_keys=True)
