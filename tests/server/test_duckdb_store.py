from __future__ import annotations

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
