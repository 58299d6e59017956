"""The GA4 Measurement Protocol: `POST /mp/collect` and `/debug/mp/collect`.

The request names its app with `measurement_id` (and `api_secret`) or
`firebase_app_id`. GA4's limits apply: at most 25 events, 25 parameters per event
and 25 user properties; names of at most 40 characters (24 for user properties),
letters, digits and underscores, starting with a letter, and not reserved; parameter
values of at most 100 characters (36 for user properties); a body under 130 kB;
timestamps at most 72 hours old. GA's semantics hold: `/mp/collect` answers 204
whatever it drops, and the debug path answers `validationMessages`.

Text is held to `framing.storable`, the one rule for every protocol; a number must be
finite (Python's JSON reader takes `NaN`, `Infinity` and `1e400`, which JSON cannot
carry back out) and an integer must fit in 64 bits. A message quotes a name only in a
form JSON can encode.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from typing import Any

from footfall.server.ingest.protocols import Incoming
from footfall.server.ingest.protocols.framing import storable
from footfall.server.ingest.useragent import parse_user_agent

MAX_BODY_BYTES = 130 * 1024  # the body must be smaller than this
MAX_EVENTS = 25
MAX_PARAMS = 25
MAX_USER_PROPERTIES = 25
MAX_PARAM_VALUE_CHARS = 100
MAX_USER_PROPERTY_NAME_CHARS = 24
MAX_USER_PROPERTY_VALUE_CHARS = 36
MAX_AGE = dt.timedelta(hours=72)
MAX_MICROS_DIGITS = 20  # more digits than any int64; longer strings are not parsed at all
MAX_MICROS = 2**63 - 1  # timestamp_micros is an int64 in GA4
MAX_INTEGER = 2**63 - 1  # GA4 numbers are int64 or double; JSON readers in other languages lose more
MAX_QUOTED_NAME_CHARS = 50  # of a refused name, in a message's fieldPath or description
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")  # with fullmatch: "$" would let "name\n" through
RESERVED_PREFIXES = ("google_", "ga_", "firebase_")
RESERVED_EVENTS = frozenset(
    [
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_install",
        "app_remove",
        "app_store_refund",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "firebase_campaign",
        "firebase_in_app_message_action",
        "firebase_in_app_message_dismiss",
        "firebase_in_app_message_impression",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "notification_send",
        "os_update",
        "session_start",
        "session_start_with_rollout",
        "user_engagement",
    ]
)
RESERVED_PARAMS = frozenset({"firebase_conversion"})
RESERVED_USER_PROPERTIES = frozenset(
    {
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
        "first_open_after_install",
    }
)


@dataclasses.dataclass
class ValidationMessage:
    field_path: str
    description: str
    code: str  # GA4's validationCode

    def as_ga(self) -> dict[str, str]:
        return {
            "fieldPath": self.field_path,
            "description": self.description,
            "validationCode": self.code,
        }


@dataclasses.dataclass
class Ga4Event:
    name: str
    params: dict[str, Any]
    time: dt.datetime


@dataclasses.dataclass
class Ga4Request:
    client_id: str
    events: list[Ga4Event]  # only the valid ones
    user_properties: dict[str, Any]
    messages: list[ValidationMessage]
    dropped_events: int
    size: int = 0  # the body's length in bytes, charged to the app's byte budget


def quoted(name: str) -> str:
    """`name` as a message may carry it: cut short, and escaped unless storable (a lone
    surrogate in an answer is a 500: JSON cannot encode it)."""
    short = name[:MAX_QUOTED_NAME_CHARS]
    return short if storable(short) else ascii(short)[1:-1]


def _value_problem(value: Any, path: str, max_chars: int) -> ValidationMessage | None:
    """Why a parameter or user-property value may not be kept; None when it may (or is
    simply not kept: lists and objects)."""
    if isinstance(value, str):
        if len(value) > max_chars:
            return ValidationMessage(path, f"Values are limited to {max_chars} characters.", "VALUE_OUT_OF_BOUNDS")
        if not storable(value):
            return ValidationMessage(path, "Values must be printable UTF-8 text.", "VALUE_INVALID")
    elif isinstance(value, float) and not math.isfinite(value):
        return ValidationMessage(path, "Numbers must be finite.", "VALUE_INVALID")
    elif isinstance(value, int) and abs(value) > MAX_INTEGER:
        return ValidationMessage(path, "Integers must fit in 64 bits.", "VALUE_OUT_OF_BOUNDS")
    return None


def _name_problem(name: Any, path: str, reserved: frozenset[str], limit: int = 40) -> ValidationMessage | None:
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > limit:
        shown = f"Name {quoted(name)!r}" if isinstance(name, str) else "A name"
        return ValidationMessage(
            path,
            f"{shown} must be 1 to {limit} letters, digits or underscores, starting with a letter.",
            "NAME_INVALID",
        )
    if name in reserved or name.startswith(RESERVED_PREFIXES):
        return ValidationMessage(path, f"Name {name!r} is reserved.", "NAME_RESERVED")
    return None


def _time(micros: Any, path: str, received: dt.datetime) -> tuple[dt.datetime | None, ValidationMessage | None]:
    if micros is None:
        return received, None
    if isinstance(micros, str) and micros.isascii() and micros.isdigit() and len(micros) <= MAX_MICROS_DIGITS:
        micros = int(micros)  # only ASCII digits: "²".isdigit() is True, and int() refuses it
    if not isinstance(micros, int) or isinstance(micros, bool):
        return None, ValidationMessage(path, "timestamp_micros must be an integer.", "VALUE_INVALID")
    if abs(micros) > MAX_MICROS:
        return None, ValidationMessage(path, "timestamp_micros is out of range.", "VALUE_OUT_OF_BOUNDS")
    try:
        moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    except OverflowError:
        return None, ValidationMessage(path, "timestamp_micros is out of range.", "VALUE_OUT_OF_BOUNDS")
    if moment < received - MAX_AGE or moment > received + dt.timedelta(minutes=15):
        return None, ValidationMessage(path, "Timestamps may be at most 72 hours in the past.", "VALUE_OUT_OF_BOUNDS")
    return moment, None


def parse_request(body: bytes, firebase: bool, received: dt.datetime) -> Ga4Request:
    messages: list[ValidationMessage] = []
    empty = Ga4Request("", [], {}, messages, 0, len(body))
    if len(body) >= MAX_BODY_BYTES:
        messages.append(ValidationMessage("", "The body must be smaller than 130 kB.", "VALUE_OUT_OF_BOUNDS"))
        return empty
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        messages.append(ValidationMessage("", "The body is not valid JSON.", "VALUE_INVALID"))
        return empty
    if not isinstance(document, dict):
        messages.append(ValidationMessage("", "The body must be a JSON object.", "VALUE_INVALID"))
        return empty
    id_field = "app_instance_id" if firebase else "client_id"
    client_id = document.get(id_field)
    if not isinstance(client_id, str) or not client_id or len(client_id) > 256:
        messages.append(ValidationMessage(id_field, f"A value is required for {id_field}.", "VALUE_REQUIRED"))
    elif not storable(client_id):
        messages.append(ValidationMessage(id_field, f"{id_field} must be printable UTF-8 text.", "VALUE_INVALID"))
    request_time, problem = _time(document.get("timestamp_micros"), "timestamp_micros", received)
    if problem:
        messages.append(problem)
    user_properties = _user_properties(document.get("user_properties"), messages)
    events = document.get("events")
    if not isinstance(events, list) or not events:
        messages.append(ValidationMessage("events", "A value is required for events.", "VALUE_REQUIRED"))
        return dataclasses.replace(empty, user_properties=user_properties)
    if len(events) > MAX_EVENTS:
        messages.append(
            ValidationMessage("events", f"At most {MAX_EVENTS} events per request.", "EXCEEDED_MAX_ENTITIES")
        )
        return dataclasses.replace(empty, dropped_events=len(events))
    valid: list[Ga4Event] = []
    for index, event in enumerate(events):
        found = _event(event, f"events[{index}]", request_time or received, received)
        if isinstance(found, Ga4Event):
            valid.append(found)
        else:
            messages.extend(found)
    request_ok = not any(m.field_path in (id_field, "timestamp_micros", "") for m in messages)
    return Ga4Request(
        client_id=client_id if isinstance(client_id, str) else "",
        events=valid if request_ok else [],
        user_properties=user_properties,
        messages=messages,
        dropped_events=len(events) - (len(valid) if request_ok else 0),
        size=len(body),
    )


def _event(
    event: Any, path: str, default_time: dt.datetime, received: dt.datetime
) -> Ga4Event | list[ValidationMessage]:
    if not isinstance(event, dict):
        return [ValidationMessage(path, "An event must be an object.", "VALUE_INVALID")]
    problems: list[ValidationMessage] = []
    name = event.get("name")
    name_problem = _name_problem(name, f"{path}.name", RESERVED_EVENTS)
    if name_problem:
        problems.append(name_problem)
    moment, time_problem = _time(event.get("timestamp_micros"), f"{path}.timestamp_micros", received)
    if time_problem:
        problems.append(time_problem)
    params = event.get("params", {})
    if not isinstance(params, dict):
        problems.append(ValidationMessage(f"{path}.params", "params must be an object.", "VALUE_INVALID"))
        params = {}
    if len(params) > MAX_PARAMS:
        problems.append(
            ValidationMessage(
                f"{path}.params",
                f"At most {MAX_PARAMS} parameters per event.",
                "EXCEEDED_MAX_ENTITIES",
            )
        )
    kept: dict[str, Any] = {}
    for key, value in params.items():
        param_path = f"{path}.params.{quoted(key)}"
        problem = _name_problem(key, param_path, RESERVED_PARAMS) or _value_problem(
            value, param_path, MAX_PARAM_VALUE_CHARS
        )
        if problem:
            problems.append(problem)
        elif isinstance(value, (str, bool, int, float)):
            kept[key] = value  # lists and objects (such as items) are not kept
    if problems:
        return problems
    return Ga4Event(
        str(name),
        kept,
        moment if event.get("timestamp_micros") is not None and moment else default_time,
    )


def _user_properties(properties: Any, messages: list[ValidationMessage]) -> dict[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        messages.append(ValidationMessage("user_properties", "user_properties must be an object.", "VALUE_INVALID"))
        return {}
    if len(properties) > MAX_USER_PROPERTIES:
        messages.append(
            ValidationMessage(
                "user_properties",
                f"At most {MAX_USER_PROPERTIES} user properties.",
                "EXCEEDED_MAX_ENTITIES",
            )
        )
        return {}
    kept: dict[str, Any] = {}
    for key, entry in properties.items():
        path = f"user_properties.{quoted(key)}"
        value = entry.get("value") if isinstance(entry, dict) else None
        problem = _name_problem(key, path, RESERVED_USER_PROPERTIES, MAX_USER_PROPERTY_NAME_CHARS) or _value_problem(
            value, path, MAX_USER_PROPERTY_VALUE_CHARS
        )
        if problem:
            messages.append(problem)
        elif isinstance(value, (str, bool, int, float)):
            kept[key] = value
    return kept


def to_incoming(request: Ga4Request, event: Ga4Event, app: str, user_agent: str, country: str) -> Incoming:
    session = event.params.get("session_id")  # keys the run; an id, so never a property
    params = {k: v for k, v in event.params.items() if k != "session_id"}
    props = {**{f"user_{k}": v for k, v in request.user_properties.items()}, **params}
    return Incoming(
        app=app,
        name=event.name,
        time=event.time,
        install=request.client_id,
        session=f"{request.client_id}:{session}" if session else f"{request.client_id}:{event.time.date()}",
        app_version="",
        platform=parse_user_agent(user_agent),
        environment={"ci": "", "container": ""},
        props=props,
        source="ga4",
        country=country,
    )
