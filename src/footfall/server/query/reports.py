"""Named report queries: the one place that writes report SQL.

The API, the dashboard, the CLI and the public pages call `run_report` (or a
function below) and never write SQL of their own. Every report takes the same
`Filters` and returns a `Report`: a table (columns and rows) plus a few named
figures in `meta`, so each can be shown as JSON, CSV, a terminal table or a chart.
Each report's SQL is written once, against `query.dialect` (`dialect_of(store)`), and runs
on DuckDB and on ClickHouse alike (docs/stores.md: how a report is added).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
import statistics
from collections.abc import Callable
from typing import Any

from footfall.schema import DURATION_BUCKETS
from footfall.server.errors import NotFound
from footfall.server.query.dialect import DUCKDB, Dialect, dialect_of
from footfall.server.query.filters import Filters, check_timezone, zone
from footfall.server.query.filters import today as local_today
from footfall.server.stores.base import EventStore

TOP_ROWS = 20  # rows in the "top" lists
DAYS_PER_BLOCK = 7  # per-day distinct counts go block by block (`_day_by_day`): measured best at 5 to 7 days
MAX_BLOCKS = 16  # a longer range has longer blocks
UNKNOWN = "(unknown)"  # the label of a blank or missing value (a version, an OS, a command ...)
ENVIRONMENT = "CASE WHEN ci <> '' THEN 'ci:' || ci WHEN container <> '' THEN 'container:' || container ELSE 'local' END"


def distinct_installs(d: Dialect) -> str:
    """The installs measure: distinct 64-bit keys of the install hashes (NULL when no id)."""
    return d.distinct("install_key")


def runs(filters: Filters, d: Dialect = DUCKDB) -> str:
    """The runs measure (docs/reports.md, "runs").

    A run counts once, where it starts: on its first stored event, which the writer flags
    `run_start` (stores.duckdb), so no distinct count is needed. Version, country, CI and
    container never change within a run, so those filters keep or drop whole runs. A property
    filter keeps only some events of a run, usually not its first: then a run counts in each
    period where it has a matching event.
    """
    if filters.properties:
        return d.distinct("session_key")
    return d.count_if("run_start")


def local_time(filters: Filters, column: str = "time", d: Dialect = DUCKDB) -> str:
    """The SQL expression of an event's time in the app's zone (`filters.timezone`), as a naive
    timestamp: every report buckets days, weeks, hours and weekdays by it.

    The store keeps naive UTC; the engine (`Dialect.local`) turns the instant into local wall
    time, so a day across a DST change has 23 or 25 hours. The zone name is checked (letters, digits, `_+/-`)
    before it is written into the SQL as a literal.
    """
    return d.local(column, check_timezone(filters.timezone))


def label(expression: str) -> str:
    """A text column with blanks and missing values shown as UNKNOWN, never as an empty row."""
    return f"coalesce(nullif({expression}, ''), '{UNKNOWN}')"


def prop_label(d: Dialect, name: str) -> str:
    """A fixed property of the events, as a label."""
    return label(d.prop_text(d.key(name)))


def partial_days(filters: Filters) -> list[dt.date]:
    """The days of the range that are not over yet: today, in the app's zone, if the range holds it."""
    current = local_today(filters.timezone)
    return [current] if filters.start <= current <= filters.end else []


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


@dataclasses.dataclass
class Report:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_json(self, app: str, filters: Filters) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "app": app,
            "start": filters.start.isoformat(),
            "end": filters.end.isoformat(),
            "filters": filters.as_params(),
            "columns": self.columns,
            "rows": [dict(zip(self.columns, (_plain(v) for v in row), strict=True)) for row in self.rows],
            **{k: _plain(v) for k, v in self.meta.items()},
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        writer.writerows([[csv_cell(_plain(v)) for v in row] for row in self.rows])
        return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet may run a cell starting so as a formula


def csv_cell(value: Any) -> Any:
    """A text value that a spreadsheet would read as a formula gets a leading ' (OWASP's advice); others as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


ReportFunction = Callable[[EventStore, str, Filters], Report]
REPORTS: dict[str, ReportFunction] = {}


def report(name: str) -> Callable[[ReportFunction], ReportFunction]:
    def register(function: ReportFunction) -> ReportFunction:
        REPORTS[name] = function
        return function

    return register


def run_report(store: EventStore, name: str, app: str, filters: Filters) -> Report:
    function = REPORTS.get(name)
    if function is None:
        raise NotFound(f"no report named {name!r}; reports: {', '.join(REPORTS)}", code="unknown_report")
    with store.consistent_reads():  # one barrier for the report's queries, not one per query
        return function(store, app, filters)


def _rows(store: EventStore, sql: str, params: dict[str, Any]) -> list[list[Any]]:
    return [list(row) for row in store.query(sql, params).rows]


def _day_by_day(app: str, filters: Filters, d: Dialect, columns: str, group: str) -> tuple[str, dict[str, Any]]:
    """`SELECT columns FROM events WHERE (the filters) GROUP BY group`, where `group` starts with
    the local day: the SQL and its parameters.

    The range is counted in blocks of about DAYS_PER_BLOCK days (at most MAX_BLOCKS), a UNION ALL
    of one branch per block (its bounds: local midnights in UTC, as `Filters.bounds` gives them),
    so a distinct count per day fills a hash table of one block's (day, install) pairs, not of
    the whole range's: one that stays in the CPU's cache. Same rows; on DuckDB at 10M events
    the overview's per-day query takes about half the time, on ClickHouse about the same
    (docs/benchmarks.md, "Profile of the overview").
    """
    where, params = filters.where(app, d)
    blocks = min(MAX_BLOCKS, -(-filters.days // DAYS_PER_BLOCK))
    if blocks == 1:
        return f"SELECT {columns} FROM events WHERE {where} GROUP BY {group}", params
    size = -(-filters.days // blocks)
    branches = []
    for n in range(blocks):
        first = filters.start + dt.timedelta(days=n * size)
        last = min(filters.end, first + dt.timedelta(days=size - 1))
        if first > last:
            break
        params[f"block_start_{n}"], params[f"block_end_{n}"] = dataclasses.replace(
            filters, start=first, end=last
        ).bounds()
        branches.append(
            f"SELECT {columns} FROM events WHERE {where} AND time >= $block_start_{n} AND time < $block_end_{n}"
            f" GROUP BY {group}"
        )
    return "SELECT * FROM (" + " UNION ALL ".join(branches) + ") AS blocks", params


def _change(now: float, before: float) -> float | None:
    return None if not before else (now - before) / before


def _totals(store: EventStore, app: str, filters: Filters) -> tuple[int, int, int]:
    d = dialect_of(store)
    where, params = filters.where(app, d)
    row = store.query(
        f"SELECT count(*), {runs(filters, d)}, {distinct_installs(d)} FROM events WHERE {where}", params
    ).rows
    events, run_count, installs = row[0]
    return int(events), int(run_count), int(installs)


@report("overview")
def overview(store: EventStore, app: str, filters: Filters) -> Report:
    """Events, runs and installs against the period just before; active installs over the last
    day, week and 30 days of the range against the same span before. `meta["partial"]` names
    today when the range holds it: those figures are so far, the previous ones whole."""
    day = dt.timedelta(days=1)

    def window(end: dt.date, days: int) -> Filters:
        return dataclasses.replace(filters, start=end - (days - 1) * day, end=end)

    totals: dict[tuple[dt.date, dt.date], tuple[int, int, int]] = {}

    def measure(span: Filters) -> tuple[int, int, int]:
        key = (span.start, span.end)  # the 30-day windows often equal the range: count them once
        if key not in totals:
            totals[key] = _totals(store, app, span)
        return totals[key]

    now, before = measure(filters), measure(filters.previous())
    rows: list[list[Any]] = [
        [name, now[i], before[i], _change(now[i], before[i])] for i, name in enumerate(("events", "runs", "installs"))
    ]
    for name, days in (("active installs, day", 1), ("active installs, week", 7), ("active installs, 30 days", 30)):
        current = measure(window(filters.end, days))[2]
        previous = measure(window(filters.end - days * day, days))[2]
        rows.append([name, current, previous, _change(current, previous)])
    return Report(
        "overview", "Overview", ["measure", "value", "previous", "change"], rows, {"partial": partial_days(filters)}
    )


@report("timeseries")
def timeseries(store: EventStore, app: str, filters: Filters) -> Report:
    """Events, runs and installs per local day (per local hour for ranges of two days or less).

    `meta["partial"]` lists the period that is not over yet (today, or this hour), if shown.
    """
    hourly = filters.days <= 2
    d = dialect_of(store)
    local = local_time(filters, d=d)
    bucket = d.hour_start(local) if hourly else d.day(local)
    columns = f"{bucket} AS period, count(*), {runs(filters, d)}, {distinct_installs(d)}"
    if hourly:
        where, params = filters.where(app, d)
        sql = f"SELECT {columns} FROM events WHERE {where} GROUP BY period"
    else:
        sql, params = _day_by_day(app, filters, d, columns, "period")
    found = {row[0]: row[1:] for row in _rows(store, sql, params)}
    rows = []
    step = dt.timedelta(hours=1) if hourly else dt.timedelta(days=1)
    moment: Any = dt.datetime.combine(filters.start, dt.time()) if hourly else filters.start
    end: Any = dt.datetime.combine(filters.end + dt.timedelta(days=1), dt.time()) if hourly else filters.end
    while moment <= end - (step if hourly else dt.timedelta(0)):
        rows.append([moment, *found.get(moment, [0, 0, 0])])
        moment += step
    if hourly:
        now = dt.datetime.now(zone(filters.timezone)).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        partial: list[Any] = [now] if rows and rows[0][0] <= now <= rows[-1][0] else []
    else:
        partial = partial_days(filters)
    return Report(
        "timeseries",
        "Events per hour" if hourly else "Events per day",
        ["period", "events", "runs", "installs"],
        rows,
        {"interval": "hour" if hourly else "day", "partial": partial},
    )


@report("heatmap")
def heatmap(store: EventStore, app: str, filters: Filters) -> Report:
    """Events by local weekday (1 = Monday) and hour."""
    d = dialect_of(store)
    where, params = filters.where(app, d)
    local = local_time(filters, d=d)
    rows = _rows(
        store,
        f"SELECT {d.weekday(local)} AS weekday, {d.hour(local)} AS hour, count(*) AS events"
        f" FROM events WHERE {where} GROUP BY weekday, hour ORDER BY weekday, hour",
        params,
    )
    return Report("heatmap", f"When: weekday and hour ({filters.timezone})", ["weekday", "hour", "events"], rows)


Expressions = Callable[[Dialect], list[str]]  # SQL expressions, written against a dialect


def _top(
    name: str,
    title: str,
    labels: Expressions,
    columns: list[str],
    measures: Expressions,
    extra: str = "",
    order: list[str] | None = None,
) -> None:
    """A "top" list: the label columns, then the measures, cut at TOP_ROWS rows.

    Rows are ordered by the first measure, descending, then by the other measures, descending,
    then by the labels, ascending: a total order, so the cut never depends on the engine.
    `order` (labels' values in their natural order) replaces that: the rows follow it, any
    other value after them, then by label.
    """

    def run(store: EventStore, app: str, filters: Filters) -> Report:
        d = dialect_of(store)
        where, params = filters.where(app, d)
        shown, counted = labels(d), measures(d)
        names = [f"label_{i}" for i in range(len(shown))]
        sums = [f"measure_{i}" for i in range(len(counted))]
        if order is None:
            ordering = ", ".join([*(f"{m} DESC" for m in sums), *names])
        else:
            rank = " ".join(f"WHEN {d.string(value)} THEN {i}" for i, value in enumerate(order))
            ordering = f"CASE {names[0]} {rank} ELSE {len(order)} END, {names[0]}"
        selected = ", ".join([*(f"{e} AS {n}" for e, n in zip(shown, names, strict=True)),
                              *(f"{e} AS {n}" for e, n in zip(counted, sums, strict=True))])  # fmt: skip
        rows = _rows(
            store,
            f"SELECT {', '.join([*names, *sums])} FROM (SELECT {selected} FROM events WHERE {where} {extra}"
            f" GROUP BY {', '.join(names)}) ORDER BY {ordering} LIMIT {TOP_ROWS}",
            params,
        )
        return Report(name, title, columns, rows)

    REPORTS[name] = run


_top(
    "events",
    "Top events",
    lambda d: ["name"],
    ["event", "events", "installs"],
    lambda d: ["count(*)", distinct_installs(d)],
)
_top(
    "commands",
    "Top commands",
    lambda d: [prop_label(d, "command")],
    ["command", "runs", "installs"],
    lambda d: ["count(*)", distinct_installs(d)],
    "AND name = 'command'",
)
_top(
    "outcomes",
    "Outcomes and error types",
    lambda d: [prop_label(d, "outcome")],
    ["outcome", "runs"],
    lambda d: ["count(*)"],
    "AND name = 'command'",
)
# Durations in their buckets' natural order (the SDK's), any other value after them.
_top(
    "durations",
    "Durations",
    lambda d: [prop_label(d, "duration")],
    ["duration", "runs"],
    lambda d: ["count(*)"],
    "AND name = 'command'",
    order=list(DURATION_BUCKETS),
)
_top(
    "countries",
    "Countries",
    lambda d: [label("country")],
    ["country", "installs", "events"],
    lambda d: [distinct_installs(d), "count(*)"],
)
_top(
    "environments",
    "Environments",
    lambda d: [ENVIRONMENT],
    ["environment", "installs", "events"],
    lambda d: [distinct_installs(d), "count(*)"],
)
_top(
    "platforms",
    "Platforms",
    lambda d: [label("os"), label("os_version"), label("arch")],
    ["os", "os_version", "arch", "installs"],
    lambda d: [distinct_installs(d)],
)
_top(
    "runtimes",
    "Runtimes",
    lambda d: [label("runtime"), label("runtime_version")],
    ["runtime", "runtime_version", "installs"],
    lambda d: [distinct_installs(d)],
)
_top(
    "ga",
    "Google Analytics events",
    lambda d: [prop_label(d, "category"), prop_label(d, "action"), prop_label(d, "label")],
    ["category", "action", "label", "events"],
    lambda d: ["count(*)"],
    "AND source = 'ga-v1' AND name = 'event'",
)


@report("options")
def options(store: EventStore, app: str, filters: Filters) -> Report:
    """How often each option is used with each command."""
    d = dialect_of(store)
    where, params = filters.where(app, d)
    options = d.key("options")
    rows = _rows(
        store,
        "SELECT command, option, count(*) AS uses FROM (SELECT"
        f" {prop_label(d, 'command')} AS command, {d.unnest(d.prop_list(options))} AS option"
        f" FROM events WHERE {where} AND name = 'command' AND {d.prop_is_list(options)}) GROUP BY command, option"
        f" ORDER BY uses DESC, command, option LIMIT {TOP_ROWS * 5}",
        params,
    )
    return Report("options", "Options per command", ["command", "option", "uses"], rows)


@report("dimensions")
def dimensions(store: EventStore, app: str, filters: Filters) -> Report:
    """GA custom dimensions (cd1 ... cd200) and their values."""
    d = dialect_of(store)
    where, params = filters.where(app, d)
    rows = _rows(
        store,
        f"SELECT key AS dimension, {label('value')} AS shown, count(*) AS events"
        f" FROM ({d.prop_pairs(where, 'cd[0-9]+')})"
        f" GROUP BY dimension, shown ORDER BY events DESC, dimension, shown LIMIT {TOP_ROWS * 5}",
        params,
    )
    return Report("dimensions", "Custom dimensions", ["dimension", "value", "events"], rows)


def app_versions(store: EventStore, app: str, limit: int | None = None) -> list[str]:
    """The versions an app has reported, newest first: for the version filter.

    With `limit`, only that many: those with the most events, so the filter stays small
    however many versions were sent.
    """
    sql = "SELECT app_version FROM events WHERE app = $app AND app_version <> '' GROUP BY app_version"
    params: dict[str, Any] = {"app": app}
    if limit is not None:
        sql += " ORDER BY count(*) DESC, app_version LIMIT $limit"
        params["limit"] = limit
    found = [row[0] for row in store.query(sql, params).rows]
    return sorted(found, key=version_order, reverse=True)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:4]) or (-1,)


def version_order(version: str) -> tuple[tuple[int, ...], str]:
    """Versions by their numbers, then as text: a total order ("1.0" and "1.0.0" differ)."""
    return version_key(version), version


@report("versions")
def versions(store: EventStore, app: str, filters: Filters) -> Report:
    """Installs per version (each on the version of its last event in the range), the share
    on the newest version, each version's first sighting and the median days to upgrade."""
    d = dialect_of(store)
    where, params = filters.where(app, d)
    # Each install on the version of its last event (ties: the greater version text).
    counts: dict[str, int] = {
        str(version): int(n)
        for version, n in _rows(
            store,
            f"SELECT latest, count(*) FROM (SELECT install, {d.arg_max('app_version', '(time, app_version)')} AS latest"
            f" FROM events WHERE {where} AND install <> '' GROUP BY install) GROUP BY latest",
            params,
        )
    }
    # A version's release is its first event from any install, whatever the filters.
    releases = _rows(
        store,
        f"SELECT app_version, min(time), {local_time(filters, 'min(time)', d)} FROM events WHERE app = $app"
        " GROUP BY app_version",
        {"app": app},
    )
    first_seen = {version: local for version, _, local in releases}
    ordered = sorted(counts, key=version_order, reverse=True)
    total = sum(counts.values())
    released = [v for v in first_seen if v]
    latest = max(released, key=version_order) if released else None
    upgrade = _median_upgrade_days(store, app, where, params, {v: utc for v, utc, _ in releases if v})
    rows = [[v or UNKNOWN, counts[v], counts[v] / total if total else 0, first_seen.get(v)] for v in ordered]
    meta = {
        "latest": latest,
        "latest_share": (counts.get(latest or "", 0) / total) if total else None,
        "median_upgrade_days": upgrade,
    }
    return Report("versions", "Versions", ["version", "installs", "share", "first_seen"], rows, meta)


def _median_upgrade_days(
    store: EventStore, app: str, where: str, params: dict[str, Any], released: dict[str, dt.datetime]
) -> float | None:
    """The median days from a version's release to an upgrade to it: an install's first event on a
    version (not its first version ever) in the range, counted when the install has an event on
    that version matching the filters. Whole seconds, as the engines' date_diff counts them; the
    median is taken here, over the upgrades alone (one JOIN per SELECT, as ClickHouse 18.16 needs)."""
    d = dialect_of(store)
    known = "app = $app AND install <> '' AND app_version <> ''"
    upgrades = _rows(
        store,
        "SELECT app_version, adopted_at FROM (SELECT install, app_version, adopted_at FROM"
        " (SELECT install, app_version, min(time) AS adopted_at FROM events"
        f" WHERE {known} GROUP BY install, app_version) AS adopted {d.join}"
        f" (SELECT install, min(time) AS started_at FROM events WHERE {known} GROUP BY install) AS starts"
        " USING (install) WHERE adopted_at > started_at AND adopted_at >= $start AND adopted_at < $end) AS upgraded"
        f" {d.join} (SELECT DISTINCT install, app_version FROM events WHERE {where} AND install <> '') AS matching"
        " USING (install, app_version)",
        params,
    )

    def seconds(moment: dt.datetime) -> int:
        return int(moment.replace(microsecond=0, tzinfo=dt.timezone.utc).timestamp())

    waits = [seconds(moment) - seconds(released[version]) for version, moment in upgrades]
    return statistics.median(waits) / 86400.0 if waits else None


@report("adoption")
def adoption(store: EventStore, app: str, filters: Filters) -> Report:
    """Active installs per version per local day."""
    d = dialect_of(store)
    columns = f"{d.day(local_time(filters, d=d))} AS day, {label('app_version')} AS version, {distinct_installs(d)}"
    sql, params = _day_by_day(app, filters, d, columns, "day, version")
    rows = _rows(store, f"SELECT * FROM ({sql}) AS per_day ORDER BY day, version", params)
    return Report(
        "adoption", "Version adoption", ["day", "version", "installs"], rows, {"partial": partial_days(filters)}
    )


@report("retention")
def retention(store: EventStore, app: str, filters: Filters) -> Report:
    """Weekly cohorts: of the installs first seen in a local week, the share active each week after.

    `meta["partial"]` lists the weeks (by their Monday) not wholly inside the range's past days:
    the current week, and a week the range cuts. Their cells count fewer days than a whole week.
    """
    d = dialect_of(store)
    where, params = filters.where(app, d)
    first_week = week_start(filters.start)
    found = _rows(
        store,
        "SELECT cohort, week, count(*) AS installs FROM (SELECT DISTINCT install,"
        f" {d.week_start(local_time(filters, d=d))} AS week FROM events WHERE {where} AND install <> '') AS active"
        f" {d.join} (SELECT install,"
        f" {d.week_start(local_time(filters, 'min(time)', d))} AS cohort FROM events WHERE app = $app AND install <> ''"
        " GROUP BY install) AS cohorts USING (install) WHERE cohort >= $first_week GROUP BY cohort, week",
        {**params, "first_week": first_week},
    )
    rows = sorted([cohort, (week - cohort).days // 7, count] for cohort, week, count in found)
    sizes = {cohort: count for cohort, week, count in rows if week == 0}
    table = [[c, w, n, n / sizes[c] if sizes.get(c) else None] for c, w, n in rows]
    last_whole_day = min(filters.end, local_today(filters.timezone) - dt.timedelta(days=1))
    weeks = sorted({c + dt.timedelta(weeks=w) for c, w, _ in rows})
    partial = [w for w in weeks if w < filters.start or w + dt.timedelta(days=6) > last_whole_day]
    return Report(
        "retention",
        "Retention by weekly cohort",
        ["cohort", "week", "installs", "share"],
        table,
        {"partial": partial},
    )


def summary(store: EventStore, app: str, filters: Filters) -> dict[str, Any]:
    """Totals, events and installs per day, and top events: the CLI's and API's quick look,
    under every filter the reports take."""
    events, run_count, installs = _totals(store, app, filters)
    per_day = _per_day(store, app, filters)
    top = REPORTS["events"](store, app, filters).rows[:10]
    return {
        "app": app,
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "days": filters.days,
        "timezone": filters.timezone,
        "filters": {**filters.as_params(), "where": [str(item) for item in filters.properties]},
        "events": events,
        "installs": installs,
        "runs": run_count,
        "per_day": per_day,
        "partial": [day.isoformat() for day in partial_days(filters)],
        "top_events": [{"name": name, "events": count} for name, count, _ in top],
    }


def _per_day(store: EventStore, app: str, filters: Filters) -> list[dict[str, Any]]:
    d = dialect_of(store)
    columns = f"{d.day(local_time(filters, d=d))} AS day, count(*), {distinct_installs(d)}"
    found = {row[0]: row for row in _rows(store, *_day_by_day(app, filters, d, columns, "day"))}
    days = [filters.start + dt.timedelta(days=i) for i in range(filters.days)]
    return [
        {"day": d.isoformat(), "events": found.get(d, [d, 0, 0])[1], "installs": found.get(d, [d, 0, 0])[2]}
        for d in days
    ]


@report("os")
def operating_systems(store: EventStore, app: str, filters: Filters) -> Report:
    """Installs and events per OS (a blank OS is "(unknown)"), and each OS's share of all installs in the range.

    An install seen on two OSes counts once in each, so the shares can add up to more than 1.
    """
    d = dialect_of(store)
    where, params = filters.where(app, d)
    rows = _rows(
        store,
        f"SELECT CASE WHEN coalesce(os, '') = '' THEN '{UNKNOWN}' ELSE os END AS os_name,"
        f" {distinct_installs(d)} AS install_count, count(*) AS event_count FROM events WHERE {where}"
        f" GROUP BY os_name ORDER BY install_count DESC, event_count DESC, os_name LIMIT {TOP_ROWS}",
        params,
    )
    everyone = _totals(store, app, filters)[2]
    table = [[name, installs, events, installs / everyone if everyone else 0.0] for name, installs, events in rows]
    return Report("os", "Operating systems", ["os", "installs", "events", "share"], table, {"installs": everyone})
