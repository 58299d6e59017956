"""Named report queries: the one place that writes report SQL.

The API, the dashboard, the CLI and the public pages call `run_report` (or a
function below) and never write SQL of their own. Every report takes the same
`Filters` and returns a `Report`: a table (columns and rows) plus a few named
figures in `meta`, so each can be shown as JSON, CSV, a terminal table or a chart.
The SQL is DuckDB's; ClickHouse is not implemented yet.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from collections.abc import Callable
from typing import Any

from footfall.schema import DURATION_BUCKETS
from footfall.server.errors import NotFound
from footfall.server.query.filters import UTC, Filters, check_timezone, zone
from footfall.server.query.filters import today as local_today
from footfall.server.stores.base import EventStore

TOP_ROWS = 20  # rows in the "top" lists
UNKNOWN = "(unknown)"  # the label of a blank or missing value (a version, an OS, a command ...)
INSTALLS = "count(DISTINCT install_key)"  # the 64-bit keys of the install hashes; NULL when no id
RUNS = "count(*) FILTER (WHERE run_start)"  # runs with no property filter; use runs(filters)
ENVIRONMENT = "CASE WHEN ci <> '' THEN 'ci:' || ci WHEN container <> '' THEN 'container:' || container ELSE 'local' END"


def runs(filters: Filters) -> str:
    """The runs measure (docs/reports.md, "runs").

    A run counts once, where it starts: on its first stored event, which the writer flags
    `run_start` (stores.duckdb), so no distinct count is needed. Version, country, CI and
    container never change within a run, so those filters keep or drop whole runs. A property
    filter keeps only some events of a run, usually not its first: then a run counts in each
    period where it has a matching event.
    """
    if filters.properties:
        return "count(DISTINCT session_key)"
    return RUNS


def local_time(filters: Filters, column: str = "time") -> str:
    """The SQL expression of an event's time in the app's zone (`filters.timezone`), as a naive
    timestamp: every report buckets days, weeks, hours and weekdays by it.

    The store keeps naive UTC; DuckDB's ICU turns the instant into local wall time, so a day
    across a DST change has 23 or 25 hours. The zone name is checked (letters, digits, `_+/-`)
    before it is written into the SQL as a literal.
    """
    if filters.timezone == UTC:
        return column
    return f"timezone('{check_timezone(filters.timezone)}', {column} AT TIME ZONE 'UTC')"


def label(expression: str) -> str:
    """A text column with blanks and missing values shown as UNKNOWN, never as an empty row."""
    return f"coalesce(nullif({expression}, ''), '{UNKNOWN}')"


def _prop(name: str) -> str:
    return label(f"json_extract_string(props, '$.{name}')")


_PROP_COMMAND, _PROP_OUTCOME, _PROP_DURATION = _prop("command"), _prop("outcome"), _prop("duration")
_PROP_CATEGORY, _PROP_ACTION, _PROP_LABEL = _prop("category"), _prop("action"), _prop("label")


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
    return function(store, app, filters)


def _rows(store: EventStore, sql: str, params: dict[str, Any]) -> list[list[Any]]:
    return [list(row) for row in store.query(sql, params).rows]


def _change(now: float, before: float) -> float | None:
    return None if not before else (now - before) / before


def _totals(store: EventStore, app: str, filters: Filters) -> tuple[int, int, int]:
    where, params = filters.where(app)
    row = store.query(f"SELECT count(*), {runs(filters)}, {INSTALLS} FROM events WHERE {where}", params).rows
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
    local = local_time(filters)
    bucket = f"date_trunc('hour', {local})" if hourly else f"CAST({local} AS DATE)"
    where, params = filters.where(app)
    found = {
        row[0]: row[1:]
        for row in _rows(
            store,
            f"SELECT {bucket} AS period, count(*), {runs(filters)}, {INSTALLS}"
            f" FROM events WHERE {where} GROUP BY period ORDER BY period",
            params,
        )
    }
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
    where, params = filters.where(app)
    local = local_time(filters)
    rows = _rows(
        store,
        f"SELECT isodow({local}) AS weekday, hour({local}) AS hour, count(*) AS events"
        f" FROM events WHERE {where} GROUP BY weekday, hour ORDER BY weekday, hour",
        params,
    )
    return Report("heatmap", f"When: weekday and hour ({filters.timezone})", ["weekday", "hour", "events"], rows)


def _top_level(text: str) -> list[str]:
    """`text` split at its commas outside parentheses: the columns of a SELECT list."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _top(
    name: str,
    title: str,
    expression: str,
    columns: list[str],
    measures: str,
    extra: str = "",
    order: str | None = None,
) -> None:
    """A "top" list: the label columns (`expression`), then the measures, cut at TOP_ROWS rows.

    Rows are ordered by the first measure, descending, then by the other measures, descending,
    then by the labels, ascending: a total order, so the cut never depends on the engine.
    `order` replaces that (durations order by their buckets).
    """
    measure_count = len(_top_level(measures))
    label_count = len(columns) - measure_count
    positions = [f"{label_count + i + 1} DESC" for i in range(measure_count)]
    labels = [str(i + 1) for i in range(label_count)]
    ordering = order or ", ".join([*positions, *labels])

    def run(store: EventStore, app: str, filters: Filters) -> Report:
        where, params = filters.where(app)
        rows = _rows(
            store,
            f"SELECT * FROM (SELECT {expression}, {measures} FROM events WHERE {where} {extra}"
            f" GROUP BY ALL) ORDER BY {ordering} LIMIT {TOP_ROWS}",
            params,
        )
        return Report(name, title, columns, rows)

    REPORTS[name] = run


_top("events", "Top events", "name", ["event", "events", "installs"], f"count(*), {INSTALLS}")
_top(
    "commands",
    "Top commands",
    f"{_PROP_COMMAND} AS command",
    ["command", "runs", "installs"],
    f"count(*), {INSTALLS}",
    "AND name = 'command'",
)
_top(
    "outcomes",
    "Outcomes and error types",
    f"{_PROP_OUTCOME} AS outcome",
    ["outcome", "runs"],
    "count(*)",
    "AND name = 'command'",
)
# Durations in their buckets' natural order (the SDK's), any other value after them.
_DURATION_LIST = "[" + ", ".join(f"'{bucket}'" for bucket in DURATION_BUCKETS) + "]"
_top(
    "durations",
    "Durations",
    f"{_PROP_DURATION} AS duration",
    ["duration", "runs"],
    "count(*)",
    "AND name = 'command'",
    order=f"coalesce(list_position({_DURATION_LIST}, duration), {len(DURATION_BUCKETS) + 1}), 1",
)
_top(
    "countries",
    "Countries",
    f"{label('country')} AS country",
    ["country", "installs", "events"],
    f"{INSTALLS}, count(*)",
)
_top(
    "environments",
    "Environments",
    f"{ENVIRONMENT} AS environment",
    ["environment", "installs", "events"],
    f"{INSTALLS}, count(*)",
)
_top(
    "platforms",
    "Platforms",
    f"{label('os')} AS os, {label('os_version')} AS os_version, {label('arch')} AS arch",
    ["os", "os_version", "arch", "installs"],
    INSTALLS,
)
_top(
    "runtimes",
    "Runtimes",
    f"{label('runtime')} AS runtime, {label('runtime_version')} AS runtime_version",
    ["runtime", "runtime_version", "installs"],
    INSTALLS,
)
_top(
    "ga",
    "Google Analytics events",
    f"{_PROP_CATEGORY} AS category, {_PROP_ACTION} AS action, {_PROP_LABEL} AS label",
    ["category", "action", "label", "events"],
    "count(*)",
    "AND source = 'ga-v1' AND name = 'event'",
)


@report("options")
def options(store: EventStore, app: str, filters: Filters) -> Report:
    """How often each option is used with each command."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        "SELECT command, option, count(*) AS uses FROM (SELECT"
        f" {_PROP_COMMAND} AS command,"
        " unnest(from_json(json_extract(props, '$.options'), '[\"VARCHAR\"]')) AS option"
        f" FROM events WHERE {where} AND name = 'command') GROUP BY command, option"
        f" ORDER BY uses DESC, command, option LIMIT {TOP_ROWS * 5}",
        params,
    )
    return Report("options", "Options per command", ["command", "option", "uses"], rows)


@report("dimensions")
def dimensions(store: EventStore, app: str, filters: Filters) -> Report:
    """GA custom dimensions (cd1 ... cd200) and their values."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        f"SELECT key AS dimension, {label('value')} AS value, count(*) AS events FROM (SELECT"
        " unnest(json_keys(props)) AS key, json_extract_string(props, '$.' || unnest(json_keys(props))) AS value"
        f" FROM events WHERE {where}) WHERE regexp_matches(key, '^cd[0-9]+$')"
        f" GROUP BY ALL ORDER BY events DESC, dimension, value LIMIT {TOP_ROWS * 5}",
        params,
    )
    return Report("dimensions", "Custom dimensions", ["dimension", "value", "events"], rows)


def app_versions(store: EventStore, app: str, limit: int | None = None) -> list[str]:
    """The versions an app has reported, newest first: for the version filter.

    With `limit`, only that many: those with the most events, so the filter stays small
    however many versions were sent.
    """
    sql = "SELECT app_version FROM events WHERE app = $app AND app_version <> '' GROUP BY 1"
    params: dict[str, Any] = {"app": app}
    if limit is not None:
        sql += " ORDER BY count(*) DESC, 1 LIMIT $limit"
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
    where, params = filters.where(app)
    latest_per_install = _rows(
        store,
        f"SELECT app_version FROM events WHERE {where} AND install <> ''"
        " QUALIFY row_number() OVER (PARTITION BY install ORDER BY time DESC, app_version DESC) = 1",
        params,
    )
    counts: dict[str, int] = {}
    for (version,) in latest_per_install:
        counts[version] = counts.get(version, 0) + 1
    # A version's release is its first event from any install, whatever the filters.
    first_seen = dict(
        _rows(
            store,
            f"SELECT app_version, {local_time(filters, 'min(time)')} FROM events WHERE app = $app GROUP BY app_version",
            {"app": app},
        )
    )
    ordered = sorted(counts, key=version_order, reverse=True)
    total = sum(counts.values())
    released = [v for v in first_seen if v]
    latest = max(released, key=version_order) if released else None
    # An upgrade: an install's first event on a version (not its first version ever) in the
    # range, counted when the install has an event on that version matching the filters.
    upgrade = store.query(
        "WITH released AS (SELECT app_version, min(time) AS released_at FROM events WHERE app = $app"
        " AND app_version <> '' GROUP BY app_version),"
        " adopted AS (SELECT install, app_version, min(time) AS adopted_at FROM events WHERE app = $app"
        " AND install <> '' AND app_version <> '' GROUP BY install, app_version),"
        " starts AS (SELECT install, min(adopted_at) AS started_at FROM adopted GROUP BY install),"
        f" matching AS (SELECT DISTINCT install, app_version FROM events WHERE {where} AND install <> '')"
        " SELECT median(date_diff('second', released_at, adopted_at)) / 86400.0 FROM adopted"
        " JOIN released USING (app_version) JOIN starts USING (install) JOIN matching USING (install, app_version)"
        " WHERE adopted_at > started_at AND adopted_at >= $start AND adopted_at < $end",
        params,
    ).rows[0][0]
    rows = [[v or UNKNOWN, counts[v], counts[v] / total if total else 0, first_seen.get(v)] for v in ordered]
    meta = {
        "latest": latest,
        "latest_share": (counts.get(latest or "", 0) / total) if total else None,
        "median_upgrade_days": upgrade,
    }
    return Report("versions", "Versions", ["version", "installs", "share", "first_seen"], rows, meta)


@report("adoption")
def adoption(store: EventStore, app: str, filters: Filters) -> Report:
    """Active installs per version per local day."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        f"SELECT CAST({local_time(filters)} AS DATE) AS day, {label('app_version')} AS version, {INSTALLS}"
        f" FROM events WHERE {where} GROUP BY day, version ORDER BY day, version",
        params,
    )
    return Report(
        "adoption", "Version adoption", ["day", "version", "installs"], rows, {"partial": partial_days(filters)}
    )


@report("retention")
def retention(store: EventStore, app: str, filters: Filters) -> Report:
    """Weekly cohorts: of the installs first seen in a local week, the share active each week after.

    `meta["partial"]` lists the weeks (by their Monday) not wholly inside the range's past days:
    the current week, and a week the range cuts. Their cells count fewer days than a whole week.
    """
    where, params = filters.where(app)
    local = local_time(filters)
    rows = _rows(
        store,
        f"WITH cohorts AS (SELECT install, date_trunc('week', {local_time(filters, 'min(time)')}) AS cohort FROM events"
        "   WHERE app = $app AND install <> '' GROUP BY install),"
        f" active AS (SELECT DISTINCT install, date_trunc('week', {local}) AS week FROM events"
        f" WHERE {where} AND install <> '')"
        " SELECT CAST(cohort AS DATE), date_diff('week', cohort, week) AS week, count(*) FROM active"
        " JOIN cohorts USING (install) WHERE cohort >= date_trunc('week', $first_day)"
        " GROUP BY ALL ORDER BY 1, 2",
        {**params, "first_day": filters.start},
    )
    sizes = {cohort: installs for cohort, week, installs in rows if week == 0}
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
    where, params = filters.where(app)
    found = {
        row[0]: row
        for row in _rows(
            store,
            f"SELECT CAST({local_time(filters)} AS DATE) AS day, count(*), {INSTALLS} FROM events"
            f" WHERE {where} GROUP BY day",
            params,
        )
    }
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
    where, params = filters.where(app)
    rows = _rows(
        store,
        f"SELECT CASE WHEN coalesce(os, '') = '' THEN '{UNKNOWN}' ELSE os END AS os_name, {INSTALLS} AS installs,"
        f" count(*) AS event_count FROM events WHERE {where}"
        f" GROUP BY os_name ORDER BY installs DESC, event_count DESC, os_name LIMIT {TOP_ROWS}",
        params,
    )
    everyone = _totals(store, app, filters)[2]
    table = [[name, installs, events, installs / everyone if everyone else 0.0] for name, installs, events in rows]
    return Report("os", "Operating systems", ["os", "installs", "events", "share"], table, {"installs": everyone})
