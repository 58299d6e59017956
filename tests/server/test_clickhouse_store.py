"""ClickHouseStore on a real clickhouse-server 18.16 (tests/clickhouse.py): segments load exactly
once, unreadable data is refused whole, forget and removal answer with the rows they matched,
and the registry survives a restart. End to end: `footfall serve --store clickhouse://...`
takes a native batch and `footfall report` shows it."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from footfall.server.errors import SegmentRefused, StoreUnavailable, UsageError
from footfall.server.ingest.segments import encode
from footfall.server.query import properties, reports
from footfall.server.query.filters import Filters
from footfall.server.stores.base import EventRecord
from footfall.server.stores.clickhouse import ClickHouseStore, HttpTransport, load_query_id, parse_url
from footfall.server.stores.duckdb import DuckDBStore
from tests.clickhouse import NOW, ClickHouseServer, command_event
from tests.conftest import footfall_command, load_golden, start_server, wait_until, with_fresh_times


def event(app: str = "alpha", install: str = "a" * 64, session: str = "b" * 64, **changes: object) -> EventRecord:
    fields: dict[str, object] = {"props": '{"command":"build","options":["--fast"]}', **changes}
    return command_event(app=app, install=install, session=session, **fields)


@pytest.fixture
def store_url(clickhouse_server: ClickHouseServer) -> str:
    return clickhouse_server.database()


@pytest.fixture
def store(store_url: str) -> Iterator[ClickHouseStore]:
    opened = ClickHouseStore(store_url)
    opened.add_app("alpha")
    try:
        yield opened
    finally:
        opened.close()


def segment(folder: Path, records: list[EventRecord], name: str = "1-w-abc.seg") -> Path:
    path = folder / name
    path.write_bytes(b"".join(encode(record) for record in records))
    return path


def events_in(store: ClickHouseStore) -> int:
    return int(store.query("SELECT count(*) FROM events").rows[0][0])


def test_a_segment_loads_once_even_when_loaded_twice(store: ClickHouseStore, tmp_path: Path) -> None:
    store.add_app("gone")
    store.remove_app("gone")  # its events, queued before, are refused; an app merely unknown is not
    records = [event(), event(session="c" * 64), event(), event(app="gone")]
    path = segment(tmp_path, records)
    assert store.load_segment(path, "1-w-abc") == 3
    assert store.load_segment(path, "1-w-abc") is None
    assert events_in(store) == 3
    assert store.query("SELECT DISTINCT segment FROM events").rows == [("1-w-abc",)]
    assert ("incoming_1_w_abc",) not in store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
    ).rows


def test_a_segment_copied_but_not_recorded_loads_again_whole_once(
    store: ClickHouseStore, clickhouse_server: ClickHouseServer, tmp_path: Path
) -> None:
    """A crash after the copy into events and before the record in loaded_segments. Review: an
    insert is one part per month, so a segment spanning two months may be in only partly; the
    rows found were taken as the whole segment and the other month's were lost. Its rows go,
    and it loads again whole, once."""
    last_month = NOW.replace(day=1) - dt.timedelta(days=1)
    path = segment(tmp_path, [event(), event(), event(time=last_month)])
    assert store.load_segment(path, "2-w-def") == 3
    database = store.address.database
    # What a crash between the copy and the record leaves: the attempt's record, not the load's.
    clickhouse_server.execute(f"ALTER TABLE {database}.loaded_segments DELETE WHERE id = '2-w-def'")
    wait_until(lambda: not store.loaded_batches("2-w-def"), 60, "the record's delete (a mutation)")
    clickhouse_server.execute(
        f"ALTER TABLE {database}.events DROP PARTITION {last_month.year * 100 + last_month.month}"
    )
    assert events_in(store) == 2  # as if the crash had come between the two months' parts
    assert store.load_segment(path, "2-w-def") == 3
    assert events_in(store) == 3
    assert store.query("SELECT id, events FROM loaded_segments ORDER BY id").rows == [
        ("2-w-def", 3),
        ("attempt:2-w-def", 0),
    ]
    assert store.load_segment(path, "2-w-def") is None


def test_runs_and_keys_from_a_segment_agree_with_duckdb(store: ClickHouseStore, tmp_path: Path) -> None:
    """The same segments, loaded into both stores, give the same summary: the install and session
    keys and the run starts (the first event of each run, across segments) are derived alike."""
    first = [event(session=s * 64, time=NOW - dt.timedelta(minutes=m)) for s, m in (("1", 9), ("2", 8), ("1", 7))]
    second = [event(session=s * 64, install="f" * 64) for s in ("2", "3")] + [event(install="not hex", session="x")]
    reference = DuckDBStore(tmp_path / "reference.duckdb")
    reference.add_app("alpha")
    try:
        for index, records in enumerate((first, second)):
            path = segment(tmp_path, records, f"{index}-w-runs.seg")
            assert store.load_segment(path, f"{index}-w-runs") == reference.load_segment(path, f"{index}-w-runs")
        filters = Filters(NOW.date() - dt.timedelta(days=1), NOW.date())
        expected = reports.summary(reference, "alpha", filters)
        assert expected["runs"] == 4 and expected["installs"] == 3  # the test's own premise
        assert reports.summary(store, "alpha", filters) == expected
    finally:
        reference.close()


def test_a_segment_the_engine_cannot_read_is_refused_whole(store: ClickHouseStore, tmp_path: Path) -> None:
    path = segment(tmp_path, [event()])
    path.write_bytes(path.read_bytes() + b'{"time": "not a time", "app": "alpha"\n')
    with pytest.raises(SegmentRefused):
        store.load_segment(path, "3-w-bad")
    assert events_in(store) == 0
    assert store.query("SELECT count(*) FROM loaded_segments").rows == [(0,)]
    tables = [row[0] for row in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()").rows]
    assert not [name for name in tables if name.startswith("incoming_")]


def test_a_time_a_datetime_cannot_hold_is_refused_not_wrapped(store: ClickHouseStore) -> None:
    """ClickHouse 18.16 stores 1900 as 0000-00-00 and 2200 as a time in 1663: such an event is
    refused alone (as DuckDB refuses what it cannot hold), the others of its write are stored."""
    early, late = event(time=dt.datetime(1900, 1, 1)), event(received=dt.datetime(2200, 1, 1))
    assert store.write([event(), early, event(), late]).result(timeout=60) == (1, 3)
    assert store.query("SELECT min(time) > toDateTime('2000-01-01 00:00:00'), count(*) FROM events").rows == [(1, 2)]


def test_forget_and_removal_answer_with_the_rows_they_matched(store: ClickHouseStore, store_url: str) -> None:
    refused = store.write([event(), event(), event(install="c" * 64)]).result(timeout=60)
    assert refused == ()
    assert store.delete_install("alpha", "a" * 64) == 2
    assert events_in(store) == 1  # the delete is done when the call returns
    assert store.delete_install("alpha", "a" * 64) == 0
    store.add_key("alpha", "ga-tid", "UA-1-1", "hash")
    store.set_schema("alpha", '{"events": {}}')
    assert store.remove_app("alpha") == 1
    assert store.remove_app("alpha") == 0
    assert events_in(store) == 0 and not store.has_app("alpha")
    assert store.write([event()]).result(timeout=60) == (0,)  # the removed app's late events are refused
    reopened = ClickHouseStore(store_url)
    try:
        assert reopened.list_apps() == [] and reopened.registry.keys == {} and reopened.registry.schemas == {}
    finally:
        reopened.close()


def test_apps_keys_schemas_and_time_zones_survive_a_restart(store: ClickHouseStore, store_url: str) -> None:
    assert store.add_app("beta") is True and store.add_app("beta") is False
    assert store.add_key("alpha", "ga4", "G-ABC", "secret") is True
    assert store.add_key("alpha", "ga4", "G-ABC", "secret") is False
    with pytest.raises(UsageError, match="already registered"):
        store.add_key("beta", "ga4", "G-ABC")
    store.set_schema("alpha", '{"events": {"export": {}}}')
    store.set_timezone("alpha", "Europe/Berlin")
    store.close()
    reopened = ClickHouseStore(store_url)
    try:
        assert [app.name for app in reopened.list_apps()] == ["alpha", "beta"]
        assert reopened.app_for_key("ga4", "G-ABC") == ("alpha", "secret")
        assert reopened.schema("alpha") == '{"events": {"export": {}}}'
        assert reopened.timezone("alpha") == "Europe/Berlin" and reopened.timezone("beta") == "UTC"
        assert reopened.server_version.startswith("18.16")
    finally:
        reopened.close()


def test_serve_with_a_clickhouse_store_takes_a_batch_that_report_shows(store_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, tmp_path / "server.log", env={"FOOTFALL_STORE": store_url})
    try:
        added = subprocess.run(
            footfall_command("app", "add", "golden-tool", "--data", str(data)),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        batch = with_fresh_times(load_golden("batch-command.json"))
        request = urllib.request.Request(
            server.url + "/v1/batch", data=json.dumps(batch).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status in (200, 202)
        shown = subprocess.run(
            footfall_command("report", "golden-tool", "--format", "json", "--data", str(data)),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["events"] == len(batch["events"])
    finally:
        assert server.stop() == 0, server.log.read_text()
    # The events are in ClickHouse, not in a DuckDB file: the CLI reads them there with --store.
    assert not (data / "footfall.duckdb").exists()
    offline = subprocess.run(
        footfall_command("report", "golden-tool", "--format", "json", "--data", str(data), "--store", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["events"] == len(batch["events"])
    listed = subprocess.run(
        footfall_command("app", "list", "--format", "json", "--data", str(data), "--store", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [app["name"] for app in json.loads(listed.stdout)["apps"]] == ["golden-tool"]
    # The public release's queries (contribution bounds per install and day) run on ClickHouse too.
    published = subprocess.run(
        footfall_command("publish", "golden-tool", "--out", str(tmp_path / "public"), "--data", str(data),
                         "--store", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads((tmp_path / "public" / "golden-tool.json").read_text())["app"] == "golden-tool"


def test_demo_loads_into_the_clickhouse_store_and_backup_refuses_it(store_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = subprocess.run(
        footfall_command("demo", "--days", "2", "--scale", "0.01", "--data", str(data), "--store", store_url),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    opened = ClickHouseStore(store_url)
    try:
        assert len(opened.list_apps()) == 3 and events_in(opened) > 0
    finally:
        opened.close()
    assert not (data / "footfall.duckdb").exists()
    refused = subprocess.run(
        footfall_command("backup", str(tmp_path / "copy"), "--data", str(data), "--store", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0 and "ClickHouse's own tools" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "copy").exists()


def test_two_stores_on_one_database_count_a_run_once(store: ClickHouseStore, store_url: str, tmp_path: Path) -> None:
    """Review: each store decided run starts from its own memory, so a run whose batches reached two
    collectors (behind a load balancer) counted once per collector. Both ask the stored events."""
    other = ClickHouseStore(store_url)  # open before any event is stored, as a second collector is
    try:
        run, fresh = "1" * 64, "2" * 64
        minute = dt.timedelta(minutes=1)
        path = segment(tmp_path, [event(session=run, time=NOW - 9 * minute)], "1-w-one.seg")
        assert store.load_segment(path, "1-w-one") == 1
        path = segment(tmp_path, [event(session=run, time=NOW - 8 * minute)], "2-w-two.seg")
        assert other.load_segment(path, "2-w-two") == 1
        assert other.write([event(session=run), event(session=fresh)]).result(timeout=60) == ()
        assert store.write([event(session=run), event(session=fresh)]).result(timeout=60) == ()
        filters = Filters(NOW.date() - dt.timedelta(days=1), NOW.date())
        assert reports.summary(store, "alpha", filters)["runs"] == 2
        flagged = store.query("SELECT session, count(*) FROM events WHERE run_start GROUP BY session ORDER BY session")
        assert flagged.rows == [(run, 1), (fresh, 1)]
    finally:
        other.close()


class ReadingTransport(HttpTransport):
    """The real HTTP transport, keeping the statements it carries."""

    def __init__(self, url: str) -> None:
        super().__init__(parse_url(url))
        self.statements: list[str] = []

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        self.statements.append(sql)
        return super().run(sql, body, settings)


def test_a_first_load_does_not_scan_the_events_for_its_segment(store_url: str, tmp_path: Path) -> None:
    """Review: each load searched all of `events` for its segment's id (a column scan that grows
    with the table; a migration turned quadratic). Only a load attempted before searches."""
    transport = ReadingTransport(store_url)
    opened = ClickHouseStore(store_url, transport)
    try:
        opened.add_app("alpha")
        for number in range(3):
            path = segment(tmp_path, [event(), event(session="c" * 64)], f"{number}-w-scan.seg")
            assert opened.load_segment(path, f"{number}-w-scan") == 2
        scans = [sql for sql in transport.statements if re.search(r"FROM events WHERE segment", sql)]
        assert scans == []
        assert opened.load_segment(path, "2-w-scan") is None
    finally:
        opened.close()


class TimingOutTransport(HttpTransport):
    """The real HTTP transport; the copy into `events` runs on the server, and the client is then
    told it timed out (what a request timeout on a slow INSERT looks like)."""

    def __init__(self, url: str) -> None:
        super().__init__(parse_url(url))
        self.timeouts = 1

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        answer = super().run(sql, body, settings)
        if sql.startswith("INSERT INTO events (") and self.timeouts:
            self.timeouts -= 1
            raise StoreUnavailable("ClickHouse cannot be reached: timed out")
        return answer


def test_a_load_that_timed_out_after_the_server_stored_it_loads_once(store_url: str, tmp_path: Path) -> None:
    """A request that timed out while the server finished the copy: the retry finds the rows of
    the attempt (its record says a load began) and replaces them, so they are stored once."""
    transport = TimingOutTransport(store_url)
    opened = ClickHouseStore(store_url, transport)
    try:
        opened.add_app("alpha")
        path = segment(tmp_path, [event(), event(), event(session="c" * 64)], "5-w-slow.seg")
        with pytest.raises(StoreUnavailable):
            opened.load_segment(path, "5-w-slow")
        assert events_in(opened) == 3  # the server stored it
        assert opened.load_segment(path, "5-w-slow") == 3
        assert events_in(opened) == 3
        runs = reports.summary(opened, "alpha", Filters(NOW.date() - dt.timedelta(days=1), NOW.date()))["runs"]
        assert runs == 2
        path = segment(tmp_path, [event()], "6-w-slow.seg")
        transport.timeouts = 1
        with pytest.raises(StoreUnavailable):
            opened.load_segment(path, "6-w-slow")
        assert opened.load_segment(path, "6-w-slow") == 1 and events_in(opened) == 4
    finally:
        opened.close()


def test_props_outside_the_basic_plane_read_back_as_on_duckdb(store: ClickHouseStore, tmp_path: Path) -> None:
    """Emoji in props (stored as JSON surrogate pairs, `\\ud83d\\ude00`, where the text is escaped)
    read back equal through every report on both engines, written directly and loaded from a segment."""
    props = [
        json.dumps(
            {"command": "ship 😀", "options": ["--mode=🚀"], "note": "𝄞 clef"},
            ensure_ascii=ascii,
            separators=(",", ":"),
        )
        for ascii in (True, False)
    ]
    records = [event(session=f"{n}" * 64, props=text) for n, text in enumerate(props, start=1)]
    reference = DuckDBStore(tmp_path / "reference.duckdb")
    reference.add_app("alpha")
    try:
        for engine in (store, reference):
            assert engine.write(records[:1]).result(timeout=60) == ()
            assert engine.load_segment(segment(tmp_path, records[1:], "7-w-emoji.seg"), "7-w-emoji") == 1
        filters = Filters(NOW.date() - dt.timedelta(days=1), NOW.date())
        commands = reports.run_report(store, "commands", "alpha", filters)
        assert list(commands.rows[0])[:2] == ["ship 😀", 2], commands.rows
        for name in reports.REPORTS:
            found = reports.run_report(store, name, "alpha", filters)
            assert found.rows == reports.run_report(reference, name, "alpha", filters).rows, name
        values = {"event": "command", "property": "note"}
        found = properties.run_argument_report(store, "properties", "alpha", filters, values)
        assert found.rows == properties.run_argument_report(reference, "properties", "alpha", filters, values).rows
        assert "𝄞 clef" in str(found.rows)
    finally:
        reference.close()


def test_a_retry_waits_while_the_timed_out_copy_still_runs(
    store_url: str, clickhouse_server: ClickHouseServer, tmp_path: Path
) -> None:
    """A request that timed out while the server still runs the copy: a retry that deleted the
    attempt's rows now would see the copy's rows land after it. It is refused until the copy ends
    (a query under the copy's id stands in for the copy here)."""
    transport = TimingOutTransport(store_url)
    opened = ClickHouseStore(store_url, transport)
    try:
        opened.add_app("alpha")
        path = segment(tmp_path, [event(), event()], "8-w-slow.seg")
        with pytest.raises(StoreUnavailable):
            opened.load_segment(path, "8-w-slow")
        running = urllib.request.Request(
            f"{clickhouse_server.url}/?query_id={load_query_id('8-w-slow')}", data=b"SELECT sleep(3)", method="POST"
        )
        copy = threading.Thread(target=lambda: urllib.request.urlopen(running, timeout=30).read())
        copy.start()
        try:
            wait_until(
                lambda: "8-w-slow" in clickhouse_server.execute("SELECT query_id FROM system.processes"), 10, "the copy"
            )
            with pytest.raises(StoreUnavailable, match="still running"):
                opened.load_segment(path, "8-w-slow")
        finally:
            copy.join(30)
        assert opened.load_segment(path, "8-w-slow") == 2 and events_in(opened) == 2
    finally:
        opened.close()
