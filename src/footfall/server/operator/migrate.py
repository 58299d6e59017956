"""`footfall migrate --from DIR --to clickhouse://HOST:PORT/DB`: a DuckDB data directory's
events and configuration, copied to ClickHouse in batches.

- **What goes.** The apps (with their creation times and time zones), their wire-protocol
  keys (with secret hashes) and schemas, then every event with its derived columns (install
  and session keys, run starts) as they are. Accounts, tokens, secrets and the ingest log stay
  in DIR: serve the ClickHouse store with `--data DIR` to keep using them.
- **Batches.** One per app and UTC day. DuckDB writes the batch's rows as JSON lines itself
  (`DuckDBStore.export_day`); the ClickHouse store inserts them with the batch's id in their
  `segment` column and records the id in `loaded_segments` (`ClickHouseStore.import_batch`).
- **Resumable and idempotent.** A batch already recorded is skipped, so a second run copies
  nothing twice and a run killed midway resumes where it stopped; rows of a batch that was
  inserted but not recorded are deleted and inserted again. Events that reach DIR after a
  day's batch was copied are not copied by a later run: migrate once the old server stopped.
- **The source must be stopped.** DuckDB lets no other process open a file that a server
  holds, even read-only, so a running `footfall serve` on DIR is refused with its pid. Events
  the stopped server acknowledged but had not loaded (its ingest log) are loaded first.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from footfall.server.datadir import DataDir
from footfall.server.errors import StoreUnavailable, UsageError
from footfall.server.operator.control import find_server
from footfall.server.settings import check_store

if TYPE_CHECKING:
    from footfall.server.stores.clickhouse import ClickHouseStore
    from footfall.server.stores.duckdb import DuckDBStore

BATCH_PREFIX = "migrate:"  # batch ids never collide with ingest-log segment ids (those are hex)

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


def batch_id(app: str, day: str) -> str:
    return f"{BATCH_PREFIX}{app}:{day}"


def migrate(source: Path, target: str, progress: ProgressCallback | None = None) -> MigrationResult:
    """Copy the DuckDB store of data directory `source` to the ClickHouse store `target`."""
    if not target.startswith("clickhouse://"):
        raise UsageError(f"--to is a ClickHouse store, clickhouse://HOST:PORT/DATABASE, not {target!r}")
    check_store(target)
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
            raise StoreUnavailable(f"cannot migrate to {target.split('@')[-1]}: {exc.message}") from None
        try:
            return _copy(origin, destination, progress)
        finally:
            destination.close()
    finally:
        origin.close()


def _copy(origin: DuckDBStore, destination: ClickHouseStore, progress: ProgressCallback | None) -> MigrationResult:
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
    total = sum(count for _, _, count in days)
    unstorable = sum(count for _, _, count in every_day) - total
    done = copied_events = copied_batches = 0
    recorded = destination.loaded_batches(BATCH_PREFIX)  # skipped without exporting them again
    if progress is not None:
        progress(0, total)
    with tempfile.TemporaryDirectory(prefix="footfall-migrate-") as folder:
        batch_file = Path(folder) / "batch.json"
        for app_name, day, count in days:
            batch = batch_id(app_name, day.isoformat())
            if batch not in recorded:
                origin.export_day(app_name, day, batch_file, batch)
                stored = destination.import_batch(batch_file, batch)
            else:
                stored = None
            if stored is not None:
                copied_batches += 1
                copied_events += stored
            done += count
            if progress is not None:
                progress(done, total)
    return MigrationResult(len(apps), len(days), copied_batches, total, copied_events, unstorable)
