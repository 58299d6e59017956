"""Removing an app leaves nothing of it behind (red team 3 and 4, review 6 and 9).

An app re-created under a removed app's name must start empty: no published release, no
unloaded or quarantined events, no distinct-value slots of the old app.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from footfall.server.ingest.cardinality import OTHER, CardinalityGuard
from footfall.server.ingest.segments import encode
from footfall.server.operations import StoreOperations
from footfall.server.query.public import PublicPolicy, snapshot_folder
from footfall.server.settings import Settings
from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import footfall_command

REMOVED = "old-tool"
KEPT = "other-tool"


def record(app: str, version: str = "1.0", install: str = "i") -> EventRecord:
    moment = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0) - dt.timedelta(days=2)
    return EventRecord(
        moment, moment, app, version, "run", install, "s", "linux", "6.1", "x86_64",
        "cpython", "3.12", "", "", "DE", "{}", "native",
    )  # fmt: skip


def test_footfall_app_remove_deletes_the_apps_unloaded_and_quarantined_events_and_releases(tmp_path: Path) -> None:
    """Without a running server, `footfall app remove` works on the data directory itself."""
    data = tmp_path / "data"
    subprocess.run(footfall_command("app", "add", REMOVED, "--data", str(data)), check=True, timeout=120)
    subprocess.run(footfall_command("app", "add", KEPT, "--data", str(data)), check=True, timeout=120)
    store = DuckDBStore(data / "footfall.duckdb")
    try:
        store.write([record(REMOVED, install=f"{n:032x}") for n in range(20)]).result(timeout=60)
        release = StoreOperations(store).public_snapshot(
            REMOVED, PublicPolicy.from_settings(Settings(data)), snapshot_folder(data)
        )
        assert release
    finally:
        store.close()
    log = data / "log"
    (log / "quarantine").mkdir(parents=True)
    segment = log / "00000000000000000001-00-0000test.seg"  # as a server stopped before loading it left it
    segment.write_bytes(b"".join(encode(r) for r in (record(REMOVED), record(KEPT, install="k"), record(REMOVED))))
    (log / "quarantine" / segment.name).write_bytes(encode(record(REMOVED)) + b"not json\n")
    assert (snapshot_folder(data) / REMOVED).is_dir()

    removed = subprocess.run(
        footfall_command("app", "remove", REMOVED, "--yes", "--data", str(data)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert removed.returncode == 0, removed.stderr
    assert not (snapshot_folder(data) / REMOVED).exists()
    assert not [p for p in log.glob("*.seg") if REMOVED.encode() in p.read_bytes()]
    assert (log / "quarantine" / segment.name).read_text() == "not json\n"  # undecodable: kept for an operator
    store = DuckDBStore(data / "footfall.duckdb")
    try:
        assert store.query("SELECT app, install FROM events").rows == [(KEPT, "k")]  # loaded, not lost
    finally:
        store.close()


def test_a_failed_seed_is_tried_again_not_remembered_as_empty(tmp_path: Path) -> None:
    """Seen (review 6): a seed that failed was cached as "no values" for ever, so the field took
    a whole new cap's worth of values on top of those the store already held."""
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    try:
        store.add_app(REMOVED)
        store.write([record(REMOVED, f"1.{n}") for n in range(5)]).result(timeout=60)
        guard = CardinalityGuard(store, max_values=5, seed_retry_seconds=0)
        store.query("ALTER TABLE events RENAME TO events_aside")  # the seed's query now fails
        try:
            assert guard.fold(record(REMOVED, "2.0")).app_version == "2.0"  # unknown, so let through
        finally:
            store.query("ALTER TABLE events_aside RENAME TO events")
        assert guard.fold(record(REMOVED, "2.1")).app_version == OTHER  # the store's five are read now
        assert guard.fold(record(REMOVED, "1.3")).app_version == "1.3"
    finally:
        store.close()


def test_forgetting_an_app_empties_its_slots_and_only_its_slots(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    try:
        guard = CardinalityGuard(store, max_values=1)
        for app in (REMOVED, KEPT):
            store.add_app(app)
            assert guard.fold(record(app, "1.0")).app_version == "1.0"
            assert guard.fold(record(app, "1.1")).app_version == OTHER
        guard.forget_app(REMOVED)
        assert guard.fold(record(REMOVED, "1.1")).app_version == "1.1"
        assert guard.fold(record(KEPT, "1.1")).app_version == OTHER
    finally:
        store.close()
