"""InfluxDB line protocol: the body of `POST /api/v2/write` and InfluxDB 1.x's `POST /write`.

Written from InfluxDB's documented grammar, one point per line:

    measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]

- A backslash escapes a comma or a space in the measurement; a comma, an equals sign or a
  space in tag keys, tag values and field keys; a double quote or a backslash inside a
  string field value. A backslash before any other character is kept as it is.
- Field values: floats (`1`, `-1.5`, `2e3`), integers (`1i`), unsigned integers (`1u`),
  strings (`"..."`) and booleans (`t`, `T`, `true`, `True`, `TRUE` and the same for false).
- The timestamp is optional, an integer in the request's precision.
- Blank lines and lines starting with `#` (comments) are skipped. A value cannot hold a
  newline (InfluxDB's rule too).

Every line is matched by regular expressions whose alternatives never overlap, so the work
is linear in the body, and every size is bounded (line length, tags and fields per line,
key and value lengths, lines per request): a hostile body cannot stall the collector.

Footfall's own rules for what it stores come on top, per line: the measurement is the event
name and must be a native event name (a lowercase identifier, `command_run`); tag and field
keys become property names and must be lowercase identifiers; an unsigned integer must fit
in 64 signed bits. A line that breaks a rule is refused with its number and the reason
(`LineError`), and the valid lines of the request are still stored, as InfluxDB's partial
writes do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import re

from footfall.server.ingest.protocols import Incoming
from footfall.server.ingest.protocols.native import (
    EVENT_NAME_PATTERN,
    MAX_FUTURE_SKEW,
    MAX_PROP_STRING_CHARS,
    MAX_PROPS,
    PROP_KEY_PATTERN,
)

MAX_LINES = 5_000  # per request: InfluxDB's recommended batch size
# Physical lines per request, blank and comment lines included: each costs a little to skip or
# to refuse, so a body of nothing but separators must meet a cap too.
MAX_PHYSICAL_LINES = 4 * MAX_LINES
MAX_LINE_CHARS = 16 * 1024  # per line, after decoding; a Homebrew line is about 300
MAX_KEYS_PER_LINE = MAX_PROPS  # tags and fields together become the event's properties
MAX_VALUE_CHARS = MAX_PROP_STRING_CHARS  # a tag value or a string field value, unescaped
MAX_NUMBER_CHARS = 64  # of a numeric field's text: longer is not a number anyone sends
MAX_TIMESTAMP_DIGITS = 19  # an int64 of nanoseconds
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1
MAX_QUOTED_CHARS = 60  # of a name or line quoted back in an error message
KNOWN_NAMES = 4096  # checked measurements and keys remembered: they repeat on every line
MAX_ERRORS_REPORTED = 10  # lines named in one answer; the count says how many failed

# Nanoseconds per unit of each precision InfluxDB accepts: v2's four, and 1.x's spellings.
PRECISION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
PRECISION_NS_V1 = {**PRECISION_NS, "n": 1, "u": 1_000, "m": 60_000_000_000, "h": 3_600_000_000_000}

FieldValue = str | int | float | bool

# Each token is written as an "unrolled loop": plain characters, then any number of (escape
# pair, plain characters). A plain character is never a backslash, so there is one way to
# match any text: each regex runs in time linear in what it reads, and fast.
_PLAIN_NAME = r"[^,\\ ]"
_PLAIN_KEY = r"[^,=\\ ]"
_MEASUREMENT = re.compile(rf"(?:{_PLAIN_NAME}|\\.){_PLAIN_NAME}*(?:\\.{_PLAIN_NAME}*)*")
_KEY = rf"(?:{_PLAIN_KEY}|\\.){_PLAIN_KEY}*(?:\\.{_PLAIN_KEY}*)*"
_TAG = re.compile(rf",({_KEY})=({_KEY})")
_FIELD = re.compile(rf'({_KEY})=("[^"\\]*(?:\\.[^"\\]*)*"|[^," ]+)')
_TIMESTAMP = re.compile(rf" +(-?[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}) *")
_TRAILING_SPACES = re.compile(r" *")
_NAME_ESCAPE = re.compile(r"\\([, ])")
_KEY_ESCAPE = re.compile(r"\\([,= ])")
_STRING_ESCAPE = re.compile(r'\\(["\\])')
_INTEGER = re.compile(r"-?[0-9]+i")
_UNSIGNED = re.compile(r"[0-9]+u")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
NAME_RULES = {  # native's rules (EVENT_NAME_PATTERN, PROP_KEY_PATTERN), in words
    "an event name": "1 to 64 lowercase letters, digits, '_', '.', ':' or '-', starting with a letter",
    "a property name": "1 to 64 lowercase letters, digits or '_', starting with a letter",
}
_BOOLEANS = {
    **dict.fromkeys(("t", "T", "true", "True", "TRUE"), True),
    **dict.fromkeys(("f", "F", "false", "False", "FALSE"), False),
}


class LineError(ValueError):
    """One line cannot be stored; `str()` says why, for InfluxDB's error message."""


@dataclasses.dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp: int | None  # in the request's precision; None: the time of receipt


@dataclasses.dataclass
class ParsedBody:
    points: list[tuple[int, Point]]  # (line number, point), in order
    errors: list[tuple[int, str]]  # (line number, why), in order


def quoted(text: str) -> str:
    """`text` cut short and shown with Python's escapes, safe in any JSON answer."""
    short = text[:MAX_QUOTED_CHARS]
    return ascii(short) + ("..." if len(text) > MAX_QUOTED_CHARS else "")


def _unescape(text: str, escapes: re.Pattern[str]) -> str:
    return escapes.sub(r"\1", text) if "\\" in text else text


@functools.lru_cache(maxsize=KNOWN_NAMES)
def _name(escaped: str, what: str) -> str:
    """A measurement ("measurement") or a tag or field key, unescaped and checked; raises LineError."""
    if what == "measurement":
        name, pattern, rule = _unescape(escaped, _NAME_ESCAPE), EVENT_NAME_PATTERN, "an event name"
    else:
        name, pattern, rule = _unescape(escaped, _KEY_ESCAPE), PROP_KEY_PATTERN, "a property name"
    if not pattern.match(name):
        raise LineError(f"{what} {quoted(name)} is not {rule}: {NAME_RULES[rule]}")
    return name


def _field_value(text: str, key: str) -> FieldValue:
    if text.startswith('"'):
        value = _unescape(text[1:-1], _STRING_ESCAPE)
        if len(value) > MAX_VALUE_CHARS:
            raise LineError(f"field {key!r} is longer than {MAX_VALUE_CHARS} characters")
        return value
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if len(text) > MAX_NUMBER_CHARS:
        raise LineError(f"field {key!r} is not a number, string or boolean")
    if _INTEGER.fullmatch(text):
        number = int(text[:-1])
        if abs(number) > MAX_INT64 + (number < 0):
            raise LineError(f"field {key!r} is out of the int64 range")
        return number
    if _UNSIGNED.fullmatch(text):
        number = int(text[:-1])
        if number > MAX_UINT64:
            raise LineError(f"field {key!r} is out of the uint64 range")
        if number > MAX_INT64:  # the stores keep signed 64-bit integers
            raise LineError(f"field {key!r} is above {MAX_INT64}, the largest integer Footfall stores")
        return number
    if _FLOAT.fullmatch(text):
        real = float(text)
        if not math.isfinite(real):
            raise LineError(f"field {key!r} is out of the float64 range")
        return real
    raise LineError(f"field {key!r} has an invalid value {quoted(text)}")


def parse_line(line: str) -> Point:
    """One line (not blank, not a comment) as a point; raises LineError."""
    if len(line) > MAX_LINE_CHARS:
        raise LineError(f"the line is longer than {MAX_LINE_CHARS} characters")
    found = _MEASUREMENT.match(line)
    if found is None:
        raise LineError("the line does not start with a measurement")
    measurement = _name(found.group(), "measurement")
    position = found.end()
    tags: dict[str, str] = {}
    while position < len(line) and line[position] == ",":
        tag = _TAG.match(line, position)
        if tag is None:
            raise LineError(f"a tag at column {position + 1} is not key=value (an empty value is not allowed)")
        key = _name(tag.group(1), "tag key")
        value = _unescape(tag.group(2), _KEY_ESCAPE)
        if len(value) > MAX_VALUE_CHARS:
            raise LineError(f"tag {key!r} is longer than {MAX_VALUE_CHARS} characters")
        tags[key] = value
        if len(tags) > MAX_KEYS_PER_LINE:
            raise LineError(f"at most {MAX_KEYS_PER_LINE} tags and fields per line")
        position = tag.end()
    if position >= len(line) or line[position] != " ":
        raise LineError(f"expected a space before the fields at column {position + 1}")
    while position < len(line) and line[position] == " ":
        position += 1
    fields: dict[str, FieldValue] = {}
    while True:
        field = _FIELD.match(line, position)
        if field is None:
            raise LineError(f"a field at column {position + 1} is not key=value")
        key = _name(field.group(1), "field key")
        fields[key] = _field_value(field.group(2), key)
        if len(tags) + len(fields) > MAX_KEYS_PER_LINE:
            raise LineError(f"at most {MAX_KEYS_PER_LINE} tags and fields per line")
        position = field.end()
        if position < len(line) and line[position] == ",":
            position += 1
            continue
        break
    timestamp: int | None = None
    stamp = _TIMESTAMP.fullmatch(line, position)
    if stamp is not None:
        timestamp = int(stamp.group(1))
    elif _TRAILING_SPACES.fullmatch(line, position) is None:
        raise LineError(f"unexpected text at column {position + 1}: expected a timestamp or the end of the line")
    return Point(measurement, tags, fields, timestamp)


def split_lines(body: bytes) -> list[bytes]:
    """The body's lines; raises LineError (for the whole request) past MAX_LINES lines that hold
    something, or past MAX_PHYSICAL_LINES lines in all."""
    if body.count(b"\n") >= MAX_PHYSICAL_LINES:
        raise LineError(f"at most {MAX_LINES} lines per request, and {MAX_PHYSICAL_LINES} counting blank ones")
    lines = body.split(b"\n")
    if len(lines) > MAX_LINES and sum(1 for raw in lines if _content(raw)) > MAX_LINES:
        raise LineError(f"at most {MAX_LINES} lines per request")
    return lines


def _content(raw: bytes) -> bytes:
    """A line without what `parse_body` skips around it: a blank line has none."""
    return raw.rstrip(b"\r").lstrip(b" \t")


def parse_body(body: bytes) -> ParsedBody:
    """Every line of a body: the points, and the lines refused with why."""
    parsed = ParsedBody([], [])
    for number, raw in enumerate(split_lines(body), start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r").lstrip(" \t")
        except UnicodeDecodeError:
            parsed.errors.append((number, "the line is not UTF-8"))
            continue
        if not line or line.startswith("#"):
            continue
        try:
            parsed.points.append((number, parse_line(line)))
        except LineError as exc:
            parsed.errors.append((number, str(exc)))
    return parsed


def point_time(point: Point, precision_ns: int, received: dt.datetime, max_age: dt.timedelta) -> dt.datetime:
    """The point's time (naive UTC), as native bounds it; raises LineError when out of bounds."""
    if point.timestamp is None:
        return received
    nanoseconds = point.timestamp * precision_ns
    if abs(nanoseconds) > MAX_INT64:
        raise LineError("the timestamp is out of InfluxDB's range")
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=nanoseconds // 1_000)
    if moment < received - max_age:
        hours = int(max_age.total_seconds() // 3600)
        raise LineError(f"the timestamp is older than {hours} hours (check the precision)")
    if moment > received + MAX_FUTURE_SKEW:
        raise LineError("the timestamp is in the future (check the precision)")
    return moment


def to_incoming(point: Point, app: str, time: dt.datetime, country: str) -> Incoming:
    """A no-id event: InfluxDB clients send no install or run id, so there are counts, not installs."""
    return Incoming(
        app=app,
        name=point.measurement,
        time=time,
        install="",
        session="",
        app_version="",
        platform={},
        environment={},
        props={**point.tags, **point.fields},  # a field wins over a tag of the same key
        source="influx",
        country=country,
    )


def error_message(errors: list[tuple[int, str]], lines_stored: int) -> str:
    """InfluxDB's partial-write message, naming the failing lines (the first few)."""
    named = "; ".join(f"line {number}: {why}" for number, why in errors[:MAX_ERRORS_REPORTED])
    more = f"; and {len(errors) - MAX_ERRORS_REPORTED} more" if len(errors) > MAX_ERRORS_REPORTED else ""
    return f"partial write: {len(errors)} line(s) failed, {lines_stored} stored: {named}{more}"
