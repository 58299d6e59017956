"""Retention, forget and migration on a real clickhouse-server 18.16 (tests/clickhouse.py).

- Expiry drops the months wholly before the cut as partitions and deletes the rest of the cut
  month; DuckDB deletes the same events; `footfall expire` does it from the command line.
- Forget through `POST /v1/forget` deletes one install's events from ClickHouse.
- `footfall migrate` copies a DuckDB data directory: every report then answers the same on
  both stores; a second run copies nothing; a run killed midway and run again leaves every
  row once; bad input is a clear error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from footfall.server.datadir import DataDir
from footfall.server.operator.migrate import BATCH_PREFIX, migrate
from footfall.server.query import reports
from footfall.server.query.filters import Filters
from footfall.server.stores.base import EventRecord, EventStore
from footfall.server.stores.clickhouse import ClickHouseStore
from footfall.server.stores.duckdb import DuckDBStore
from tests.clickhouse import NOW, ClickHouseServer, command_event
from tests.conftest import GOLDEN_APP, footfall_command, load_golden, wait_until, with_fresh_times
from tests.contract.data import APPS, QUERIED_APPS, generate
from tests.contract.test_contract import SEED, load, now_utc, same

KILL_TIMEOUT_S = 120.0  # generous: a loaded machine copies a few batches a second


def event(moment: dt.datetime, app: str = "alpha", install: str = "a" * 64) -> EventRecord:
    return command_event(time=moment, received=moment, app=app, install=install)


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


def count(store: EventStore, where: str = "1 = 1") -> int:
    return int(store.query(f"SELECT count(*) FROM events WHERE {where}").rows[0][0])


def spread() -> list[EventRecord]:
    """Events in three months: two wholly before a cut on the 15th of the third, and that month's
    days on both sides of the cut."""
    cut_month = dt.datetime(2026, 3, 1)
    return [
        event(dt.datetime(2026, 1, 10, 12)),
        event(dt.datetime(2026, 1, 31, 23, 59, 59)),
        event(dt.datetime(2026, 2, 14)),
        event(cut_month),
        event(dt.datetime(2026, 3, 14, 23, 59, 59)),
        event(dt.datetime(2026, 3, 15)),  # at the cut: kept
        event(dt.datetime(2026, 3, 20)),
        event(dt.datetime(2026, 4, 2)),
    ]


CUT = dt.datetime(2026, 3, 15)


def partitions(store: ClickHouseStore) -> list[str]:
    rows = store.query(
        "SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = 'events'"
        " AND active ORDER BY partition"
    ).rows
    return [str(row[0]).strip("'") for row in rows]


def test_expiry_drops_whole_months_as_partitions_and_deletes_the_rest_of_the_cut_month(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    assert store.write(spread()).result(timeout=60) == ()
    assert partitions(store) == ["202601", "202602", "202603", "202604"]
    assert store.expire_events(CUT) == 5
    assert partitions(store) == ["202603", "202604"]  # the older months went whole
    assert sorted(row[0] for row in store.query("SELECT time FROM events").rows) == [
        dt.datetime(2026, 3, 15),
        dt.datetime(2026, 3, 20),
        dt.datetime(2026, 4, 2),
    ]
    assert store.expire_events(CUT) == 0
    # DuckDB expires the same events.
    reference = DuckDBStore(tmp_path / "reference.duckdb")
    try:
        reference.add_app("alpha")
        assert reference.write(spread()).result(timeout=60) == ()
        assert reference.expire_events(CUT) == 5 and count(reference) == 3
    finally:
        reference.close()


def test_footfall_expire_deletes_events_older_than_the_days_given(store_url: str, tmp_path: Path) -> None:
    opened = ClickHouseStore(store_url)
    try:
        opened.add_app("alpha")
        old, recent = NOW - dt.timedelta(days=100), NOW - dt.timedelta(days=2)
        assert opened.write([event(old), event(old), event(recent)]).result(timeout=60) == ()
    finally:
        opened.close()
    data = str(tmp_path / "data")
    refused = subprocess.run(
        footfall_command("expire", "--data", data, "--store", store_url), capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "--older-than" in refused.stderr and "Traceback" not in refused.stderr
    expired = subprocess.run(
        footfall_command("expire", "--older-than", "30", "--data", data, "--store", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert expired.returncode == 0, expired.stderr
    assert "Deleted 2 events" in expired.stdout
    # The setting gives the default; DuckDB (no --store) expires the same way.
    duck = DuckDBStore(DataDir(Path(data)).database)
    try:
        duck.add_app("alpha")
        assert duck.write([event(old), event(recent)]).result(timeout=60) == ()
    finally:
        duck.close()
    by_setting = subprocess.run(
        footfall_command("expire", "--data", data),
        capture_output=True, text=True, timeout=120, env=_env(FOOTFALL_RETENTION_DAYS="30"),
    )  # fmt: skip
    assert by_setting.returncode == 0, by_setting.stderr
    assert "Deleted 1 events" in by_setting.stdout


def _env(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_forget_over_http_deletes_the_install_from_clickhouse(store_url: str, app_server_factory: Any) -> None:
    server = app_server_factory(store=ClickHouseStore(store_url))
    mine = with_fresh_times(load_golden("batch-command.json"))
    other = with_fresh_times(load_golden("batch-command.json"))
    other["context"]["install"] = "1" * 32
    for batch in (mine, other):
        assert httpx.post(server.url + "/v1/batch", json=batch, timeout=30).status_code == 202
    per_batch = len(mine["events"])
    assert count(server.store) == 2 * per_batch
    forget = {"app": GOLDEN_APP, "install": mine["context"]["install"]}
    answer = httpx.post(server.url + "/v1/forget", json=forget, timeout=60)
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    assert count(server.store) == per_batch  # the mutation is done when the answer comes


# -- migration ------------------------------------------------------------------------------


def duckdb_source(folder: Path, records: list[EventRecord]) -> Path:
    """A stopped server's data directory with `records`, keys, a schema and a time zone."""
    datadir = DataDir(folder)
    datadir.create()
    source = DuckDBStore(datadir.database)
    try:
        for app in APPS:
            source.add_app(app)
        load(source, records)
        source.add_key("alpha", "ga4", "G-ALPHA", "secret-hash")
        source.set_schema("beta", '{"events": {"export": {}}}')
        source.set_timezone("alpha", "Europe/Berlin")
    finally:
        source.close()
    return folder


def test_migrate_copies_everything_and_every_report_answers_the_same(store_url: str, tmp_path: Path) -> None:
    records = generate(SEED, now_utc(), size=60)
    folder = duckdb_source(tmp_path / "data", records)
    seen: list[tuple[int, int]] = []
    result = migrate(folder, store_url, lambda done, total: seen.append((done, total)))
    assert result.events == result.copied_events == len(records) and result.apps == len(APPS)
    assert seen[-1] == (len(records), len(records)) and len(seen) == result.batches + 1
    again = migrate(folder, store_url)
    assert (again.copied_batches, again.copied_events, again.events) == (0, 0, len(records))
    source, target = DuckDBStore(DataDir(folder).database), ClickHouseStore(store_url)
    try:
        assert count(target) == len(records)
        assert target.app_for_key("ga4", "G-ALPHA") == ("alpha", "secret-hash")
        assert target.schema("beta") == '{"events": {"export": {}}}' and target.timezone("alpha") == "Europe/Berlin"
        assert [(a.name, a.created) for a in target.list_apps()] == [
            (a.name, a.created.replace(microsecond=0)) for a in source.list_apps()
        ]  # a DateTime holds whole seconds
        end = NOW.date()
        for timezone in ("UTC", "Europe/Berlin"):
            filters = Filters(end - dt.timedelta(days=89), end, timezone=timezone)
            for app in QUERIED_APPS:
                for name in reports.REPORTS:
                    expected = dataclasses.asdict(reports.run_report(source, name, app, filters))
                    found = dataclasses.asdict(reports.run_report(target, name, app, filters))
                    same(found, expected, f"{name} of {app} in {timezone}")
                same(reports.summary(target, app, filters), reports.summary(source, app, filters), f"summary {app}")
    finally:
        source.close()
        target.close()


def test_a_migration_killed_midway_then_run_again_copies_every_row_once(store_url: str, tmp_path: Path) -> None:
    start = NOW - dt.timedelta(days=200)
    records = [
        event(start + dt.timedelta(days=day, minutes=minute), app=app, install=f"{minute:064x}")
        for app in ("alpha", "beta")
        for day in range(200)
        for minute in range(3)
    ]  # 400 batches of 3 events
    folder = duckdb_source(tmp_path / "data", records)
    command = footfall_command("migrate", "--from", str(folder), "--to", store_url)
    running = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = ClickHouseStore(store_url)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while len(target.loaded_batches(BATCH_PREFIX)) < 20:
            assert running.poll() is None, "the migration ended before it could be killed"
            assert time.monotonic() < deadline, "the migration copied too little to be killed midway"
            time.sleep(0.05)
        running.send_signal(signal.SIGKILL)
        running.wait(timeout=30)
        copied = len(target.loaded_batches(BATCH_PREFIX))
        assert 20 <= copied < 400, copied
    finally:
        target.close()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(records):,} events" in rerun.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "(0 events copied by this run" in again.stdout, again.stdout
    assert not list(folder.glob(".migrate-*")), "the killed run's batch folder stayed behind"
    target = ClickHouseStore(store_url)
    try:
        assert count(target) == len(records)
        per_install = target.query("SELECT app, install, time, count(*) AS n FROM events GROUP BY app, install, time")
        assert {row[3] for row in per_install.rows} == {1}, "a row was copied twice"
        assert len(target.loaded_batches(BATCH_PREFIX)) == 400
    finally:
        target.close()


def test_a_batch_inserted_but_not_recorded_is_replaced_not_doubled(store_url: str, tmp_path: Path) -> None:
    records = [event(NOW - dt.timedelta(days=1, minutes=m)) for m in range(5)]
    folder = duckdb_source(tmp_path / "data", records)
    migrate(folder, store_url)
    target = ClickHouseStore(store_url)
    try:
        (batch,) = target.loaded_batches(BATCH_PREFIX)
        # What a run killed between the insert and the record leaves: the rows without the record.
        target._run("ALTER TABLE loaded_segments DELETE WHERE id = $batch", {"batch": batch})
        wait_until(lambda: not target.loaded_batches(BATCH_PREFIX), 60, "the record's delete (a mutation)")
    finally:
        target.close()
    rerun = migrate(folder, store_url)
    assert (rerun.copied_batches, rerun.copied_events) == (1, 5)
    target = ClickHouseStore(store_url)
    try:
        assert count(target) == 5
    finally:
        target.close()


def test_two_directories_with_the_same_days_are_both_copied(store_url: str, tmp_path: Path) -> None:
    """Batch ids name their directory: a second collector's DuckDB file (the same install key)
    is copied beside the first, not taken for it (before: 'there already', nothing copied)."""
    day = NOW - dt.timedelta(days=1)
    first = duckdb_source(tmp_path / "first", [event(day, install=f"{n:064x}") for n in range(4)])
    second = duckdb_source(tmp_path / "second", [event(day, install=f"{n + 100:064x}") for n in range(3)])
    DataDir(first).secrets()  # made, as a server would have
    shutil.copy(first / "secrets.json", second / "secrets.json")
    assert migrate(first, store_url).copied_events == 4
    assert migrate(second, store_url).copied_events == 3
    target = ClickHouseStore(store_url)
    try:
        assert count(target) == 7
    finally:
        target.close()


def test_a_directory_with_another_install_key_is_refused_before_anything_is_copied(
    store_url: str, tmp_path: Path
) -> None:
    day = NOW - dt.timedelta(days=1)
    first = duckdb_source(tmp_path / "first", [event(day)])
    other = duckdb_source(tmp_path / "other", [event(day, install="c" * 64)])
    migrate(first, store_url)
    answer = subprocess.run(
        footfall_command("migrate", "--data", str(other), "--store", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert answer.returncode == 2 and "another install key" in answer.stderr, answer.stderr
    target = ClickHouseStore(store_url)
    try:
        assert count(target) == 1
    finally:
        target.close()


def test_a_day_that_changed_since_it_was_copied_is_copied_again_whole(store_url: str, tmp_path: Path) -> None:
    """DIR served on after a migration: its changed day is replaced, neither doubled nor left
    short (before: the new events were never copied) - also when it shrinks back to a count it
    had, and when its rows change but not their number."""
    day = NOW - dt.timedelta(days=1)
    folder = duckdb_source(tmp_path / "data", [event(day + dt.timedelta(seconds=n)) for n in range(5)])
    assert migrate(folder, store_url).copied_events == 5

    def change(add: list[EventRecord], forget: str = "") -> None:
        source = DuckDBStore(DataDir(folder).database)
        try:
            load(source, add)
            if forget:
                source.delete_install("alpha", forget)
        finally:
            source.close()

    def stored() -> list[tuple[Any, ...]]:
        target = ClickHouseStore(store_url)
        try:
            return sorted(target.query("SELECT install, time FROM events").rows)
        finally:
            target.close()

    later = [event(day + dt.timedelta(minutes=10, seconds=n), install="d" * 64) for n in range(3)]
    change(later)
    again = migrate(folder, store_url)
    assert (again.copied_batches, again.copied_events, again.events) == (1, 8, 8)
    assert migrate(folder, store_url).copied_events == 0
    assert len(stored()) == 8
    change([], forget="d" * 64)  # back to the five events of the first copy
    assert migrate(folder, store_url).copied_events == 5 and len(stored()) == 5
    swapped = event(day + dt.timedelta(minutes=20), install="e" * 64)
    change([swapped], forget="a" * 64)  # one install's five events out, another's one in
    change([event(day + dt.timedelta(minutes=21 + n), install="e" * 64) for n in range(4)])
    assert migrate(folder, store_url).copied_events == 5
    assert {row[0] for row in stored()} == {"e" * 64} and len(stored()) == 5


def test_a_restored_backup_of_a_migrated_directory_is_not_copied_twice(store_url: str, tmp_path: Path) -> None:
    """The backup carries DIR's migration record (its source id): before, the restored copy got a
    new id and a second migration copied every day beside the first."""
    folder = duckdb_source(tmp_path / "data", [event(NOW - dt.timedelta(days=n)) for n in range(1, 4)])
    DataDir(folder).secrets()
    assert migrate(folder, store_url).copied_events == 3
    backup = subprocess.run(footfall_command("backup", str(tmp_path / "copy"), "--data", str(folder), "--store", ""),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    restored = subprocess.run(footfall_command("restore", str(tmp_path / "copy"), "--data", str(tmp_path / "new")),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert migrate(tmp_path / "new", store_url).copied_events == 0
    target = ClickHouseStore(store_url)
    try:
        assert count(target) == 3
    finally:
        target.close()


def test_a_killed_runs_batch_folder_is_inside_dir_and_removed_by_the_next_run(store_url: str, tmp_path: Path) -> None:
    folder = duckdb_source(tmp_path / "data", [event(NOW - dt.timedelta(days=1))])
    leftover = folder / ".migrate-killed"
    leftover.mkdir()
    (leftover / "batch.json").write_text("{}")
    migrate(folder, store_url)
    assert not leftover.exists()


def test_after_a_migration_a_command_must_name_its_store(store_url: str, tmp_path: Path) -> None:
    """Without --store, DIR's DuckDB file (the past) would be read or served as if current (before:
    reports silently answered from it). Naming a store, even '' for the file, goes ahead."""
    folder = duckdb_source(tmp_path / "data", [event(NOW - dt.timedelta(days=1))])
    migrate(folder, store_url)
    for command in (["report", "alpha"], ["serve", "--port", "0"], ["app", "list"], ["expire", "--older-than", "9"]):
        refused = subprocess.run(
            footfall_command(*command, "--data", str(folder)), capture_output=True, text=True, timeout=120
        )
        assert refused.returncode == 2 and f"was migrated to {store_url}" in refused.stderr, refused.stderr
    for store in (store_url, ""):
        answer = subprocess.run(
            footfall_command("report", "alpha", "overview", "--format", "json", "--data", str(folder), "--store", store),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout)["rows"][0]["value"] == 1, answer.stdout


def test_events_a_datetime_cannot_hold_are_counted_not_wrapped(store_url: str, tmp_path: Path) -> None:
    kept = event(NOW - dt.timedelta(days=1))
    folder = duckdb_source(tmp_path / "data", [kept, event(dt.datetime(1969, 7, 20, 20, 17))])
    result = migrate(folder, store_url)
    assert (result.events, result.copied_events, result.unstorable_events) == (1, 1, 1)
    target = ClickHouseStore(store_url)
    try:
        assert [row[0] for row in target.query("SELECT time FROM events").rows] == [kept.time]
    finally:
        target.close()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("postgres://127.0.0.1/footfall", "clickhouse://"),
        ("clickhouse://127.0.0.1:1/footfall", "cannot be reached"),
        ("clickhouse://127.0.0.1:8123/bad-name", "database name"),
    ],
)
def test_migrate_refuses_bad_input_clearly(tmp_path: Path, target: str, message: str) -> None:
    folder = duckdb_source(tmp_path / "data", [])
    answer = subprocess.run(
        footfall_command("migrate", "--from", str(folder), "--to", target), capture_output=True, text=True, timeout=120
    )
    assert answer.returncode != 0 and message in answer.stderr, answer.stderr
    assert "Traceback" not in answer.stderr


def test_migrate_refuses_a_missing_directory_and_a_running_server(
    tmp_path: Path, store_url: str, live_server: Any
) -> None:
    missing = subprocess.run(
        footfall_command("migrate", "--from", str(tmp_path / "nowhere"), "--to", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "not a Footfall data directory" in missing.stderr, missing.stderr
    busy = subprocess.run(
        footfall_command("migrate", "--from", str(live_server.data), "--to", store_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert busy.returncode == 2 and "stop it, then migrate" in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr + missing.stderr
    assert httpx.get(live_server.url + "/healthz", timeout=10).status_code == 200  # left undisturbed


def test_expire_on_duckdb_refuses_while_the_server_runs(live_server: Any) -> None:
    refused = subprocess.run(
        footfall_command("expire", "--older-than", "30", "--data", str(live_server.data)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "stop the server, then expire" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert httpx.get(live_server.url + "/healthz", timeout=10).status_code == 200
