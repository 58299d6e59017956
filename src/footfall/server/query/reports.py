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

from footfall.server.errors import NotFound
from footfall.server.query.filters import Filters
from footfall.server.query.filters import today as utc_today
from footfall.server.stores.base import EventStore

TOP_ROWS = 20  # rows in the "top" lists
INSTALLS = "count(DISTINCT install_key)"  # the 64-bit keys of the install hashes; NULL when no id
RUNS = "count(*) FILTER (WHERE run_start)"  # a run counts where it starts (see stores.duckdb)
ENVIRONMENT = "CASE WHEN ci <> '' THEN 'ci:' || ci WHEN container <> '' THEN 'container:' || container ELSE 'local' END"


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
    row = store.query(f"SELECT count(*), {RUNS}, {INSTALLS} FROM events WHERE {where}", params).rows
    events, runs, installs = row[0]
    return int(events), int(runs), int(installs)


@report("overview")
def overview(store: EventStore, app: str, filters: Filters) -> Report:
    """Events, runs, installs and active installs, each against the period just before."""
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
    return Report("overview", "Overview", ["measure", "value", "previous", "change"], rows)


@report("timeseries")
def timeseries(store: EventStore, app: str, filters: Filters) -> Report:
    """Events, runs and installs per day (per hour for ranges of two days or less)."""
    hourly = filters.days <= 2
    bucket = "date_trunc('hour', time)" if hourly else "CAST(time AS DATE)"
    where, params = filters.where(app)
    found = {
        row[0]: row[1:]
        for row in _rows(
            store,
            f"SELECT {bucket} AS period, count(*), {RUNS}, {INSTALLS}"
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
    return Report(
        "timeseries",
        "Events per hour" if hourly else "Events per day",
        ["period", "events", "runs", "installs"],
        rows,
        {"interval": "hour" if hourly else "day"},
    )


@report("heatmap")
def heatmap(store: EventStore, app: str, filters: Filters) -> Report:
    """Events by weekday (1 = Monday) and hour, in UTC."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        f"SELECT isodow(time) AS weekday, hour(time) AS hour, count(*) AS events"
        f" FROM events WHERE {where} GROUP BY weekday, hour ORDER BY weekday, hour",
        params,
    )
    return Report("heatmap", "When: weekday and hour (UTC)", ["weekday", "hour", "events"], rows)


def _top(name: str, title: str, expression: str, columns: list[str], measures: str, extra: str = "") -> None:
    def run(store: EventStore, app: str, filters: Filters) -> Report:
        where, params = filters.where(app)
        rows = _rows(
            store,
            f"SELECT {expression}, {measures} FROM events WHERE {where} {extra}"
            f" GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT {TOP_ROWS}",
            params,
        )
        return Report(name, title, columns, rows)

    REPORTS[name] = run


_top("events", "Top events", "name", ["event", "events", "installs"], f"count(*), {INSTALLS}")
_top(
    "commands",
    "Top commands",
    "json_extract_string(props, '$.command') AS command",
    ["command", "runs", "installs"],
    f"count(*), {INSTALLS}",
    "AND name = 'command'",
)
_top(
    "outcomes",
    "Outcomes and error types",
    "json_extract_string(props, '$.outcome') AS outcome",
    ["outcome", "runs"],
    "count(*)",
    "AND name = 'command'",
)
_top(
    "durations",
    "Durations",
    "json_extract_string(props, '$.duration') AS duration",
    ["duration", "runs"],
    "count(*)",
    "AND name = 'command'",
)
_top(
    "countries",
    "Countries",
    "CASE WHEN country = '' THEN 'unknown' ELSE country END AS country",
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
    "os, os_version, arch",
    ["os", "os_version", "arch", "installs"],
    INSTALLS,
)
_top(
    "runtimes",
    "Runtimes",
    "runtime, runtime_version",
    ["runtime", "runtime_version", "installs"],
    INSTALLS,
)
_top(
    "ga",
    "Google Analytics events",
    "json_extract_string(props, '$.category') AS category,"
    " json_extract_string(props, '$.action') AS action, json_extract_string(props, '$.label') AS label",
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
        "SELECT command, option, count(*) AS uses FROM (SELECT json_extract_string(props, '$.command') AS command,"
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
        "SELECT key AS dimension, value, count(*) AS events FROM (SELECT unnest(json_keys(props)) AS key,"
        " json_extract_string(props, '$.' || unnest(json_keys(props))) AS value"
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
    return sorted(found, key=version_key, reverse=True)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:4]) or (-1,)


@report("versions")
def versions(store: EventStore, app: str, filters: Filters) -> Report:
    """Installs per version, the share of active installs on the latest, and days to upgrade."""
    where, params = filters.where(app)
    latest_per_install = _rows(
        store, f"SELECT arg_max(app_version, time) FROM events WHERE {where} AND install <> '' GROUP BY install", params
    )
    counts: dict[str, int] = {}
    for (version,) in latest_per_install:
        counts[version] = counts.get(version, 0) + 1
    first_seen = dict(
        _rows(store, "SELECT app_version, min(time) FROM events WHERE app = $app GROUP BY app_version", {"app": app})
    )
    ordered = sorted(counts, key=version_key, reverse=True)
    total = sum(counts.values())
    latest = max(first_seen, key=version_key) if first_seen else None
    upgrade = store.query(
        "WITH released AS (SELECT app_version, min(time) AS released_at FROM events WHERE app = $app"
        " GROUP BY app_version),"
        " adopted AS (SELECT install, app_version, min(time) AS adopted_at FROM events WHERE app = $app"
        " AND install <> '' GROUP BY install, app_version),"
        " starts AS (SELECT install, min(adopted_at) AS started_at FROM adopted GROUP BY install)"
        " SELECT median(date_diff('second', released_at, adopted_at)) / 86400.0 FROM adopted"
        " JOIN released USING (app_version) JOIN starts USING (install)"
        " WHERE adopted_at > started_at AND adopted_at >= $start AND adopted_at < $end",
        {"app": app, "start": params["start"], "end": params["end"]},
    ).rows[0][0]
    rows = [[v, counts[v], counts[v] / total if total else 0, first_seen.get(v)] for v in ordered]
    meta = {
        "latest": latest,
        "latest_share": (counts.get(latest or "", 0) / total) if total else None,
        "median_upgrade_days": upgrade,
    }
    return Report("versions", "Versions", ["version", "installs", "share", "first_seen"], rows, meta)


@report("adoption")
def adoption(store: EventStore, app: str, filters: Filters) -> Report:
    """Active installs per version per day."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        f"SELECT CAST(time AS DATE) AS day, app_version, {INSTALLS} FROM events WHERE {where}"
        " GROUP BY day, app_version ORDER BY day, app_version",
        params,
    )
    return Report("adoption", "Version adoption", ["day", "version", "installs"], rows)


@report("retention")
def retention(store: EventStore, app: str, filters: Filters) -> Report:
    """Weekly cohorts: of the installs first seen in a week, the share active each week after."""
    where, params = filters.where(app)
    rows = _rows(
        store,
        "WITH cohorts AS (SELECT install, date_trunc('week', min(time)) AS cohort FROM events"
        "   WHERE app = $app AND install <> '' GROUP BY install),"
        " active AS (SELECT DISTINCT install, date_trunc('week', time) AS week FROM events"
        f" WHERE {where} AND install <> '')"
        " SELECT CAST(cohort AS DATE), date_diff('week', cohort, week) AS week, count(*) FROM active"
        " JOIN cohorts USING (install) WHERE cohort >= date_trunc('week', CAST($start AS TIMESTAMP))"
        " GROUP BY ALL ORDER BY 1, 2",
        params,
    )
    sizes = {cohort: installs for cohort, week, installs in rows if week == 0}
    table = [[c, w, n, n / sizes[c] if sizes.get(c) else None] for c, w, n in rows]
    return Report("retention", "Retention by weekly cohort", ["cohort", "week", "installs", "share"], table)


def summary(store: EventStore, app: str, days: int = 30, today: dt.date | None = None) -> dict[str, Any]:
    """Totals, events and installs per day, and top events: the CLI's and API's quick look."""
    end = today or utc_today()
    filters = Filters(start=end - dt.timedelta(days=days - 1), end=end)
    events, runs, installs = _totals(store, app, filters)
    per_day = _per_day(store, app, filters)
    top = REPORTS["events"](store, app, filters).rows[:10]
    return {
        "app": app,
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "days": days,
        "events": events,
        "installs": installs,
        "runs": runs,
        "per_day": per_day,
        "top_events": [{"name": name, "events": count} for name, count, _ in top],
    }


def _per_day(store: EventStore, app: str, filters: Filters) -> list[dict[str, Any]]:
    where, params = filters.where(app)
    found = {
        row[0]: row
        for row in _rows(
            store,
            f"SELECT CAST(time AS DATE) AS day, count(*), {INSTALLS} FROM events WHERE {where} GROUP BY day",
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
        f"SELECT CASE WHEN coalesce(os, '') = '' THEN '(unknown)' ELSE os END AS os_name, {INSTALLS} AS installs,"
        f" count(*) AS event_count FROM events WHERE {where}"
        f" GROUP BY os_name ORDER BY installs DESC, event_count DESC, os_name LIMIT {TOP_ROWS}",
        params,
    )
    everyone = _totals(store, app, filters)[2]
    table = [[name, installs, events, installs / everyone if everyone else 0.0] for name, installs, events in rows]
    return Report("os", "Operating systems", ["os", "installs", "events", "share"], table, {"installs": everyone})
