"""Google Analytics Measurement Protocol v1 (Universal Analytics), as existing tools send it.

`GET`/`POST /collect` carry one hit; `POST /batch` up to 20, one per line;
`/debug/collect` validates and answers GA's `hitParsingResult`. GA's semantics hold:
the answer is always 2xx, and a malformed hit is dropped and counted by reason.

Parameters kept: `v tid cid uid t ec ea el ev an av aid aiid ds qt aip uip ua ul sr
geoid exd exf utc utv utt utl cd cm cn cs sn sa st ti in` and `cd<N>`/`cm<N>`
(custom dimensions and metrics, kept apart from `cd` screen name and `cm` campaign
medium). `z` is ignored. Page URLs, titles and hosts are not kept: they identify.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from footfall.server.ingest.protocols import Incoming
from footfall.server.ingest.useragent import parse_user_agent

MAX_HIT_BYTES = 8192  # per hit, and per POST /collect body
MAX_URL_BYTES = 8000  # GET /collect
MAX_BATCH_HITS = 20
MAX_BATCH_BYTES = 16 * 1024
MAX_QUEUE_TIME_MS = 4 * 3600 * 1000
HIT_TYPES = frozenset({"pageview", "screenview", "event", "transaction", "item", "social", "exception", "timing"})
REQUIRED = {
    "event": ("ec", "ea"),
    "transaction": ("ti",),
    "item": ("ti", "in"),
    "social": ("sn", "sa", "st"),
    "timing": ("utc", "utv", "utt"),
}
TID = re.compile(r"^(UA|YT|MO)-\d{1,12}-\d{1,6}$")
CUSTOM = re.compile(r"^(cd|cm)([1-9]\d{0,2})$")
PROPS = {
    "ec": ("category", 150),
    "ea": ("action", 500),
    "el": ("label", 500),
    "cd": ("screen", 2048),
    "an": ("app_name", 100),
    "aid": ("app_id", 150),
    "aiid": ("app_installer_id", 150),
    "ds": ("data_source", 50),
    "ul": ("language", 20),
    "sr": ("screen_resolution", 20),
    "exd": ("exception", 150),
    "utc": ("timing_category", 150),
    "utv": ("timing_var", 500),
    "utl": ("timing_label", 500),
    "cm": ("campaign_medium", 50),
    "cn": ("campaign_name", 100),
    "cs": ("campaign_source", 100),
    "sn": ("social_network", 50),
    "sa": ("social_action", 50),
    "in": ("item_name", 500),
}
INTEGERS = {"ev": "value", "utt": "timing_time", "qt": "", "z": ""}
MAX_INTEGER_DIGITS = 18  # fits an int64; GA's integers are far smaller


def is_integer(value: str) -> bool:
    """ASCII digits only, and few of them: "²".isdigit() is True and int() refuses it,
    and int() of thousands of digits is slow or refused."""
    return value.isascii() and value.isdigit() and len(value) <= MAX_INTEGER_DIGITS


def _signed_integer(value: str) -> bool:
    return is_integer(value[1:] if value.startswith("-") else value)


@dataclasses.dataclass
class ParserMessage:
    type: str  # "ERROR" or "INFO"
    code: str  # GA's messageCode: VALUE_REQUIRED, VALUE_INVALID, ...
    description: str
    parameter: str = ""

    def as_ga(self) -> dict[str, str]:
        message = {
            "messageType": self.type,
            "description": self.description,
            "messageCode": self.code,
        }
        if self.parameter:
            message["parameter"] = self.parameter
        return message


@dataclasses.dataclass
class Hit:
    text: str  # the hit as sent, for the debug answer
    params: dict[str, str]
    messages: list[ParserMessage]

    @property
    def valid(self) -> bool:
        return not any(m.type == "ERROR" for m in self.messages)

    @property
    def reason(self) -> str:
        errors = [m for m in self.messages if m.type == "ERROR"]
        return f"{errors[0].code.lower()}_{errors[0].parameter or 'hit'}" if errors else ""


def _error(code: str, description: str, parameter: str = "") -> ParserMessage:
    return ParserMessage("ERROR", code, description, parameter)


def parse_hit(text: str) -> Hit:
    messages: list[ParserMessage] = []
    if len(text.encode()) > MAX_HIT_BYTES:
        return Hit(text[:200], {}, [_error("VALUE_INVALID", f"A hit is limited to {MAX_HIT_BYTES} bytes.")])
    params: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        params.setdefault(key, value)  # the first value of a repeated parameter wins
    if params.get("v") is None:
        messages.append(_error("VALUE_REQUIRED", "A value is required for parameter 'v'.", "v"))
    elif params["v"] != "1":
        messages.append(_error("VALUE_INVALID", "The value provided for parameter 'v' is invalid.", "v"))
    if not params.get("tid"):
        messages.append(_error("VALUE_REQUIRED", "A value is required for parameter 'tid'.", "tid"))
    elif not TID.match(params["tid"]):
        messages.append(_error("VALUE_INVALID", "The value provided for parameter 'tid' is invalid.", "tid"))
    if not params.get("cid") and not params.get("uid"):
        messages.append(_error("VALUE_REQUIRED", "A value is required for parameter 'cid' or 'uid'.", "cid"))
    hit_type = params.get("t")
    if not hit_type:
        messages.append(_error("VALUE_REQUIRED", "A value is required for parameter 't'.", "t"))
    elif hit_type not in HIT_TYPES:
        messages.append(_error("VALUE_INVALID", "The value provided for parameter 't' is invalid.", "t"))
    for required in REQUIRED.get(hit_type or "", ()):
        if not params.get(required):
            messages.append(
                _error(
                    "VALUE_REQUIRED",
                    f"A value is required for parameter '{required}' on a {hit_type} hit.",
                    required,
                )
            )
    for key in INTEGERS:
        if key in params and not is_integer(params[key]):
            messages.append(
                _error(
                    "VALUE_INVALID",
                    f"The value provided for parameter '{key}' must be an integer.",
                    key,
                )
            )
    if is_integer(params.get("qt", "0")) and int(params.get("qt", "0")) > MAX_QUEUE_TIME_MS:
        messages.append(_error("VALUE_INVALID", "Parameter 'qt' is limited to 4 hours.", "qt"))
    return Hit(text, params, messages)


def split_batch(body: str) -> tuple[list[str], list[ParserMessage]]:
    lines = [line for line in body.splitlines() if line.strip()]
    problems = []
    if len(lines) > MAX_BATCH_HITS:
        problems.append(_error("VALUE_INVALID", f"A batch is limited to {MAX_BATCH_HITS} hits."))
    if len(body.encode()) > MAX_BATCH_BYTES:
        problems.append(_error("VALUE_INVALID", f"A batch is limited to {MAX_BATCH_BYTES} bytes."))
    return lines, problems


def to_incoming(
    hit: Hit,
    app: str,
    received: dt.datetime,
    user_agent: str,
    client_ip: str | None,
    locate: Callable[[str | None, bool], str],
) -> Incoming:
    """A valid hit as an event: `name` is the hit type; category, action, label, value,
    custom dimensions and metrics become properties. `locate(ip, truncate)` gives the country.
    """
    p = hit.params
    queue_time = p.get("qt", "0")
    moment = received - dt.timedelta(milliseconds=int(queue_time) if is_integer(queue_time) else 0)
    props: dict[str, Any] = {}
    for key, (name, limit) in PROPS.items():
        if p.get(key) and len(p[key]) <= limit:
            props[name] = p[key]
    for key, name in INTEGERS.items():
        if name and is_integer(p.get(key, "")):
            props[name] = int(p[key])
    if "exf" in p:
        props["fatal"] = p["exf"] == "1"
    for key, value in p.items():
        custom = CUSTOM.match(key)
        if custom and value and len(value) <= 150:
            props[key] = int(value) if custom.group(1) == "cm" and _signed_integer(value) else value
    country = p.get("geoid", "") if re.fullmatch(r"[A-Z]{2}", p.get("geoid", "")) else ""
    if not country:
        country = locate(p.get("uip") or client_ip, "aip" in p)
    install = p.get("cid") or p.get("uid", "")
    return Incoming(
        app=app,
        name=p["t"],
        time=moment,
        install=install,
        session=f"{install}:{moment.date().isoformat()}",  # v1 has no run id: one per install-day
        app_version=p.get("av", "")[:64],
        platform=parse_user_agent(p.get("ua") or user_agent),
        environment={"ci": "", "container": ""},
        props=props,
        source="ga-v1",
        country=country,
    )
