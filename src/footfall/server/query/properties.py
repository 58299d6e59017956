"""A maintainer's own properties: value breakdowns, error rates, and two versions side by side.

Reports here are registered beside those of `reports` (same `Report` shape, same `Filters`):

- `errors` and `errors_by_version` are plain named reports (`run_report`).
- `properties` (an event and one of its properties) and `compare` (versions A and B) take
  arguments besides the filters: they are `ArgumentReport`s, run by `run_argument_report`
  with the query parameters, each with its own API route.

Definitions, which the tests check against plain Python:

- **Values.** For event E and property P, each value's `events` is how many E events carry
  it (a list value such as `options` counts each element once per event that lists it) and
  `installs` the distinct installs among them. Values are ordered by events, then installs
  (both descending), then value; the first `TOP_VALUES` are shown and the rest are summed
  into one `(other)` row, whose installs are the distinct installs over all of those values.
  Values are compared as text (3 and "3" are one value), exactly as a property filter is.
- **Numbers.** Scalar numeric values also get quantiles by nearest rank (the p-quantile of
  n sorted values is the ceil(n*p)-th smallest), min and max, and a histogram in powers of
  ten: 0 alone, and for x > 0 the bucket [10^k, 10^(k+1)) with k = floor(log10 x); negative
  values mirror that, (-10^(k+1), -10^k].
- **Errors.** From `command` events that carry an `outcome`: a run is an error when
  its outcome is not "ok" (the SDK sends "ok", the exception's type name, or "exit:<code>" for a
  non-zero exit; an "error:" prefix is dropped from the type). Rate = errors / runs.
- **Compare.** For versions A and B, under the same other filters: each command, option and
  outcome as a share of that version's command runs, and each platform (OS) as a share of
  its installs; `difference` is B's share minus A's (in shares, 0.05 = 5 points).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from footfall.server.errors import UsageError
from footfall.server.query.filters import PROPERTY_NAME, Filters, json_quote
from footfall.server.query.reports import INSTALLS, UNKNOWN, Report, _rows, label, report, version_key
from footfall.server.stores.base import EventStore

TOP_VALUES = 20  # value rows before the rest is summed into "(other)"
OTHER = "(other)"
MAX_PICKER_EVENTS = 50  # events offered in the picker when the app has no schema: the most frequent
MAX_PICKER_PROPERTIES = 50  # properties offered per event, likewise
MAX_ERROR_ROWS = 50  # commands (or versions) in the error reports
COMPARE_ROWS = 15  # rows per dimension in a comparison: the values most used by A and B together
QUANTILES_PERCENT = (50, 90, 99)
NUMERIC_JSON = ("BIGINT", "UBIGINT", "DOUBLE")  # json_type() of a JSON number
VERSION = re.compile(r"[\w.+-]{1,64}")
COMPARE_DIMENSIONS = ("command", "option", "outcome", "platform")


def report_json(result: Report, app: str, filters: Filters) -> dict[str, Any]:
    """`Report.as_json`, plus the property filters (which `as_params` leaves out) under filters.where."""
    document = result.as_json(app, filters)
    if filters.properties:
        document["filters"] = {**document["filters"], "where": [str(item) for item in filters.properties]}
    return document


# ---------------------------------------------------------------- reports with arguments


@dataclasses.dataclass(frozen=True)
class ArgumentReport:
    """A report that needs arguments besides the filters: (name, help) pairs, all required."""

    name: str
    arguments: tuple[tuple[str, str], ...]
    function: Callable[[EventStore, str, Filters, dict[str, str]], Report]


ARGUMENT_REPORTS: dict[str, ArgumentReport] = {}


def run_argument_report(store: EventStore, name: str, app: str, filters: Filters, params: Mapping[str, Any]) -> Report:
    """Run `name` with its arguments taken from `params` (query parameters or CLI options)."""
    entry = ARGUMENT_REPORTS[name]
    values: dict[str, str] = {}
    for argument, help_text in entry.arguments:
        value = params.get(argument)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value in (None, ""):
            raise UsageError(f"the {name} report needs {argument}: {help_text}")
        values[argument] = str(value)
    return entry.function(store, app, filters, values)


def _check_name(value: str, what: str) -> str:
    if not PROPERTY_NAME.fullmatch(value):
        raise UsageError(f"{what} must be an event or property name such as export or format")
    return value


def _check_version(value: str, what: str) -> str:
    if not VERSION.fullmatch(value):
        raise UsageError(f"{what} must be a version string such as 1.4.2")
    return value


# ---------------------------------------------------------------- properties

# One row per (event, value it carries): a list contributes each of its different elements
# once (an event listing "a" twice carries "a" once), a scalar itself; a missing property or
# JSON null contributes nothing. A blank value is "(unknown)" (docs/reports.md, "Labels").
# `number` is the value as a DOUBLE when it is a scalar JSON number.
_VALUES_SQL = (
    """
WITH picked AS (
    SELECT install_key, json_extract(props, $path) AS j FROM events WHERE {where} AND name = $event
), occurrences AS (
    SELECT install_key, unnest(list_distinct(list_transform(json_extract_string(j, '$[*]'),
           lambda element: CASE WHEN element = '' THEN '"""
    + UNKNOWN
    + """' ELSE element END))) AS value, NULL::DOUBLE AS number
    FROM picked WHERE json_type(j) = 'ARRAY'
    UNION ALL
    SELECT install_key, CASE WHEN json_extract_string(j, '$') = '' THEN '"""
    + UNKNOWN
    + """' ELSE json_extract_string(j, '$') END AS value,
           CASE WHEN json_type(j) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST(j AS DOUBLE) END AS number
    FROM picked WHERE j IS NOT NULL AND json_type(j) NOT IN ('ARRAY', 'NULL', 'OBJECT')
)
"""
)


def properties(store: EventStore, app: str, filters: Filters, arguments: dict[str, str]) -> Report:
    """Values of one property of one event, with events and installs; numbers also as a histogram."""
    event = _check_name(arguments["event"], "event")
    prop = _check_name(arguments["property"], "property")
    where, params = filters.where(app)
    params = {**params, "event": event, "path": "$." + json_quote(prop)}
    head = _VALUES_SQL.format(where=where)
    rows = _rows(
        store,
        head + ", ranked AS (SELECT value, count(*) AS events, count(DISTINCT install_key) AS installs,"
        " row_number() OVER (ORDER BY count(*) DESC, count(DISTINCT install_key) DESC, value) AS position"
        " FROM occurrences WHERE value IS NOT NULL GROUP BY value)"
        # The rest is the NULL group, never a group named "(other)": a client's own value "(other)"
        # must not merge with it.
        " SELECT CASE WHEN r.position <= $top THEN o.value END AS shown, count(*),"
        " count(DISTINCT o.install_key), min(r.position) AS first FROM occurrences o JOIN ranked r USING (value)"
        " GROUP BY shown ORDER BY first",
        {**params, "top": TOP_VALUES},
    )
    totals = store.query(
        f"SELECT count(*), count(*) FILTER (WHERE json_extract(props, $path) IS NOT NULL"
        f" AND json_type(json_extract(props, $path)) <> 'NULL'), {INSTALLS},"
        f" count(*) FILTER (WHERE json_type(json_extract(props, $path)) = 'ARRAY')"
        f" FROM events WHERE {where} AND name = $event",
        params,
    ).rows[0]
    event_count, with_property, installs, lists = (int(v or 0) for v in totals)
    distinct_sql = head + "SELECT count(DISTINCT value) FROM occurrences WHERE value IS NOT NULL"
    distinct = store.query(distinct_sql, params).rows[0][0]
    table = [
        [OTHER if value is None else value, int(events), int(value_installs), int(events) / with_property]
        for value, events, value_installs, _ in rows
    ]
    meta: dict[str, Any] = {
        "event": event,
        "property": prop,
        "event_count": event_count,
        "with_property": with_property,
        "installs": installs,
        "values": int(distinct or 0),
        "lists": lists,
        "numeric": _numbers(store, head, params),
    }
    return Report("properties", f"{event}.{prop}", ["value", "events", "installs", "share"], table, meta)


def _numbers(store: EventStore, head: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Quantiles by nearest rank, min, max and a powers-of-ten histogram of the numeric values."""
    picks = ", ".join(f"max(number) FILTER (WHERE position = (n * {p} + 99) // 100) AS p{p}" for p in QUANTILES_PERCENT)
    row = store.query(
        head + "SELECT count(*), min(number), max(number), "
        f"{picks} FROM (SELECT number, row_number() OVER (ORDER BY number) AS position,"
        " count(*) OVER () AS n FROM occurrences WHERE number IS NOT NULL)",
        params,
    ).rows[0]
    count = int(row[0] or 0)
    if not count:
        return None
    buckets = _rows(
        store,
        head + "SELECT sign(number) AS side, CASE WHEN number = 0 THEN 0 ELSE floor(log10(abs(number))) END AS k,"
        " count(*) FROM occurrences WHERE number IS NOT NULL GROUP BY side, k ORDER BY side, side * k",
        params,
    )
    histogram = [
        {"bucket": bucket_label(int(side), int(k)), "lower": lower, "upper": upper, "events": int(n)}
        for side, k, n in buckets
        for lower, upper in [bucket_bounds(int(side), int(k))]
    ]
    quantiles = {f"p{p}": row[3 + i] for i, p in enumerate(QUANTILES_PERCENT)}
    return {"count": count, "min": row[1], "max": row[2], **quantiles, "histogram": histogram}


def bucket_bounds(side: int, k: int) -> tuple[float, float]:
    """[lower, upper) of the bucket of sign `side` and decade `k` (for side -1: (lower, upper])."""
    if side == 0:
        return 0.0, 0.0
    if side > 0:
        return 10.0**k, 10.0 ** (k + 1)
    return -(10.0 ** (k + 1)), -(10.0**k)


def bucket_of(number: float) -> tuple[int, int]:
    """The (side, decade) of a number: the Python twin of the SQL above, for tests and docs."""
    if number == 0:
        return 0, 0
    return (1 if number > 0 else -1), math.floor(math.log10(abs(number)))


def bucket_label(side: int, k: int) -> str:
    if side == 0:
        return "0"
    lower, upper = bucket_bounds(side, k)
    return f"{_short(lower)} to {_short(upper)}"


def _short(number: float) -> str:
    return f"{number:g}"


ARGUMENT_REPORTS["properties"] = ArgumentReport(
    "properties",
    (("event", "an event name, such as export"), ("property", "one of its properties, such as format")),
    properties,
)


def property_names(store: EventStore, app: str, filters: Filters) -> dict[str, Any]:
    """The pickers: each event and its property names, from the app's schema when it has one,
    else from the data in the filtered range (the most frequent events and properties only).

    Only names a report can take are offered (`PROPERTY_NAME`): a client's odd key, such as
    one with spaces or markup, is stored and shown in tables, but is not a pick."""
    schema = store.schema(app)
    if schema is not None:
        # The stored schema was checked when it was set (ingest.schemas; the query layer does not import
        # ingest): {"events": {"<event>": {"<property>": {"type": ...}}}}. Only its names are read here.
        document = json.loads(schema)
        declared: dict[str, Any] = document.get("events", {}) if isinstance(document, dict) else {}
        events = [
            {"name": name, "properties": sorted(p for p in declared[name] if PROPERTY_NAME.fullmatch(p))}
            for name in sorted(declared)
            if PROPERTY_NAME.fullmatch(name) and isinstance(declared[name], dict)
        ]
        return {"source": "schema", "events": events}
    where, params = filters.where(app)
    top_events = [
        row[0]
        for row in _rows(
            store,
            f"SELECT name FROM events WHERE {where} AND regexp_full_match(name, $pattern)"
            " GROUP BY name ORDER BY count(*) DESC, name LIMIT $limit",
            {**params, "limit": MAX_PICKER_EVENTS, "pattern": PROPERTY_NAME.pattern},
        )
    ]
    found: dict[str, list[str]] = {name: [] for name in top_events}
    if top_events:
        for name, key in _rows(
            store,
            "SELECT name, key FROM (SELECT name, key, row_number() OVER (PARTITION BY name"
            " ORDER BY count(*) DESC, key) AS position FROM (SELECT name, unnest(json_keys(props)) AS key"
            f" FROM events WHERE {where} AND list_contains($names, name)) WHERE regexp_full_match(key, $pattern)"
            " GROUP BY name, key) WHERE position <= $limit ORDER BY name, position",
            {**params, "names": top_events, "limit": MAX_PICKER_PROPERTIES, "pattern": PROPERTY_NAME.pattern},
        ):
            found[name].append(key)
    return {"source": "data", "events": [{"name": n, "properties": sorted(found[n])} for n in top_events]}


def choose_property(events: list[dict[str, Any]], event: str | None, prop: str | None) -> tuple[str, str]:
    """The dashboard's pick: the asked event (any valid name, listed or not), else the first listed
    event with properties; the asked property, else that event's first; ("", "") when there is none."""
    listed = {item["name"]: item["properties"] for item in events}
    if not event:
        event = next((item["name"] for item in events if item["properties"]), "")
    if not event:
        return "", ""
    event = _check_name(event, "event")
    names = listed.get(event)
    if prop and names is not None and prop not in names:
        prop = ""  # the picker kept the property of the event chosen before
    if not prop:
        prop = names[0] if names else ""
    return event, _check_name(prop, "property") if prop else ""


# ---------------------------------------------------------------- errors

# The command events that carry an outcome, with `failed` and `error_type` for each.
_OUTCOMES_SQL = """
WITH runs AS (
    SELECT app_version, {command} AS command,
           json_extract_string(props, '$.outcome') AS outcome
    FROM events WHERE {where} AND name = 'command'
), judged AS (
    SELECT app_version, command, outcome <> 'ok' AS failed,
           CASE WHEN outcome <> 'ok' THEN CASE WHEN starts_with(outcome, 'error:') THEN outcome[7:]
           ELSE outcome END END AS error_type
    FROM runs WHERE outcome IS NOT NULL
)
"""


# A blank or missing command is one "(unknown)" row (docs/reports.md, "Labels"), as in the commands report.
_COMMAND = label("json_extract_string(props, '$.command')")


def error_type(outcome: str) -> str | None:
    """The error type of an outcome, or None for "ok": the Python twin of the SQL above."""
    if outcome == "ok":
        return None
    return outcome.removeprefix("error:")


@report("errors")
def errors(store: EventStore, app: str, filters: Filters) -> Report:
    """Per command: runs, errors, the error rate and the most frequent error type."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        _OUTCOMES_SQL.format(where=where, command=_COMMAND)
        + "SELECT command, count(*) AS runs, count(*) FILTER (WHERE failed) AS errors,"
        " count(*) FILTER (WHERE failed) / count(*) AS rate,"
        " (SELECT error_type FROM judged j WHERE j.failed AND j.command IS NOT DISTINCT FROM judged.command"
        "  GROUP BY error_type ORDER BY count(*) DESC, error_type LIMIT 1) AS top_error"
        " FROM judged GROUP BY command ORDER BY errors DESC, rate DESC, command LIMIT $limit",
        {**params, "limit": MAX_ERROR_ROWS},
    )
    totals = store.query(
        _OUTCOMES_SQL.format(where=where, command=_COMMAND)
        + "SELECT count(*), count(*) FILTER (WHERE failed) FROM judged",
        params,
    ).rows[0]
    runs, failed = int(totals[0]), int(totals[1])
    table = [[c, int(n), int(e), float(rate), top] for c, n, e, rate, top in rows]
    meta = {"runs": runs, "errors": failed, "rate": failed / runs if runs else None}
    return Report("errors", "Errors per command", ["command", "runs", "errors", "rate", "top_error"], table, meta)


@report("errors_by_version")
def errors_by_version(store: EventStore, app: str, filters: Filters) -> Report:
    """Per version, newest first: command runs, errors and the error rate."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        _OUTCOMES_SQL.format(where=where, command=_COMMAND)
        + "SELECT app_version, count(*), count(*) FILTER (WHERE failed)"
        " FROM judged GROUP BY app_version",
        params,
    )
    ordered = sorted(rows, key=lambda r: (version_key(r[0]), r[0]), reverse=True)[:MAX_ERROR_ROWS]
    table = [[v or UNKNOWN, int(n), int(e), int(e) / int(n)] for v, n, e in ordered]
    return Report("errors_by_version", "Errors per version", ["version", "runs", "errors", "rate"], table)


# ---------------------------------------------------------------- compare

_DIMENSION_SQL = {
    # (expression over events, extra condition, measure): runs for the first three, installs for platforms
    "command": ("json_extract_string(props, '$.command')", "AND name = 'command'", "count(*)"),
    "option": (
        "unnest(json_extract_string(json_extract(props, '$.options'), '$[*]'))",
        "AND name = 'command' AND json_type(json_extract(props, '$.options')) = 'ARRAY'",
        "count(*)",
    ),
    "outcome": ("json_extract_string(props, '$.outcome')", "AND name = 'command'", "count(*)"),
    "platform": ("os", "", INSTALLS),
}


def compare(store: EventStore, app: str, filters: Filters, arguments: dict[str, str]) -> Report:
    """Versions A and B side by side: commands, options, outcomes and platforms as shares."""
    a = _check_version(arguments["a"], "a")
    b = _check_version(arguments["b"], "b")
    sides = {side: dataclasses.replace(filters, version=version) for side, version in (("a", a), ("b", b))}
    bases: dict[str, tuple[int, int]] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for side, side_filters in sides.items():
        where, params = side_filters.where(app)
        runs, installs = store.query(
            f"SELECT count(*) FILTER (WHERE name = 'command'), {INSTALLS} FROM events WHERE {where}", params
        ).rows[0]
        bases[side] = (int(runs), int(installs))
        for dimension, (expression, condition, measure) in _DIMENSION_SQL.items():
            found = _rows(
                store,
                # A blank value is one "(unknown)" row (docs/reports.md, "Labels"); a missing one is none.
                f"SELECT CASE WHEN value = '' THEN '{UNKNOWN}' ELSE value END AS shown, {measure}"
                f" FROM (SELECT {expression} AS value, install_key"
                f" FROM events WHERE {where} {condition}) WHERE value IS NOT NULL GROUP BY shown",
                params,
            )
            counts.setdefault(dimension, {})[side] = {str(v): int(n) for v, n in found}
    table: list[list[Any]] = []
    for dimension in COMPARE_DIMENSIONS:
        base_a = bases["a"][1 if dimension == "platform" else 0]
        base_b = bases["b"][1 if dimension == "platform" else 0]
        in_a, in_b = counts[dimension]["a"], counts[dimension]["b"]
        values = sorted(set(in_a) | set(in_b), key=lambda v: (-(in_a.get(v, 0) + in_b.get(v, 0)), v))
        for value in values[:COMPARE_ROWS]:
            share_a = in_a.get(value, 0) / base_a if base_a else 0.0
            share_b = in_b.get(value, 0) / base_b if base_b else 0.0
            table.append(
                [dimension, value, in_a.get(value, 0), share_a, in_b.get(value, 0), share_b, share_b - share_a]
            )
    meta = {
        "a": a,
        "b": b,
        "runs_a": bases["a"][0],
        "runs_b": bases["b"][0],
        "installs_a": bases["a"][1],
        "installs_b": bases["b"][1],
    }
    columns = ["dimension", "value", "a_count", "a_share", "b_count", "b_share", "difference"]
    return Report("compare", f"{a} and {b} side by side", columns, table, meta)


ARGUMENT_REPORTS["compare"] = ArgumentReport(
    "compare", (("a", "the first version, such as 1.2"), ("b", "the second version, such as 1.3")), compare
)


def default_pair(versions: list[str]) -> tuple[str, str] | None:
    """The pair to compare when none is chosen: the newest version (B) against the one before (A)."""
    return (versions[1], versions[0]) if len(versions) >= 2 else None
