"""The reference: every named report and the summary in plain Python, from docs/reports.md.

No SQL and no database: it reads a list of `EventRecord`s in the order they were written
(the order decides which event of a run is its start, docs/reports.md "Run") and a
`Filters`. It shares nothing with `query/reports.py` but the `Report` container, the
`UNKNOWN` label, the row cut and the duration buckets, which are part of the definition.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from footfall.schema import DURATION_BUCKETS
from footfall.server.query.filters import Filters
from footfall.server.query.reports import TOP_ROWS, UNKNOWN, Report
from footfall.server.stores.base import EventRecord

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
CUSTOM_DIMENSION = re.compile(r"cd[0-9]+")


def _zone(name: str) -> dt.tzinfo:
    return dt.timezone.utc if name == "UTC" else zoneinfo.ZoneInfo(name)


def local(moment: dt.datetime, timezone: str) -> dt.datetime:
    """A stored (naive UTC) time as naive local wall time."""
    return moment.replace(tzinfo=dt.timezone.utc).astimezone(_zone(timezone)).replace(tzinfo=None)


def utc_midnight(day: dt.date, timezone: str) -> dt.datetime:
    """Local midnight starting `day`, as a naive UTC instant."""
    aware = dt.datetime.combine(day, dt.time(), tzinfo=_zone(timezone))
    return aware.astimezone(dt.timezone.utc).replace(tzinfo=None)


def today(timezone: str) -> dt.date:
    return dt.datetime.now(_zone(timezone)).date()


def label(value: Any) -> Any:
    return UNKNOWN if value is None or value == "" else value


def props(event: EventRecord) -> dict[str, Any]:
    parsed = json.loads(event.props)
    return parsed if isinstance(parsed, dict) else {}


def as_text(value: Any) -> str | None:
    """A property value as text, as a property filter and the reports read it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


class Data:
    """The written events, and what the definitions need from all of them."""

    def __init__(self, events: Sequence[EventRecord]) -> None:
        self.events = list(events)
        # A run's start: the first of its events written (docs/reports.md "Run").
        self.starts: set[int] = set()
        seen: set[tuple[str, str]] = set()
        for index, event in enumerate(self.events):
            if event.session and (event.app, event.session) not in seen:
                seen.add((event.app, event.session))
                self.starts.add(index)

    def of_app(self, app: str) -> list[tuple[int, EventRecord]]:
        return [(i, e) for i, e in enumerate(self.events) if e.app == app]

    def matching(self, app: str, filters: Filters) -> list[tuple[int, EventRecord]]:
        """The app's events in the range that pass every filter."""
        start, end = utc_midnight(filters.start, filters.timezone), utc_midnight(filters.end + DAY, filters.timezone)
        return [(i, e) for i, e in self.of_app(app) if start <= e.time < end and passes(e, filters)]


def passes(event: EventRecord, filters: Filters) -> bool:
    if filters.version and event.app_version != filters.version:
        return False
    if filters.country and event.country != filters.country:
        return False
    if filters.ci == "exclude" and event.ci:
        return False
    if filters.ci == "only" and not event.ci:
        return False
    if filters.container and event.container != ("" if filters.container == "none" else filters.container):
        return False
    for item in filters.properties:
        if event.name != item.event or as_text(props(event).get(item.name)) != item.value:
            return False
    return True


def installs(events: Iterable[tuple[int, EventRecord]]) -> int:
    return len({e.install for _, e in events if e.install})


def runs(data: Data, events: Iterable[tuple[int, EventRecord]], filters: Filters) -> int:
    if filters.properties:  # runs with a matching event
        return len({e.session for _, e in events if e.session})
    return sum(1 for i, _ in events if i in data.starts)  # runs starting here


def _span(filters: Filters, start: dt.date, end: dt.date) -> Filters:
    return Filters(
        start,
        end,
        filters.version,
        filters.country,
        filters.ci,
        filters.container,
        filters.properties,
        filters.timezone,
    )


def partial_days(filters: Filters) -> list[dt.date]:
    now = today(filters.timezone)
    return [now] if filters.start <= now <= filters.end else []


# -- reports ------------------------------------------------------------------------------


def overview(data: Data, app: str, filters: Filters) -> Report:
    def totals(span: Filters) -> tuple[int, int, int]:
        found = data.matching(app, span)
        return len(found), runs(data, found, span), installs(found)

    def change(now: int, before: int) -> float | None:
        return None if before == 0 else (now - before) / before

    length = (filters.end - filters.start).days + 1
    now = totals(filters)
    before = totals(_span(filters, filters.start - length * DAY, filters.start - DAY))
    rows: list[list[Any]] = [
        [name, now[i], before[i], change(now[i], before[i])] for i, name in enumerate(("events", "runs", "installs"))
    ]
    for name, days in (("active installs, day", 1), ("active installs, week", 7), ("active installs, 30 days", 30)):
        current = installs(data.matching(app, _span(filters, filters.end - (days - 1) * DAY, filters.end)))
        previous_end = filters.end - days * DAY
        previous = installs(data.matching(app, _span(filters, previous_end - (days - 1) * DAY, previous_end)))
        rows.append([name, current, previous, change(current, previous)])
    return Report(
        "overview", "Overview", ["measure", "value", "previous", "change"], rows, {"partial": partial_days(filters)}
    )


def timeseries(data: Data, app: str, filters: Filters) -> Report:
    found = data.matching(app, filters)
    hourly = (filters.end - filters.start).days + 1 <= 2
    periods: list[Any] = []
    day = filters.start
    while day <= filters.end:
        if hourly:
            periods.extend(dt.datetime.combine(day, dt.time(hour)) for hour in range(24))
        else:
            periods.append(day)
        day += DAY
    buckets: dict[Any, list[tuple[int, EventRecord]]] = defaultdict(list)
    for index, event in found:
        moment = local(event.time, filters.timezone)
        buckets[moment.replace(minute=0, second=0, microsecond=0) if hourly else moment.date()].append((index, event))
    rows = [[p, len(buckets[p]), runs(data, buckets[p], filters), installs(buckets[p])] for p in periods]
    if hourly:
        now = local(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), filters.timezone)
        hour = now.replace(minute=0, second=0, microsecond=0)
        partial: list[Any] = [hour] if hour in periods else []
    else:
        partial = partial_days(filters)
    return Report(
        "timeseries",
        "Events per hour" if hourly else "Events per day",
        ["period", "events", "runs", "installs"],
        rows,
        {"interval": "hour" if hourly else "day", "partial": partial},
    )


def heatmap(data: Data, app: str, filters: Filters) -> Report:
    cells: dict[tuple[int, int], int] = defaultdict(int)
    for _, event in data.matching(app, filters):
        moment = local(event.time, filters.timezone)
        cells[(moment.isoweekday(), moment.hour)] += 1
    rows = [[weekday, hour, count] for (weekday, hour), count in sorted(cells.items())]
    return Report("heatmap", f"When: weekday and hour ({filters.timezone})", ["weekday", "hour", "events"], rows)


Measure = Callable[[list[tuple[int, EventRecord]]], int]
EVENTS: Measure = len


def _top_list(
    name: str,
    title: str,
    columns: list[str],
    key: Callable[[EventRecord], tuple[Any, ...]],
    measures: Sequence[Measure],
    keep: Callable[[EventRecord], bool] = lambda e: True,
    order: Callable[[list[Any]], Any] | None = None,
) -> Callable[[Data, str, Filters], Report]:
    """Rows by label; ordered by the measures (largest first), then the labels (docs: "Top lists")."""

    def run(data: Data, app: str, filters: Filters) -> Report:
        groups: dict[tuple[Any, ...], list[tuple[int, EventRecord]]] = defaultdict(list)
        for index, event in data.matching(app, filters):
            if keep(event):
                groups[key(event)].append((index, event))
        rows = [[*labels, *(measure(group) for measure in measures)] for labels, group in groups.items()]
        count = len(measures)
        rows.sort(key=order or (lambda row: (*(-v for v in row[-count:]), *row[:-count])))
        return Report(name, title, columns, rows[:TOP_ROWS])

    return run


def _prop(event: EventRecord, name: str) -> Any:
    return label(as_text(props(event).get(name)))


def _is_command(event: EventRecord) -> bool:
    return event.name == "command"


def environment(event: EventRecord) -> str:
    if event.ci:
        return "ci:" + event.ci
    if event.container:
        return "container:" + event.container
    return "local"


def _duration_order(row: list[Any]) -> tuple[int, str]:
    bucket = row[0]
    place = DURATION_BUCKETS.index(bucket) if bucket in DURATION_BUCKETS else len(DURATION_BUCKETS)
    return place, bucket


events = _top_list("events", "Top events", ["event", "events", "installs"], lambda e: (e.name,), [EVENTS, installs])
commands = _top_list(
    "commands",
    "Top commands",
    ["command", "runs", "installs"],
    lambda e: (_prop(e, "command"),),
    [EVENTS, installs],
    _is_command,
)
outcomes = _top_list(
    "outcomes", "Outcomes and error types", ["outcome", "runs"], lambda e: (_prop(e, "outcome"),), [EVENTS], _is_command
)
durations = _top_list(
    "durations",
    "Durations",
    ["duration", "runs"],
    lambda e: (_prop(e, "duration"),),
    [EVENTS],
    _is_command,
    _duration_order,
)
countries = _top_list(
    "countries", "Countries", ["country", "installs", "events"], lambda e: (label(e.country),), [installs, EVENTS]
)
environments = _top_list(
    "environments",
    "Environments",
    ["environment", "installs", "events"],
    lambda e: (environment(e),),
    [installs, EVENTS],
)
platforms = _top_list(
    "platforms",
    "Platforms",
    ["os", "os_version", "arch", "installs"],
    lambda e: (label(e.os), label(e.os_version), label(e.arch)),
    [installs],
)
runtimes = _top_list(
    "runtimes",
    "Runtimes",
    ["runtime", "runtime_version", "installs"],
    lambda e: (label(e.runtime), label(e.runtime_version)),
    [installs],
)
ga = _top_list(
    "ga",
    "Google Analytics events",
    ["category", "action", "label", "events"],
    lambda e: (_prop(e, "category"), _prop(e, "action"), _prop(e, "label")),
    [EVENTS],
    lambda e: e.source == "ga-v1" and e.name == "event",
)


def options(data: Data, app: str, filters: Filters) -> Report:
    uses: dict[tuple[str, str], int] = defaultdict(int)
    for _, event in data.matching(app, filters):
        if event.name != "command":
            continue
        found = props(event).get("options")
        if isinstance(found, list):
            for option in found:
                uses[(_prop(event, "command"), as_text(option) or "")] += 1
    rows = sorted(([c, o, n] for (c, o), n in uses.items()), key=lambda row: (-row[2], row[0], row[1]))
    return Report("options", "Options per command", ["command", "option", "uses"], rows[: TOP_ROWS * 5])


def dimensions(data: Data, app: str, filters: Filters) -> Report:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for _, event in data.matching(app, filters):
        for key, value in props(event).items():
            if CUSTOM_DIMENSION.fullmatch(key):
                counts[(key, label(as_text(value)))] += 1
    rows = sorted(([d, v, n] for (d, v), n in counts.items()), key=lambda row: (-row[2], row[0], row[1]))
    return Report("dimensions", "Custom dimensions", ["dimension", "value", "events"], rows[: TOP_ROWS * 5])


def version_order(version: str) -> tuple[tuple[int, ...], str]:
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:4]) or (-1,)
    return numbers, version


def versions(data: Data, app: str, filters: Filters) -> Report:
    last: dict[str, EventRecord] = {}
    for _, event in data.matching(app, filters):
        if not event.install:
            continue
        held = last.get(event.install)
        if held is None or (event.time, event.app_version) > (held.time, held.app_version):
            last[event.install] = event
    counts: dict[str, int] = defaultdict(int)
    for event in last.values():
        counts[event.app_version] += 1
    released: dict[str, dt.datetime] = {}
    for _, event in data.of_app(app):
        if event.app_version not in released or event.time < released[event.app_version]:
            released[event.app_version] = event.time
    total = sum(counts.values())
    ordered = sorted(counts, key=version_order, reverse=True)
    rows = [
        [v or UNKNOWN, counts[v], counts[v] / total if total else 0, local(released[v], filters.timezone)]
        for v in ordered
    ]
    named = [v for v in released if v]
    latest = max(named, key=version_order) if named else None
    # Upgrades (docs/reports.md "versions"): an install's first event on a version, after its first version.
    adopted: dict[tuple[str, str], dt.datetime] = {}
    for _, event in data.of_app(app):
        if event.install and event.app_version:
            pair = (event.install, event.app_version)
            if pair not in adopted or event.time < adopted[pair]:
                adopted[pair] = event.time
    started: dict[str, dt.datetime] = {}
    for (install, _), moment in adopted.items():
        started[install] = min(moment, started.get(install, moment))
    matched = {(e.install, e.app_version) for _, e in data.matching(app, filters) if e.install}
    start, end = utc_midnight(filters.start, filters.timezone), utc_midnight(filters.end + DAY, filters.timezone)
    waits = [
        (moment - released[version]).total_seconds()
        for (install, version), moment in adopted.items()
        if moment > started[install] and start <= moment < end and (install, version) in matched
    ]
    meta = {
        "latest": latest,
        "latest_share": counts.get(latest or "", 0) / total if total else None,
        "median_upgrade_days": statistics.median(waits) / 86400 if waits else None,
    }
    return Report("versions", "Versions", ["version", "installs", "share", "first_seen"], rows, meta)


def adoption(data: Data, app: str, filters: Filters) -> Report:
    cells: dict[tuple[dt.date, str], set[str]] = defaultdict(set)
    for _, event in data.matching(app, filters):
        cell = cells[(local(event.time, filters.timezone).date(), label(event.app_version))]
        if event.install:
            cell.add(event.install)
    rows = [[day, version, len(found)] for (day, version), found in sorted(cells.items())]
    return Report(
        "adoption", "Version adoption", ["day", "version", "installs"], rows, {"partial": partial_days(filters)}
    )


def week_of(moment: dt.date) -> dt.date:
    return moment - dt.timedelta(days=moment.weekday())


def retention(data: Data, app: str, filters: Filters) -> Report:
    first: dict[str, dt.datetime] = {}
    for _, event in data.of_app(app):
        if event.install and (event.install not in first or event.time < first[event.install]):
            first[event.install] = event.time
    cohort = {install: week_of(local(moment, filters.timezone).date()) for install, moment in first.items()}
    active: set[tuple[str, dt.date]] = set()
    for _, event in data.matching(app, filters):
        if event.install:
            active.add((event.install, week_of(local(event.time, filters.timezone).date())))
    cells: dict[tuple[dt.date, int], int] = defaultdict(int)
    for install, week in active:
        if cohort[install] >= week_of(filters.start):
            cells[(cohort[install], (week - cohort[install]).days // 7)] += 1
    sizes = {c: n for (c, w), n in cells.items() if w == 0}
    rows = [[c, w, n, n / sizes[c] if sizes.get(c) else None] for (c, w), n in sorted(cells.items())]
    whole_until = min(filters.end, today(filters.timezone) - DAY)
    weeks = sorted({c + dt.timedelta(weeks=w) for c, w in cells})
    partial = [w for w in weeks if w < filters.start or w + dt.timedelta(days=6) > whole_until]
    return Report(
        "retention", "Retention by weekly cohort", ["cohort", "week", "installs", "share"], rows, {"partial": partial}
    )


REPORTS: dict[str, Callable[[Data, str, Filters], Report]] = {
    "overview": overview,
    "timeseries": timeseries,
    "heatmap": heatmap,
    "events": events,
    "commands": commands,
    "outcomes": outcomes,
    "durations": durations,
    "countries": countries,
    "environments": environments,
    "platforms": platforms,
    "runtimes": runtimes,
    "ga": ga,
    "options": options,
    "dimensions": dimensions,
    "versions": versions,
    "adoption": adoption,
    "retention": retention,
}


def summary(data: Data, app: str, filters: Filters) -> dict[str, Any]:
    found = data.matching(app, filters)
    per_day: dict[dt.date, list[tuple[int, EventRecord]]] = defaultdict(list)
    for index, event in found:
        per_day[local(event.time, filters.timezone).date()].append((index, event))
    days = [filters.start + i * DAY for i in range((filters.end - filters.start).days + 1)]
    top = events(data, app, filters).rows[:10]
    return {
        "app": app,
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "days": len(days),
        "timezone": filters.timezone,
        "filters": {**filters.as_params(), "where": [str(item) for item in filters.properties]},
        "events": len(found),
        "installs": installs(found),
        "runs": runs(data, found, filters),
        "per_day": [{"day": d.isoformat(), "events": len(per_day[d]), "installs": installs(per_day[d])} for d in days],
        "partial": [d.isoformat() for d in partial_days(filters)],
        "top_events": [{"name": name, "events": count} for name, count, _ in top],
    }


# -- os, errors, and the reports with arguments (docs/reports.md) -----------------------------


def operating_systems(data: Data, app: str, filters: Filters) -> Report:
    found = data.matching(app, filters)
    groups: dict[str, list[tuple[int, EventRecord]]] = defaultdict(list)
    for index, event in found:
        groups[label(event.os)].append((index, event))
    everyone = installs(found)
    rows = [[name, installs(group), len(group)] for name, group in groups.items()]
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    table = [[*row, row[1] / everyone if everyone else 0.0] for row in rows[:TOP_ROWS]]
    return Report("os", "Operating systems", ["os", "installs", "events", "share"], table, {"installs": everyone})


MAX_ERROR_ROWS = 50


def _judged(data: Data, app: str, filters: Filters) -> list[tuple[EventRecord, str | None]]:
    """Command events that carry an outcome, each with its error type (None when it succeeded)."""
    judged: list[tuple[EventRecord, str | None]] = []
    for _, event in data.matching(app, filters):
        outcome = as_text(props(event).get("outcome")) if event.name == "command" else None
        if outcome is not None:
            kind = None if outcome == "ok" else outcome.removeprefix("error:")
            judged.append((event, kind))
    return judged


def errors(data: Data, app: str, filters: Filters) -> Report:
    per_command: dict[str, list[str | None]] = defaultdict(list)
    judged = _judged(data, app, filters)
    for event, kind in judged:
        per_command[_prop(event, "command")].append(kind)
    rows: list[list[Any]] = []
    for command, kinds in per_command.items():
        failures = [k for k in kinds if k is not None]
        counted: dict[str, int] = defaultdict(int)
        for kind in failures:
            counted[kind] += 1
        top = min(counted, key=lambda k: (-counted[k], k)) if counted else None
        rows.append([command, len(kinds), len(failures), len(failures) / len(kinds), top])
    rows.sort(key=lambda row: (-row[2], -row[3], row[0]))
    failed = sum(1 for _, kind in judged if kind is not None)
    meta = {"runs": len(judged), "errors": failed, "rate": failed / len(judged) if judged else None}
    columns = ["command", "runs", "errors", "rate", "top_error"]
    return Report("errors", "Errors per command", columns, rows[:MAX_ERROR_ROWS], meta)


def errors_by_version(data: Data, app: str, filters: Filters) -> Report:
    per_version: dict[str, list[bool]] = defaultdict(list)
    for event, kind in _judged(data, app, filters):
        per_version[event.app_version].append(kind is not None)
    ordered = sorted(per_version, key=version_order, reverse=True)[:MAX_ERROR_ROWS]
    rows = [
        [label(v), len(per_version[v]), sum(per_version[v]), sum(per_version[v]) / len(per_version[v])] for v in ordered
    ]
    return Report("errors_by_version", "Errors per version", ["version", "runs", "errors", "rate"], rows)


TOP_VALUES = 20
OTHER = "(other)"
QUANTILES = (50, 90, 99)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decade(number: float) -> tuple[int, int]:
    """(side, k): 0 alone; 10^k <= |x| < 10^(k+1) otherwise (found by comparing powers, not by log10 alone)."""
    if number == 0:
        return 0, 0
    size = abs(number)
    k = math.floor(math.log10(size))
    while 10.0**k > size:
        k -= 1
    while 10.0 ** (k + 1) <= size:
        k += 1
    return (1 if number > 0 else -1), k


def histogram_bucket(side: int, k: int) -> dict[str, Any]:
    if side == 0:
        return {"bucket": "0", "lower": 0.0, "upper": 0.0}
    low, high = (10.0**k, 10.0 ** (k + 1)) if side > 0 else (-(10.0 ** (k + 1)), -(10.0**k))
    return {"bucket": f"{low:g} to {high:g}", "lower": low, "upper": high}


def property_values(data: Data, app: str, filters: Filters, event_name: str, prop: str) -> Report:
    chosen = [e for _, e in data.matching(app, filters) if e.name == event_name]
    occurrences: dict[str, list[str]] = defaultdict(list)  # value -> the install of each event carrying it
    numbers: list[float] = []
    with_property = lists = 0
    for event in chosen:
        present = props(event)
        value = present.get(prop)
        if prop not in present or value is None:
            continue
        with_property += 1
        if isinstance(value, list):
            lists += 1
            texts = {label(as_text(item)) for item in value if item is not None}
        elif isinstance(value, dict):
            texts = set()
        else:
            texts = {label(as_text(value))}
            if _is_number(value):
                numbers.append(float(value))
        for text in texts:
            occurrences[text].append(event.install)
    ranked = sorted(occurrences, key=lambda v: (-len(occurrences[v]), -len({i for i in occurrences[v] if i}), v))
    rows: list[list[Any]] = [
        [v, len(occurrences[v]), len({i for i in occurrences[v] if i}), len(occurrences[v]) / with_property]
        for v in ranked[:TOP_VALUES]
    ]
    rest = ranked[TOP_VALUES:]
    if rest:
        count = sum(len(occurrences[v]) for v in rest)
        rows.append([OTHER, count, len({i for v in rest for i in occurrences[v] if i}), count / with_property])
    numeric: dict[str, Any] | None = None
    if numbers:
        numbers.sort()
        n = len(numbers)
        buckets: dict[tuple[int, int], int] = defaultdict(int)
        for number in numbers:
            buckets[decade(number)] += 1
        numeric = {
            "count": n,
            "min": numbers[0],
            "max": numbers[-1],
            **{f"p{p}": numbers[-(-n * p // 100) - 1] for p in QUANTILES},
            "histogram": [
                {**histogram_bucket(side, k), "events": buckets[(side, k)]}
                for side, k in sorted(buckets, key=lambda b: (b[0], b[0] * b[1]))
            ],
        }
    meta = {
        "event": event_name,
        "property": prop,
        "event_count": len(chosen),
        "with_property": with_property,
        "installs": len({e.install for e in chosen if e.install}),
        "values": len(occurrences),
        "lists": lists,
        "numeric": numeric,
    }
    return Report("properties", f"{event_name}.{prop}", ["value", "events", "installs", "share"], rows, meta)


COMPARE_ROWS = 15


def compare_versions(data: Data, app: str, filters: Filters, a: str, b: str) -> Report:
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    bases: dict[str, tuple[int, int]] = {}
    for side, version in (("a", a), ("b", b)):
        found = [e for _, e in data.matching(app, _with_version(filters, version))]
        commands = [e for e in found if e.name == "command"]
        bases[side] = (len(commands), len({e.install for e in found if e.install}))
        tallies: dict[str, dict[str, int]] = {d: defaultdict(int) for d in ("command", "option", "outcome")}
        for event in commands:
            present = props(event)
            for dimension in ("command", "outcome"):
                if present.get(dimension) is not None:
                    tallies[dimension][label(as_text(present[dimension]))] += 1
            if isinstance(present.get("options"), list):
                for option in present["options"]:
                    if option is not None:
                        tallies["option"][label(as_text(option))] += 1
        per_os: dict[str, set[str]] = defaultdict(set)
        for event in found:
            held = per_os.setdefault(label(event.os), set())  # a no-id OS still has a row, with 0
            if event.install:
                held.add(event.install)
        for dimension, tally in tallies.items():
            counts[dimension][side] = dict(tally)
        counts["platform"][side] = {os_name: len(held) for os_name, held in per_os.items()}
    rows: list[list[Any]] = []
    for dimension in ("command", "option", "outcome", "platform"):
        base_a, base_b = (bases["a"][1], bases["b"][1]) if dimension == "platform" else (bases["a"][0], bases["b"][0])
        in_a, in_b = counts[dimension]["a"], counts[dimension]["b"]
        values = sorted(set(in_a) | set(in_b), key=lambda v: (-(in_a.get(v, 0) + in_b.get(v, 0)), v))
        for value in values[:COMPARE_ROWS]:
            share_a = in_a.get(value, 0) / base_a if base_a else 0.0
            share_b = in_b.get(value, 0) / base_b if base_b else 0.0
            rows.append([dimension, value, in_a.get(value, 0), share_a, in_b.get(value, 0), share_b, share_b - share_a])
    meta = {
        "a": a,
        "b": b,
        "runs_a": bases["a"][0],
        "runs_b": bases["b"][0],
        "installs_a": bases["a"][1],
        "installs_b": bases["b"][1],
    }
    columns = ["dimension", "value", "a_count", "a_share", "b_count", "b_share", "difference"]
    return Report("compare", f"{a} and {b} side by side", columns, rows, meta)


def _with_version(filters: Filters, version: str) -> Filters:
    return Filters(
        filters.start,
        filters.end,
        version,
        filters.country,
        filters.ci,
        filters.container,
        filters.properties,
        filters.timezone,
    )


REPORTS.update({"os": operating_systems, "errors": errors, "errors_by_version": errors_by_version})
ARGUMENT_REPORTS: dict[str, Callable[[Data, str, Filters, dict[str, str]], Report]] = {
    "properties": lambda data, app, filters, args: property_values(data, app, filters, args["event"], args["property"]),
    "compare": lambda data, app, filters, args: compare_versions(data, app, filters, args["a"], args["b"]),
}
