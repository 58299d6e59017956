"""Per-app schemas on the collector: which events and properties an app may store.

    {"events": {"start": {"mode": {"type": "enum", "values": ["a", "b"]},
                          "users": {"type": "bucket"}}}}

Types: enum (with values), bool, number, bucket (an SDK range such as "10-99", or
an integer), version, command, options, identifier, text (any short string that
passes the safety net). An app without a schema keeps the properties its protocol
allows. `footfall.Schema.to_json()` gives this document from a tool's SDK schema.
"""

from __future__ import annotations

import json
from typing import Any

from footfall.patterns import compiled
from footfall.schema import _IDENTIFIER, CommandPath, OptionNames, Version
from footfall.server.errors import UsageError

BUCKET_PATTERN = r"^(<\d+|\d+|\d+-\d+|\d+\+)$"
MAX_TEXT_CHARS = 200


def _check(kind: str, values: frozenset[str], value: Any) -> bool:
    if kind == "enum":
        return isinstance(value, str) and value in values
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bucket":
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        return isinstance(value, str) and bool(compiled(BUCKET_PATTERN).match(value))
    if kind == "options":
        return isinstance(value, list) and all(
            isinstance(v, str) and compiled(OptionNames.PATTERN).match(v) for v in value
        )
    if kind == "text":
        return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS
    pattern = {
        "version": Version.PATTERN,
        "command": CommandPath.PATTERN,
        "identifier": _IDENTIFIER,
    }[kind]
    return isinstance(value, str) and bool(compiled(pattern).match(value))


TYPES = frozenset({"enum", "bool", "number", "bucket", "version", "command", "options", "identifier", "text"})


class AppSchema:
    def __init__(self, events: dict[str, dict[str, tuple[str, frozenset[str]]]]) -> None:
        self.events = events

    def filter(self, name: str, props: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
        """(kept props, reasons for each dropped one), or None when the event is undeclared."""
        declared = self.events.get(name)
        if declared is None:
            return None
        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in props.items():
            if key not in declared:
                dropped.append("undeclared_property")
            elif _check(*declared[key], value):
                kept[key] = value
            else:
                dropped.append("wrong_type")
        return kept, dropped


def parse_schema(text: str) -> AppSchema:
    """Read and check a schema document; a mistake is a UsageError that says where."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the schema is not valid JSON: {exc}") from None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, dict) or not events:
        raise UsageError('the schema must look like {"events": {"<event>": {"<property>": {"type": ...}}}}')
    parsed: dict[str, dict[str, tuple[str, frozenset[str]]]] = {}
    for event, props in events.items():
        if not isinstance(props, dict):
            raise UsageError(f"event {event!r}: its properties must be an object")
        parsed[event] = {}
        for prop, spec in props.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in TYPES:
                raise UsageError(f"{event}.{prop}: type must be one of {', '.join(sorted(TYPES))}")
            values = spec.get("values", []) if kind == "enum" else []
            if kind == "enum" and (not values or not all(isinstance(v, str) for v in values)):
                raise UsageError(f"{event}.{prop}: an enum needs a list of string values")
            parsed[event][prop] = (kind, frozenset(values))
    return AppSchema(parsed)
