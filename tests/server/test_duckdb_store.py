from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import MIGRATIONS, DuckDBStore
from footfall.server.stores.memory import MemoryStore

T0 = dt.datetime(2026, 11, 20, 12, 0, 0)


def record(index: int, app: str = "a", install: str = "i", day: int = 0) -> EventRecord:
    moment = T0 + dt.timedelta(days=day, seconds=index)
    return EventRecord(
        moment,
        moment,
        app,
        "1.0",
        "command",
        install,
        f"s{index % 7}",
        "linux",
        "6.1",
        "x86_64",
        "cpython",
        "3.12",
        "",
        "",
        "DE",
        f'{{"n":{index}}}',
        "native",
    )


def test_events_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "f.duckdb"
    store = DuckDBStore(path)
    store.write([record(i) for i in range(100)]).result(timeout=30)
    store.close()
    reopened = DuckDBStore(path)
    try:
        assert reopened.query("SELECT count(*), sum(CAST(json_extract(props, '$.n') AS INTEGER)) FROM events").rows == [
            (100, 4950)
        ]
    finally:
        reopened.close()


def test_concurrent_writes_share_group_commits(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    futures = []
    lock = threading.Lock()

    def writer(offset: int) -> None:
        for i in range(50):
            future = store.write([record(offset + i)])
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for future in futures:
        future.result(timeout=30)
    try:
        assert store.query("SELECT count(*) FROM events").rows == [(400,)]
        assert store.commits < 400, "every write got its own commit: no grouping"
    finally:
        store.close()


def test_a_write_is_visible_once_its_future_resolves(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    try:
        for i in range(20):
            store.write([record(i)]).result(timeout=30)
            assert store.query("SELECT count(*) FROM events").rows == [(i + 1,)]
    finally:
        store.close()


def test_apps_are_idempotent_and_persist(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    assert store.add_app("tool") is True
    assert store.add_app("tool") is False
    store.close()
    store = DuckDBStore(tmp_path / "f.duckdb")
    try:
        assert store.has_app("tool")
        assert [a.name for a in store.list_apps()] == ["tool"]
    finally:
        store.close()


def test_migrations_run_once(tmp_path: Path) -> None:
    for _ in range(3):
        store = DuckDBStore(tmp_path / "f.duckdb")
        assert store.query("SELECT count(*) FROM schema_migrations").rows == [(len(MIGRATIONS),)]
        store.close()


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "f.duckdb"
    store = DuckDBStore(path)
    try:
        script = (
            "from footfall.server.stores.duckdb import DuckDBStore\n"
            "from footfall.server.errors import DataDirLocked\n"
            f"try:\n    DuckDBStore({str(path)!r})\n"
            "except DataDirLocked as exc:\n    print(exc.message)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert "is in use by another process (process" in result.stdout, result.stdout + result.stderr
    finally:
        store.close()


def test_closed_store_refuses_writes() -> None:
    store = MemoryStore()
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.write([record(1)])


def runs(store: DuckDBStore) -> int:
    return int(store.query("SELECT count(*) FROM events WHERE run_start").rows[0][0])


def recent(index: int) -> EventRecord:
    """An event received a minute ago (runs are remembered for 73 hours)."""
    moment = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=1)
    return dataclasses.replace(record(index), time=moment, received=moment)


def test_a_run_starts_once_across_writes_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "f.duckdb"
    store = DuckDBStore(path)
    store.write([recent(0), recent(7)]).result(timeout=30)  # both of session s0: one run
    store.write([recent(14), recent(1)]).result(timeout=30)  # s0 again, and s1 new
    assert runs(store) == 2
    store.close()
    reopened = DuckDBStore(path)
    try:
        reopened.write([recent(21), recent(2)]).result(timeout=30)  # s0 remembered over the restart; s2 new
        assert runs(reopened) == 3
        flagged = reopened.query("SELECT session FROM events WHERE run_start ORDER BY session").rows
        assert flagged == [("s0",), ("s1",), ("s2",)]
    finally:
        reopened.close()


def test_the_migration_backfills_run_starts(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    try:
        store.write([record(i) for i in range(30)]).result(timeout=30)  # sessions s0 ... s6
        store._act(lambda con: con.execute("UPDATE events SET run_start = false"))
        backfill = dict(MIGRATIONS)[4][1]
        store._act(lambda con: con.execute(backfill))
        assert runs(store) == 7
    finally:
        store.close()


def test_a_forget_deletes_events_queued_just_before_it(tmp_path: Path) -> None:
    """Review: within a group commit, actions ran before events, so a batch queued just before a
    forget was committed after the delete and survived it."""
    store = DuckDBStore(tmp_path / "f.duckdb")
    try:
        store.add_app("a")
        for _ in range(20):  # back to back with no wait, so writes and deletes share groups
            pending = [store.write([record(i, install="forgotten")]) for i in range(5)]
            store.delete_install("a", "forgotten")
            for future in pending:
                future.result(timeout=30)
            assert store.query("SELECT count(*) FROM events WHERE install = 'forgotten'").rows == [(0,)]
    finally:
        store.close()


def test_a_removed_app_keeps_none_of_the_events_queued_before_its_removal(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    try:
        for _ in range(10):
            store.add_app("leaving")
            pending = [store.write([record(i, app="leaving")]) for i in range(20)]
            store.remove_app("leaving")
            results = [future.result(timeout=30) for future in pending]
            assert store.query("SELECT count(*) FROM events WHERE app = 'leaving'").rows == [(0,)]
            assert all(result in ((), (0,)) for result in results)
    finally:
        store.close()


def test_a_waiter_that_gives_up_does_not_stop_the_writer(tmp_path: Path) -> None:
    """Review: a request cancelled at shutdown cancels its write future; setting the result of a
    cancelled future raised InvalidStateError in the writer thread, and every later write hung."""
    store = DuckDBStore(tmp_path / "f.duckdb")
    try:
        given_up = [store.write([record(i)]) for i in range(50)]
        for future in given_up:
            future.cancel()
        assert store.write([record(99)]).result(timeout=30) == ()
        assert store.query("SELECT count(*) FROM events WHERE props = '{\"n\":99}'").rows == [(1,)]
    finally:
        store.close()
