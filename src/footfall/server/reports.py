"""Named report queries: the one place that writes report SQL.

The API, the dashboard and the CLI call these functions and never write SQL of
their own. The SQL sticks to what both DuckDB and ClickHouse 18.16 accept: named
`$param` placeholders, `CAST(... AS DATE)`, aliases in GROUP BY and ORDER BY.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from footfall.server.stores.base import EventStore

TOP_EVENTS = 10  # rows in the top-events list


def _window(days: int, today: dt.date | None) -> tuple[dt.date, dt.date]:
    last = today or dt.datetime.now(dt.timezone.utc).date()
    return last - dt.timedelta(days=days - 1), last


def summary(
    store: EventStore, app: str, days: int = 30, today: dt.date | None = None
) -> dict[str, Any]:
    """Totals, events and installs per day, and the top event names over `days` days."""
    first, last = _window(days, today)
    params = {
        "app": app,
        "start": dt.datetime.combine(first, dt.time()),
        "end": dt.datetime.combine(last + dt.timedelta(days=1), dt.time()),
    }
    where = "app = $app AND time >= $start AND time < $end"
    totals = store.query(
        "SELECT count(*) AS events,"
        " count(DISTINCT CASE WHEN install <> '' THEN install END) AS installs,"
        " count(DISTINCT session) AS runs"
        f" FROM events WHERE {where}",
        params,
    ).dicts()[0]
    daily = store.query(
        "SELECT CAST(time AS DATE) AS day, count(*) AS events,"
        " count(DISTINCT CASE WHEN install <> '' THEN install END) AS installs"
        f" FROM events WHERE {where} GROUP BY day ORDER BY day",
        params,
    ).rows
    by_day = {day: (events, installs) for day, events, installs in daily}
    per_day = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        events, installs = by_day.get(day, (0, 0))
        per_day.append({"day": day.isoformat(), "events": events, "installs": installs})
    top = store.query(
        f"SELECT name, count(*) AS events FROM events WHERE {where}"
        f" GROUP BY name ORDER BY events DESC, name LIMIT {TOP_EVENTS}",
        params,
    ).dicts()
    return {
        "app": app,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "days": days,
        "events": int(totals["events"]),
        "installs": int(totals["installs"]),
        "runs": int(totals["runs"]),
        "per_day": per_day,
        "top_events": top,
    }
