"""`footfall migrate --from DIR --to clickhouse://HOST:PORT/DB`: a DuckDB data directory's
events and configuration, copied to ClickHouse in batches.

- **What goes.** The apps (with their creation times and time zones), their wire-protocol
  keys (with secret hashes) and schemas, then every event with its derived columns (install
  and session keys, run starts) as they are. Accounts, tokens, secrets and the ingest log stay
  in DIR: serve the ClickHouse store with `--data DIR` to keep using them.
- **Batches.** One per app and UTC day. DuckDB writes the batch's rows as JSON lines itself
  (`DuckDBStore.export_day`); the ClickHouse store inserts them with the batch's id in their
  `segment` column and records the id in `loaded_segments` (`ClickHouseStore.import_batch`).
  A batch's id names the source directory (a random id kept in `DIR/migration.json`), the app,
  the day, how many events the day held and a digest of its rows, so two directories never
  share a batch and a changed day never passes for the copied one.
- **Resumable and idempotent.** A batch already recorded is skipped, so a second run copies
  nothing twice and a run killed midway resumes where it stopped; rows of a batch that was
  inserted but not recorded are deleted and inserted again. A day whose rows changed since it
  was copied (DIR served on after a migration) is copied again whole: the rows and the record
  of its earlier batch are deleted first. A forget served by the new store for an install
  that DIR still holds is undone by such a copy: forget again after the last migration.
- **One install key.** The store remembers the fingerprint of the first install key that
  served it (`check_secrets`); a directory with another key is refused before anything is
  copied, since its hashed ids would split every install in two and put forget out of reach.
- **The source must be stopped.** DuckDB lets no other process open a file that a server
  holds, even read-only, so a running `footfall serve` on DIR is refused with its pid. Events
  the stopped server acknowledged but had not loaded (its ingest log) are loaded first.
- **Temporary files** (a batch's JSON lines: hashed ids) are written inside DIR, which is
  private, and a folder left by a killed run is removed by the next.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from footfall.server.datadir import DataDir
from footfall.server.errors import StoreUnavailable, UsageError
from footfall.server.operator.control import find_server
from footfall.server.settings import check_store, redacted_url

if TYPE_CHECKING:
    from footfall.server.stores.clickhouse import ClickHouseStore
    from footfall.server.stores.duckdb import DuckDBStore

BATCH_PREFIX = "migrate:"  # batch ids never collide with ingest-log segment ids (those are hex)
TEMP_PREFIX = ".migrate-"  # in DIR: a batch being written

# Called after each batch: (events copied so far, events in all).
ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class MigrationResult:
    apps: int
    batches: int
    copied_batches: int  # 0 on a rerun of a finished migration
    events: int  # in the source
    copied_events: int  # by this run
    unstorable_events: int  # at times a ClickHouse DateTime cannot hold: not copied


def batch_id(source: str, app: str, day: str, events: int, digest: str) -> str:
    """`migrate:SOURCE:APP:DAY:EVENTS-DIGEST` (app names hold no colon)."""
    return f"{BATCH_PREFIX}{source}:{app}:{day}:{events}-{digest}"


def source_id(datadir: DataDir) -> str:
    """This directory's id in batch ids, made on its first migration."""
    source = datadir.migration().get("source")
    if not isinstance(source, str) or not source:
        source = secrets.token_hex(6)
        datadir.record_migration(source=source)
    return source


def migrate(source: Path, target: str, progress: ProgressCallback | None = None) -> MigrationResult:
    """Copy the DuckDB store of data directory `source` to the ClickHouse store `target`."""
    if not target.startswith("clickhouse://"):
        raise UsageError(f"--to is a ClickHouse store, clickhouse://HOST:PORT/DATABASE, not {redacted_url(target)!r}")
    check_store(target)
    from footfall.server.stores.clickhouse import parse_url

    parse_url(target)  # a malformed URL is refused before anything else is looked at
    datadir = DataDir(source)
    if not datadir.database.is_file():
        raise UsageError(f"{source} is not a Footfall data directory: it holds no {datadir.database.name}")
    running = find_server(datadir)
    if running is not None:
        raise UsageError(
            f"footfall serve is running on {source} ({running}); DuckDB lets no other process read its"
            " file: stop it, then migrate"
        )
    from footfall.server.ingest.log import IngestLog
    from footfall.server.settings import Settings
    from footfall.server.stores.clickhouse import ClickHouseStore
    from footfall.server.stores.duckdb import DuckDBStore

    origin = DuckDBStore(datadir.database)
    try:
        settings = Settings(data=datadir.path)
        ingest_log = IngestLog(datadir.log, origin, settings.max_log_bytes, settings.max_log_age_s)
        try:
            ingest_log.catch_up()  # what the stopped server acknowledged but had not loaded
        finally:
            ingest_log.close()
        try:
            destination = ClickHouseStore(target)
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"cannot migrate to {redacted_url(target)}: {exc.message}") from None
        try:
            destination.check_secrets(datadir.secrets().fingerprint, str(datadir.secrets_file))
            for leftover in datadir.path.glob(TEMP_PREFIX + "*"):  # a killed run's
                shutil.rmtree(leftover, ignore_errors=True)
            with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=datadir.path) as folder:
                result = _copy(origin, destination, source_id(datadir), Path(folder), progress)
            # From now on a command on DIR without --store would read a DuckDB file of the past.
            datadir.record_migration(target=redacted_url(target))
            return result
        finally:
            destination.close()
    finally:
        origin.close()


def _copy(
    origin: DuckDBStore,
    destination: ClickHouseStore,
    source: str,
    folder: Path,
    progress: ProgressCallback | None,
) -> MigrationResult:
    apps = origin.list_apps()
    for app in apps:
        destination.import_app(app.name, app.created)
        if app.timezone != destination.timezone(app.name):
            destination.set_timezone(app.name, app.timezone)
        schema = origin.schema(app.name)
        if schema is not None and destination.schema(app.name) != schema:
            destination.set_schema(app.name, schema)
    for (kind, key), (app_name, secret) in sorted(origin.registry.keys.items()):
        if destination.app_for_key(kind, key) != (app_name, secret):
            destination.add_key(app_name, kind, key, secret)
    from footfall.server.stores.clickhouse import EARLIEST_TIME, LATEST_TIME

    # A DateTime holds whole days from EARLIEST_TIME up to LATEST_TIME's day (18.16 would silently
    # wrap a time outside, where DuckDB holds it): those days are left out, and counted.
    every_day = origin.export_days()
    days = [entry for entry in every_day if EARLIEST_TIME.date() <= entry[1] < LATEST_TIME.date()]
    total = sum(entry[2] for entry in days)
    unstorable = sum(entry[2] for entry in every_day) - total
    done = copied_events = copied_batches = 0
    prefix = f"{BATCH_PREFIX}{source}:"
    recorded = destination.loaded_batches(prefix)  # skipped without exporting them again
    earlier: dict[tuple[str, str], set[str]] = {}  # (app, day) -> its batches recorded so far
    for batch in recorded:
        app_name, day_text, _ = batch.removeprefix(prefix).split(":")
        earlier.setdefault((app_name, day_text), set()).add(batch)
    if progress is not None:
        progress(0, total)
    batch_file = folder / "batch.json"
    for app_name, day, count, digest in days:
        batch = batch_id(source, app_name, day.isoformat(), count, digest)
        stored = None
        if batch not in recorded:
            # The day changed since it was copied: its earlier rows and records go (rows first: a
            # crash between the two leaves a record whose rows are gone, deleted again next run),
            # then it is copied whole.
            for stale in sorted(earlier.get((app_name, day.isoformat()), set())):
                destination.delete_batch(stale)
            origin.export_day(app_name, day, batch_file, batch)
            stored = destination.import_batch(batch_file, batch)
        if stored is not None:
            copied_batches += 1
            copied_events += stored
        done += count
        if progress is not None:
            progress(done, total)
    return MigrationResult(len(apps), len(days), copied_batches, total, copied_events, unstorable)
