"""An app's time zone: where its days start, set by an owner and honoured by every report's range.

What a store keeps and answers is tested on each store (`on_every_store`); the zone names' checks
(no store) and the CLI (a DuckDB data directory) once.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from footfall.server.errors import UsageError
from footfall.server.query.filters import Filters, check_timezone, known_timezones
from footfall.server.query.reports import run_report
from footfall.server.stores.base import EventRecord, EventStore
from tests.conftest import InThreadServer, footfall_command
from tests.stores import StoreFactory, on_every_store, reopen

APP = "tz-tool"


def record(moment: dt.datetime, name: str = "command") -> EventRecord:
    return EventRecord(
        moment,
        moment,
        APP,
        "1.0",
        name,
        "",
        "",
        "linux",
        "6.1",
        "x86_64",
        "cpython",
        "3.12",
        "",
        "",
        "",
        "{}",
        "native",
    )


# Berlin's clocks go forward on 2026-03-29 at 01:00 UTC: that day starts 23:00 UTC the day
# before and ends 22:00 UTC (CEST), so it has 23 hours.
INSIDE = (dt.datetime(2026, 3, 28, 23, 30), dt.datetime(2026, 3, 29, 21, 59))
OUTSIDE = (dt.datetime(2026, 3, 28, 22, 59), dt.datetime(2026, 3, 29, 22, 0))


@pytest.fixture
def store(store_factory: StoreFactory, tmp_path: Path) -> Iterator[EventStore]:
    opened = store_factory(tmp_path)
    opened.add_app(APP)
    yield opened
    opened.close()


@on_every_store
def test_a_day_is_the_apps_local_day_across_a_dst_change(store: EventStore) -> None:
    store.write([record(m) for m in (*INSIDE, *OUTSIDE)]).result(timeout=30)
    where_utc, params_utc = Filters(dt.date(2026, 3, 29), dt.date(2026, 3, 29)).where(APP)
    berlin = Filters(dt.date(2026, 3, 29), dt.date(2026, 3, 29), timezone="Europe/Berlin")
    where, params = berlin.where(APP)
    count = "SELECT count(*) FROM events WHERE "
    assert store.query(count + where, params).rows[0][0] == len(INSIDE)
    # In UTC the same day holds a different pair: the one at 21:59 and the one at 22:00.
    assert store.query(count + where_utc, params_utc).rows[0][0] == 2
    assert params["end"] - params["start"] == dt.timedelta(hours=23)


@on_every_store
def test_the_zone_is_kept_with_the_app_and_goes_with_it(store: EventStore) -> None:
    assert store.timezone(APP) == "UTC"
    store.set_timezone(APP, "America/New_York")
    store.close()
    store = reopen(store)
    try:
        assert store.timezone(APP) == "America/New_York"
        assert [a.timezone for a in store.list_apps()] == ["America/New_York"]
        store.remove_app(APP)
        store.add_app(APP)  # a new app of the same name starts in UTC again
        assert store.timezone(APP) == "UTC"
    finally:
        store.close()


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "", "Europe/Berlin\n", "x" * 100, "UTC+3"])
def test_a_bad_zone_is_a_clear_error(name: str) -> None:
    with pytest.raises(UsageError, match="time zone"):
        check_timezone(name)


def _put(server: InThreadServer, app: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{server.url}/api/v1/apps/{app}/timezone",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token or server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _events_on(server: InThreadServer, day: str) -> int:
    request = urllib.request.Request(
        f"{server.url}/api/v1/apps/{APP}/reports/events?start={day}&end={day}",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return sum(row["events"] for row in json.load(response)["rows"])


@on_every_store
def test_an_owner_sets_the_zone_through_the_api_and_reports_follow(app_server: InThreadServer) -> None:
    store = app_server.store
    store.add_app(APP)
    store.write([record(m) for m in (*INSIDE, *OUTSIDE)]).result(timeout=30)
    assert _events_on(app_server, "2026-03-29") == 2  # UTC: 21:59 and 22:00
    assert _put(app_server, APP, {"timezone": "Europe/Berlin"}) == (200, {"name": APP, "timezone": "Europe/Berlin"})
    assert _events_on(app_server, "2026-03-29") == len(INSIDE)
    status, body = _put(app_server, APP, {"timezone": "Mars/Olympus"})
    assert status == 400 and "time zone" in body["error"]["message"]
    assert _put(app_server, "no-such-app", {"timezone": "UTC"})[0] == 404
    assert _put(app_server, APP, {"zone": "UTC"})[0] == 400
    assert store.timezone(APP) == "Europe/Berlin"  # the refused requests changed nothing


def test_the_cli_sets_and_lists_the_zone(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path / "data")]
    subprocess.run(footfall_command("app", "add", APP, *data), check=True, capture_output=True, timeout=120)
    done = subprocess.run(
        footfall_command("app", "timezone", APP, "Asia/Kolkata", *data), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Asia/Kolkata" in done.stdout
    listing = subprocess.run(
        footfall_command("app", "list", "--format", "json", *data), capture_output=True, text=True, timeout=120
    )
    assert json.loads(listing.stdout)["apps"][0]["timezone"] == "Asia/Kolkata"
    bad = subprocess.run(
        footfall_command("app", "timezone", APP, "Asia/Nowhere", *data), capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0 and "unknown time zone" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("name", ["localtime", "posixrules", "posix/Europe/Berlin", "right/UTC", "Factory"])
def test_the_systems_own_zone_aliases_are_refused(name: str) -> None:
    """Review: zoneinfo opens these, the store's engine does not: every report of the app then failed."""
    with pytest.raises(UsageError, match="unknown time zone"):
        check_timezone(name)


@on_every_store
def test_every_zone_accepted_works_in_the_reports(store: EventStore) -> None:
    store.write([record(INSIDE[0])]).result(timeout=30)
    for name in sorted(known_timezones()):
        filters = Filters(dt.date(2026, 3, 28), dt.date(2026, 3, 29), timezone=check_timezone(name))
        assert sum(row[2] for row in run_report(store, "heatmap", APP, filters).rows) == 1, name
