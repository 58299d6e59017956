"""The native protocol v1 (`POST /v1/batch`), specified in contract/native-v1.md.

`decode_batch` turns a parsed JSON document into a `NativeBatch`: a shared context
and, for each event in order, either a `NativeEvent` or a `Rejection`. A document
whose shape is wrong raises `BadRequest`; a single bad event is rejected alone.

`decode_body` does the same from the body's bytes, fast: a typed msgspec decoder
checks the whole batch in one C pass (shapes, types, lengths, counts, ranges) and
Python checks the rest (patterns once per distinct name and key, times, the context's
strings, and the text of values only when the body holds an escape or a non-ASCII
byte, the only ways to spell a character that may not be stored). A batch that
pass does not take whole, because something in it is wrong or merely unusual (an
extra field, an escaped character, a null where a string may be), goes through
`parse_json` and `decode_batch` instead, so every answer, good or bad, is the one
`decode_batch` gives: the fast path only ever accepts what it would accept, alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Annotated, Any

import msgspec

from footfall.server.errors import BadRequest
from footfall.server.ingest.protocols.framing import parse_json, storable
from footfall.server.stores.base import APP_PATTERN

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
EVENT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
PROP_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_PROPS = 32  # per event
MAX_PROP_STRING_CHARS = 200
MAX_PROP_LIST_ITEMS = 32
MAX_CONTEXT_CHARS = 64  # per context string
MAX_FUTURE_SKEW = dt.timedelta(minutes=5)
MAX_DROPPED = 1_000_000  # events a client may report dropped in one batch; far above any real queue

PLATFORM_FIELDS = ("os", "os_version", "arch", "runtime", "runtime_version")
ENVIRONMENT_FIELDS = ("ci", "container")


@dataclasses.dataclass(frozen=True)
class NativeContext:
    install: str  # the raw install id, "" when absent; hashed before storage
    session: str
    app_version: str
    platform: dict[str, str]
    environment: dict[str, str]


class NativeEvent(msgspec.Struct, frozen=True):
    # A Struct, not a frozen dataclass: made for every event, in a quarter of the time.
    name: str
    time: dt.datetime  # naive UTC
    props: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Rejection:
    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class NativeBatch:
    app: str
    context: NativeContext
    events: list[NativeEvent | Rejection]
    dropped: int


def decode_batch(document: Any, *, received: dt.datetime, max_events: int, max_age: dt.timedelta) -> NativeBatch:
    if not isinstance(document, dict):
        raise BadRequest("the batch must be a JSON object", code="invalid_batch")
    app = document.get("app")
    if not isinstance(app, str) or not APP_PATTERN.match(app):
        raise BadRequest(
            "'app' must be a lowercase id of letters, digits, '.', '_' or '-'",
            code="invalid_batch",
        )
    events = document.get("events")
    if not isinstance(events, list) or not events:
        raise BadRequest("'events' must be a non-empty list", code="invalid_batch")
    if len(events) > max_events:
        raise BadRequest(
            f"a batch holds at most {max_events} events, not {len(events)}",
            code="too_many_events",
        )
    dropped = document.get("dropped", 0)
    if not _is_int(dropped) or not 0 <= dropped <= MAX_DROPPED:
        raise BadRequest(f"'dropped' must be a whole number from 0 to {MAX_DROPPED:,}", code="invalid_batch")
    context = _decode_context(document.get("context"))
    decoded = [_decode_event(event, received, max_age) for event in events]
    return NativeBatch(app=app, context=context, events=decoded, dropped=dropped)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short_string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_CONTEXT_CHARS:
        raise BadRequest(
            f"'{where}' must be a string of at most {MAX_CONTEXT_CHARS} characters",
            code="invalid_context",
        )
    if not storable(value):
        raise BadRequest(f"'{where}' holds a control character or a lone surrogate", code="invalid_context")
    return value


def _identifier(value: Any, where: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise BadRequest(
            f"'{where}' must be null or 8 to 128 letters, digits, '_' or '-'",
            code="invalid_context",
        )
    return value


def _section(context: dict[str, Any], name: str, fields: tuple[str, ...]) -> dict[str, str]:
    section = context.get(name) or {}
    if not isinstance(section, dict):
        raise BadRequest(f"'context.{name}' must be an object", code="invalid_context")
    return {f: _short_string(section.get(f), f"context.{name}.{f}") for f in fields}


def _decode_context(context: Any) -> NativeContext:
    if not isinstance(context, dict):
        raise BadRequest("'context' must be an object", code="invalid_context")
    return NativeContext(
        install=_identifier(context.get("install"), "context.install"),
        session=_identifier(context.get("session"), "context.session"),
        app_version=_short_string(context.get("app_version"), "context.app_version"),
        platform=_section(context, "platform", PLATFORM_FIELDS),
        environment=_section(context, "environment", ENVIRONMENT_FIELDS),
    )


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 time as naive UTC; a time without an offset is taken as UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        if moment.tzinfo is not dt.timezone.utc:
            moment = moment.astimezone(dt.timezone.utc)
        # replace(tzinfo=None), without its keyword parsing: five times faster, on every event
        moment = _combine(moment.date(), moment.time())
    return moment


_combine = dt.datetime.combine


def _decode_event(event: Any, received: dt.datetime, max_age: dt.timedelta) -> NativeEvent | Rejection:
    if not isinstance(event, dict):
        return Rejection("invalid_event", "an event must be a JSON object")
    name = event.get("name")
    if not isinstance(name, str) or not EVENT_NAME_PATTERN.match(name):
        return Rejection("invalid_name", "'name' must be a lowercase identifier of 1 to 64 characters")
    moment = parse_time(event.get("time"))
    if moment is None:
        return Rejection("invalid_time", "'time' must be an ISO 8601 time")
    if moment < received - max_age:
        hours = int(max_age.total_seconds() // 3600)
        return Rejection("time_too_old", f"events older than {hours} hours are not accepted")
    if moment > received + MAX_FUTURE_SKEW:
        return Rejection("time_in_future", "'time' is in the future")
    props = event.get("props", {})
    problem = _props_problem(props)
    if problem:
        return Rejection("invalid_props", problem)
    return NativeEvent(name=name, time=moment, props=props)


def _props_problem(props: Any) -> str | None:
    if not isinstance(props, dict):
        return "'props' must be an object"
    if len(props) > MAX_PROPS:
        return f"at most {MAX_PROPS} properties per event"
    for key, value in props.items():
        if not PROP_KEY_PATTERN.match(key):
            return f"property name {key[:70]!r} must be a lowercase identifier"
        if value is None or isinstance(value, (bool, int)):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                return f"property {key!r} must be a finite number"
        elif isinstance(value, str):
            if len(value) > MAX_PROP_STRING_CHARS:
                return f"property {key!r} is longer than {MAX_PROP_STRING_CHARS} characters"
            if not storable(value):
                return f"property {key!r} holds a control character or a lone surrogate"
        elif isinstance(value, list):
            if len(value) > MAX_PROP_LIST_ITEMS or not all(
                isinstance(v, str) and len(v) <= MAX_PROP_STRING_CHARS for v in value
            ):
                return f"property {key!r} must be a list of at most {MAX_PROP_LIST_ITEMS} strings"
            if not all(storable(v) for v in value):
                return f"property {key!r} holds a control character or a lone surrogate"
        else:
            return f"property {key!r} must be a string, number, boolean, null or list of strings"
    return None


# -- the typed fast path ------------------------------------------------------------

# Patterns are checked in Python, once per distinct name or key of a batch: msgspec runs a
# `msgspec.Meta(pattern=...)` through Python's `re` for every value, which costs more.
_PropString = Annotated[str, msgspec.Meta(max_length=MAX_PROP_STRING_CHARS)]
# No float is NaN or infinite here: msgspec refuses "NaN" and out-of-range numbers (the fallback judges them).
_PropValue = (
    None | bool | int | float | _PropString | Annotated[list[_PropString], msgspec.Meta(max_length=MAX_PROP_LIST_ITEMS)]
)
_ContextValue = str | None | dict[str, str | None]


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    time: str
    props: Annotated[dict[str, _PropValue], msgspec.Meta(max_length=MAX_PROPS)] = {}


class _WireBatch(msgspec.Struct, forbid_unknown_fields=True):
    # Unknown fields are refused, not skipped: msgspec skips a value without the checks
    # json.loads makes (UTF-8, nesting depth), and the fallback must be the one to judge them.
    app: str
    context: dict[str, _ContextValue]
    events: Annotated[list[_WireEvent], msgspec.Meta(min_length=1)]
    dropped: Annotated[int, msgspec.Meta(ge=0, le=MAX_DROPPED)] = 0


_WIRE_DECODER = msgspec.json.Decoder(_WireBatch)


def _plain_text(data: bytes) -> bool:
    """True when no string in the JSON text `data` can hold an unstorable character: ASCII without
    DEL and without any escape (JSON forbids raw control characters in a string; "\\n" or
    "\\u0000" would make one)."""
    return data.isascii() and b"\x7f" not in data and b"\\" not in data


def decode_typed(data: bytes, *, received: dt.datetime, max_events: int, max_age: dt.timedelta) -> NativeBatch | None:
    """The batch, when the typed pass takes it whole and every event is valid; else None.

    Raises only the `BadRequest`s `decode_batch` raises for the same batch (too many events, a
    bad context), which come after every check the types make, as they do there.
    """
    try:
        wire = _WIRE_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    if not APP_PATTERN.match(wire.app):
        return None
    if len(wire.events) > max_events:
        raise BadRequest(
            f"a batch holds at most {max_events} events, not {len(wire.events)}",
            code="too_many_events",
        )
    context = _decode_context(wire.context)
    plain = _plain_text(data)
    oldest, newest = received - max_age, received + MAX_FUTURE_SKEW
    names: set[str] = set()  # checked in this batch: events repeat names and keys
    keys: set[str] = set()
    events: list[NativeEvent | Rejection] = []
    for event in wire.events:
        name, props = event.name, event.props
        if name not in names:
            if not EVENT_NAME_PATTERN.match(name):
                return None  # a rejection: decode_batch words it
            names.add(name)
        if not keys.issuperset(props):
            if not all(PROP_KEY_PATTERN.match(key) for key in props):
                return None
            keys.update(props)
        moment = parse_time(event.time)
        if moment is None or not oldest <= moment <= newest or (not plain and _props_problem(props)):
            return None
        events.append(NativeEvent(name, moment, props))
    return NativeBatch(app=wire.app, context=context, events=events, dropped=wire.dropped)


def decode_body(data: bytes, *, received: dt.datetime, max_events: int, max_age: dt.timedelta) -> NativeBatch:
    """`decode_batch(parse_json(data), ...)`, the same answers, mostly in one typed pass."""
    batch = decode_typed(data, received=received, max_events=max_events, max_age=max_age)
    if batch is None:
        batch = decode_batch(parse_json(data), received=received, max_events=max_events, max_age=max_age)
    return batch
