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
from footfall.server.query.dialect import Dialect, dialect_of
from footfall.server.query.filters import PROPERTY_NAME, Filters
from footfall.server.query.reports import (
    UNKNOWN,
    Report,
    _rows,
    distinct_installs,
    prop_label,
    report,
    version_key,
)
from footfall.server.stores.base import EventStore

TOP_VALUES = 20  # value rows before the rest is summed into "(other)"
OTHER = "(other)"
MAX_PICKER_EVENTS = 50  # events offered in the picker when the app has no schema: the most frequent
MAX_PICKER_PROPERTIES = 50  # properties offered per event, likewise
MAX_ERROR_ROWS = 50  # commands (or versions) in the error reports
COMPARE_ROWS = 15  # rows per dimension in a comparison: the values most used by A and B together
QUANTILES_PERCENT = (50, 90, 99)
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
    with store.consistent_reads():  # one barrier for the report's queries
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


def _occurrences(d: Dialect, where: str) -> str:
    """A subquery of one row per (event, value it carries), with `install_key`, `value` and `number`.

    A list contributes each of its different elements once (an event listing "a" twice carries
    "a" once), a scalar itself; a missing property, JSON null or an object contributes nothing.
    A blank value is "(unknown)" (docs/reports.md, "Labels"). `number` is the value as a double
    when it is a scalar JSON number. The property is `$path`, the event `$event`.
    """
    key = "$path"

    def shown(text: str) -> str:
        return f"CASE WHEN {text} = '' THEN '{UNKNOWN}' ELSE {text} END"

    elements = d.list_distinct(d.list_map(d.prop_list(key), "element", shown("element")))
    values = f"CASE WHEN {d.prop_is_list(key)} THEN {elements} ELSE [{shown(d.prop_text(key))}] END"
    return (
        f"SELECT install_key, {d.unnest(values)} AS value,"
        f" CASE WHEN {d.prop_is_list(key)} THEN NULL ELSE {d.prop_number(key)} END AS number"
        f" FROM events WHERE {where} AND name = $event AND ({d.prop_is_list(key)} OR {d.prop_is_scalar(key)})"
    )


def properties(store: EventStore, app: str, filters: Filters, arguments: dict[str, str]) -> Report:
    """Values of one property of one event, with events and installs; numbers also as a histogram."""
    event = _check_name(arguments["event"], "event")
    prop = _check_name(arguments["property"], "property")
    d = dialect_of(store)
    where, params = filters.where(app, d)
    params = {**params, "event": event, "path": d.key_param(prop)}
    occurrences = _occurrences(d, where)
    # Ranked here, from one row per value: by events, then installs (both descending), then value.
    counted = _rows(
        store,
        f"SELECT value, count(*), {d.distinct('install_key')} FROM ({occurrences}) WHERE value IS NOT NULL"
        " GROUP BY value",
        params,
    )
    ranked = sorted(((str(v), int(n), int(i)) for v, n, i in counted), key=lambda r: (-r[1], -r[2], r[0]))
    shown: list[tuple[str | None, int, int]] = list(ranked[:TOP_VALUES])
    if len(ranked) > TOP_VALUES:
        # The rest is one row with the installs distinct over all of it, never a group named "(other)":
        # a client's own value "(other)" must not merge with it.
        rest = store.query(
            f"SELECT count(*), {d.distinct('install_key')} FROM ({occurrences})"
            f" WHERE value IS NOT NULL AND NOT {d.has('$top', 'value')}",
            {**params, "top": [value for value, _, _ in shown]},
        ).rows[0]
        shown.append((None, int(rest[0]), int(rest[1])))
    present_sql, lists_sql = d.count_if(d.prop_present("$path")), d.count_if(d.prop_is_list("$path"))
    totals = store.query(
        f"SELECT count(*), {present_sql}, {distinct_installs(d)}, {lists_sql}"
        f" FROM events WHERE {where} AND name = $event",
        params,
    ).rows[0]
    event_count, with_property, install_count, lists = (int(v or 0) for v in totals)
    table = [
        [OTHER if value is None else value, events, value_installs, events / with_property]
        for value, events, value_installs in shown
    ]
    numbers = _rows(
        store, f"SELECT number, count(*) FROM ({occurrences}) WHERE number IS NOT NULL GROUP BY number", params
    )
    meta: dict[str, Any] = {
        "event": event,
        "property": prop,
        "event_count": event_count,
        "with_property": with_property,
        "installs": install_count,
        "values": len(ranked),
        "lists": lists,
        "numeric": _numbers({float(number): int(n) for number, n in numbers}),
    }
    return Report("properties", f"{event}.{prop}", ["value", "events", "installs", "share"], table, meta)


def _numbers(counts: dict[float, int]) -> dict[str, Any] | None:
    """Quantiles by nearest rank, min, max and a powers-of-ten histogram of the numeric values
    (each number with how many times it occurs)."""
    count = sum(counts.values())
    if not count:
        return None
    ordered = sorted(counts)
    quantiles: dict[str, float] = {}
    for p in QUANTILES_PERCENT:
        rank, seen = (count * p + 99) // 100, 0  # the ceil(n*p)-th smallest
        for number in ordered:
            seen += counts[number]
            if seen >= rank:
                quantiles[f"p{p}"] = number
                break
    buckets: dict[tuple[int, int], int] = {}
    for number, n in counts.items():
        bucket = bucket_of(number)
        buckets[bucket] = buckets.get(bucket, 0) + n
    histogram = [
        {"bucket": bucket_label(side, k), "lower": lower, "upper": upper, "events": buckets[(side, k)]}
        for side, k in sorted(buckets, key=lambda b: (b[0], b[0] * b[1]))
        for lower, upper in [bucket_bounds(side, k)]
    ]
    return {"count": count, "min": ordered[0], "max": ordered[-1], **quantiles, "histogram": histogram}


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
    d = dialect_of(store)
    where, params = filters.where(app, d)
    # The most frequent names, picked here from one row per name (or per event and property).
    named = _rows(store, f"SELECT name, count(*) FROM events WHERE {where} GROUP BY name", params)
    picked = sorted(
        ((int(n), str(name)) for name, n in named if PROPERTY_NAME.fullmatch(name)), key=lambda r: (-r[0], r[1])
    )
    top_events = [name for _, name in picked[:MAX_PICKER_EVENTS]]
    found: dict[str, list[tuple[int, str]]] = {name: [] for name in top_events}
    if top_events:
        for name, key, uses in _rows(
            store,
            f"SELECT name, key, count(*) FROM (SELECT name, {d.unnest(d.prop_keys())} AS key"
            f" FROM events WHERE {where} AND {d.has('$names', 'name')}) GROUP BY name, key",
            {**params, "names": top_events},
        ):
            if PROPERTY_NAME.fullmatch(key):
                found[name].append((-int(uses), key))
    return {
        "source": "data",
        "events": [
            {"name": n, "properties": sorted(key for _, key in sorted(found[n])[:MAX_PICKER_PROPERTIES])}
            for n in top_events
        ],
    }


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


def _outcomes(store: EventStore, app: str, filters: Filters, by: str) -> dict[str, dict[str, int]]:
    """The command events that carry an outcome: for each value of `by` ("command" or "version"),
    how many carry each outcome."""
    d = dialect_of(store)
    where, params = filters.where(app, d)
    # A blank or missing command is one "(unknown)" row (docs/reports.md, "Labels"), as in the commands report.
    group = prop_label(d, "command") if by == "command" else "app_version"
    found: dict[str, dict[str, int]] = {}
    for value, outcome, n in _rows(
        store,
        f"SELECT grouped, outcome, count(*) FROM (SELECT {group} AS grouped, {d.prop_text(d.key('outcome'))} AS outcome"
        f" FROM events WHERE {where} AND name = 'command') WHERE outcome IS NOT NULL GROUP BY grouped, outcome",
        params,
    ):
        found.setdefault(value, {})[outcome] = int(n)
    return found


def error_type(outcome: str) -> str | None:
    """The error type of an outcome, or None for "ok": the Python twin of the SQL above."""
    if outcome == "ok":
        return None
    return outcome.removeprefix("error:")


@report("errors")
def errors(store: EventStore, app: str, filters: Filters) -> Report:
    """Per command: runs, errors, the error rate and the most frequent error type."""
    rows = []
    for command, outcomes in _outcomes(store, app, filters, "command").items():
        kinds: dict[str, int] = {}
        for outcome, n in outcomes.items():
            kind = error_type(outcome)
            if kind is not None:
                kinds[kind] = kinds.get(kind, 0) + n
        count, failed_count = sum(outcomes.values()), sum(kinds.values())
        top = min(kinds, key=lambda kind: (-kinds[kind], kind)) if kinds else None
        rows.append((command, count, failed_count, failed_count / count, top))
    rows.sort(key=lambda row: (-row[2], -row[3], row[0]))
    runs, failed = sum(row[1] for row in rows), sum(row[2] for row in rows)
    rows = rows[:MAX_ERROR_ROWS]
    table = [[c, int(n), int(e), float(rate), top] for c, n, e, rate, top in rows]
    meta = {"runs": runs, "errors": failed, "rate": failed / runs if runs else None}
    return Report("errors", "Errors per command", ["command", "runs", "errors", "rate", "top_error"], table, meta)


@report("errors_by_version")
def errors_by_version(store: EventStore, app: str, filters: Filters) -> Report:
    """Per version, newest first: command runs, errors and the error rate."""
    rows = [
        (version, sum(outcomes.values()), sum(n for outcome, n in outcomes.items() if outcome != "ok"))
        for version, outcomes in _outcomes(store, app, filters, "version").items()
    ]
    ordered = sorted(rows, key=lambda r: (version_key(r[0]), r[0]), reverse=True)[:MAX_ERROR_ROWS]
    table = [[v or UNKNOWN, int(n), int(e), int(e) / int(n)] for v, n, e in ordered]
    return Report("errors_by_version", "Errors per version", ["version", "runs", "errors", "rate"], table)


# ---------------------------------------------------------------- compare


def _dimension_sql(d: Dialect, dimension: str) -> tuple[str, str, str]:
    """(expression over events, extra condition, measure): runs for the first three, installs for platforms."""
    if dimension == "option":
        options = d.key("options")
        return d.unnest(d.prop_list(options)), f"AND name = 'command' AND {d.prop_is_list(options)}", "count(*)"
    if dimension == "platform":
        return "os", "", distinct_installs(d)
    return d.prop_text(d.key(dimension)), "AND name = 'command'", "count(*)"


def compare(store: EventStore, app: str, filters: Filters, arguments: dict[str, str]) -> Report:
    """Versions A and B side by side: commands, options, outcomes and platforms as shares."""
    a = _check_version(arguments["a"], "a")
    b = _check_version(arguments["b"], "b")
    sides = {side: dataclasses.replace(filters, version=version) for side, version in (("a", a), ("b", b))}
    bases: dict[str, tuple[int, int]] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    d = dialect_of(store)
    for side, side_filters in sides.items():
        where, params = side_filters.where(app, d)
        command_runs = d.count_if("name = 'command'")
        runs, install_count = store.query(
            f"SELECT {command_runs}, {distinct_installs(d)} FROM events WHERE {where}", params
        ).rows[0]
        bases[side] = (int(runs), int(install_count))
        for dimension in COMPARE_DIMENSIONS:
            expression, condition, measure = _dimension_sql(d, dimension)
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
