"""The ingest log: group-synced appends, rotation, crash recovery, and the exactly-once bulk load.

The loads through the `EventStore` contract run on each store (`on_every_store`). These stay on
DuckDB only, and why:
- a group of segments refused whole: DuckDB loads a group in one transaction; the contract's
  default, which ClickHouse keeps, is one per segment;
- a backlog in one commit: it reads DuckDB's `loaded_segments` times;
- a line missing a NOT NULL column, refused and quarantined: ClickHouse fills an omitted column
  with its default, so it stores the line;
- a kill -9 during a bulk load: its subprocess opens the DuckDB file;
- a kill -9 while appending: its thousands of events sit in hundreds of small segments, each a
  few round trips to ClickHouse (30 s there); each segment's exactly-once load runs on both above.
The rest test the log itself (appends, seals, backpressure, recovery): its store only takes
what it is given.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from footfall.server.errors import Backpressure, SegmentRefused, StoreUnavailable, UsageError
from footfall.server.ingest import segments
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.pipeline import props_text
from footfall.server.ingest.segments import SegmentLog, decode, encode, recover, sealed_segments, segment_id
from footfall.server.stores.base import EventRecord, EventStore
from footfall.server.stores.duckdb import DuckDBStore
from tests.conftest import wait_until
from tests.stores import StoreFactory, markers, on_every_store, reopen

APP = "log-tool"
START = dt.datetime(2026, 11, 30, 12, 0)


def record(i: int, session: str = "", install: str = "", app: str = APP, marker: str = "") -> EventRecord:
    moment = START + dt.timedelta(seconds=i)
    # Compact, as the collector writes them: ClickHouse's bulk load stores a line's props as written.
    props = props_text({"marker": marker or f"m{i}", "text": 'ü "quoted" \\ back'})
    return EventRecord(
        moment, moment, app, "1.0", "command", install, session, "linux", "6.1", "x86_64", "cpython", "3.12",
        "", "", "DE", props, "native",
    )  # fmt: skip


def test_a_record_survives_the_line_format() -> None:
    original = record(7, session="ab" * 32, install="cd" * 32)
    assert decode(encode(original)) == original
    assert encode(original).count(b"\n") == 1


def test_appends_from_many_threads_share_syncs_and_all_land(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path / "log", max_age=60)
    futures = []
    lock = threading.Lock()

    def client(base: int) -> None:
        for i in range(50):
            future = log.append([record(base + i)])
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=client, args=(t * 1000,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for future in futures:
        future.result(timeout=30)
    log.close()
    assert log.stats.appended_events == 400
    assert log.stats.syncs < 400  # appends waiting together share one fdatasync
    lines = b"".join(p.read_bytes() for p in sealed_segments(tmp_path / "log")).splitlines()
    assert sorted(json.loads(decode(line).props)["marker"] for line in lines) == sorted(
        f"m{t * 1000 + i}" for t in range(8) for i in range(50)
    )


def test_segments_rotate_by_size_and_age(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    log = SegmentLog(folder, max_bytes=1000, max_age=60)
    for i in range(20):
        log.append([record(i)]).result(timeout=10)
    by_size = sealed_segments(folder)
    assert len(by_size) >= 3 and all(p.stat().st_size >= 1000 for p in by_size)
    log.close()
    aged = SegmentLog(folder, worker=1, max_age=0.2)
    aged.append([record(99)]).result(timeout=10)
    assert aged.wait_sealed(timeout=10)  # sealed by age alone, with no further append
    ids = [segment_id(p) for p in sealed_segments(folder)]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert any(i.split("-")[1] == "01" for i in ids)
    aged.close()
    assert not list(folder.glob("*.open"))


def test_recovery_cuts_a_torn_line_and_seals(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    whole = encode(record(1)) + encode(record(2))
    (folder / "00000000000000000001-00-aaaaaaaa.open").write_bytes(whole + encode(record(3))[:40])
    (folder / "00000000000000000002-00-bbbbbbbb.open").write_bytes(b'{"time": "20')  # nothing whole
    (sealed,) = recover(folder)
    assert sealed.read_bytes() == whole
    assert sorted(p.name for p in folder.iterdir()) == ["00000000000000000001-00-aaaaaaaa.seg"]


@pytest.fixture
def store(store_factory: StoreFactory, tmp_path: Path) -> Iterator[EventStore]:
    opened = store_factory(tmp_path)
    opened.add_app(APP)
    yield opened
    opened.close()  # again: most tests close it themselves


RUN_STARTS = "SELECT count(*) FROM events WHERE run_start"  # SQL both engines take (no FILTER on ClickHouse 18.16)


def _stored(store: EventStore, sql: str = "SELECT count(*) FROM events") -> object:
    return store.query(sql).rows[0][0]


@on_every_store
def test_a_segment_loads_exactly_once_even_after_a_restart(tmp_path: Path, store: EventStore) -> None:
    log = SegmentLog(tmp_path / "log", max_age=60)
    log.append([record(i, session=f"s{i % 3}") for i in range(30)]).result(timeout=10)
    log.close()
    (segment,) = sealed_segments(tmp_path / "log")
    assert store.load_segment(segment, segment_id(segment)) == 30
    assert store.load_segment(segment, segment_id(segment)) is None
    store.close()
    reopened = reopen(store)
    try:
        assert reopened.load_segment(segment, segment_id(segment)) is None
        assert _stored(reopened) == 30
    finally:
        reopened.close()


@on_every_store
def test_a_bulk_load_stores_what_the_row_path_stores(
    tmp_path: Path, store: EventStore, store_factory: StoreFactory
) -> None:
    """Derived columns (install and session keys, where runs start) equal the per-row writer's."""
    records = [
        record(i, session=["ab" * 32, "not-hex-session", ""][i % 3], install=["cd" * 32, "", "zz"][i % 3])
        for i in range(60)
    ]
    (tmp_path / "rows").mkdir()
    row_store = store_factory(tmp_path / "rows")
    row_store.add_app(APP)
    row_store.write(records[:30]).result(timeout=30)
    row_store.write(records[30:]).result(timeout=30)
    log = SegmentLog(tmp_path / "log", max_bytes=1, max_age=60)  # one segment per append
    log.append(records[:30]).result(timeout=10)
    log.append(records[30:]).result(timeout=10)
    log.close()
    for path in sealed_segments(tmp_path / "log"):
        store.load_segment(path, segment_id(path))
    sql = (
        "SELECT time, received, app, app_version, name, install, session, os, country, props, source,"
        " install_key, session_key, run_start FROM events ORDER BY time"
    )
    try:
        assert store.query(sql).rows == row_store.query(sql).rows
        assert _stored(store, RUN_STARTS) == 2  # runs span segments
    finally:
        row_store.close()
        store.close()


def remove_an_app(store: EventStore, app: str) -> None:
    """An app whose events were acknowledged, then removed before they loaded. (A ClickHouse
    store refuses only apps it knows removed: one it has not seen yet may be another
    collector's new app, docs/stores.md; DuckDB's registry is the whole truth.)"""
    store.add_app(app)
    store.remove_app(app)


@on_every_store
def test_lines_of_a_removed_app_are_dropped_and_a_bad_segment_is_refused(tmp_path: Path, store: EventStore) -> None:
    folder = tmp_path / "log"
    log = SegmentLog(folder, max_bytes=1, max_age=60)
    log.append([record(1), record(2, app="gone-tool")]).result(timeout=10)
    log.close()
    remove_an_app(store, "gone-tool")
    (segment,) = sealed_segments(folder)
    assert store.load_segment(segment, segment_id(segment)) == 1
    bad = folder / "00000000000000000009-00-cccccccc.seg"
    bad.write_bytes(encode(record(3)) + b'{"time": "not a time"}\n')
    with pytest.raises(SegmentRefused):
        store.load_segment(bad, segment_id(bad))
    assert _stored(store) == 1
    # The refused segment was not recorded as loaded: a fixed copy under the same id loads.
    bad.write_bytes(encode(record(3)))
    assert store.load_segment(bad, segment_id(bad)) == 1
    store.close()


@on_every_store
def test_several_segments_load_in_one_transaction_exactly_once(tmp_path: Path, store: EventStore) -> None:
    """A backlog loads in one pass (a load costs mostly per pass): each id with its own count,
    the lines of a removed app dropped, and no segment of the group loaded twice."""
    folder = tmp_path / "log"
    log = SegmentLog(folder, max_bytes=1, max_age=60)  # one segment per append
    log.append([record(i, session="ab" * 32) for i in range(10)]).result(timeout=10)
    log.append([record(10 + i, session="ab" * 32) for i in range(5)]).result(timeout=10)
    log.append([record(20, app="gone-tool")]).result(timeout=10)
    log.close()
    remove_an_app(store, "gone-tool")
    first, second, removed = sealed_segments(folder)
    assert store.load_segment(first, segment_id(first)) == 10  # already loaded before the group
    group = [(path, segment_id(path)) for path in (first, second, removed)]
    assert store.load_segments(group) == {segment_id(first): None, segment_id(second): 5, segment_id(removed): 0}
    assert store.load_segments(group) == dict.fromkeys(segment_id(path) for path, _ in group)
    assert _stored(store) == 15
    assert _stored(store, RUN_STARTS) == 1  # one run across segments
    store.close()


def test_a_group_with_a_bad_segment_is_refused_whole(tmp_path: Path, store: EventStore) -> None:
    folder = tmp_path / "log"
    good = folder / "00000000000000000001-00-aaaaaaaa.seg"
    bad = folder / "00000000000000000002-00-bbbbbbbb.seg"
    folder.mkdir()
    good.write_bytes(encode(record(1)))
    bad.write_bytes(encode(record(2)) + b'{"time": "not a time"}\n')
    with pytest.raises(SegmentRefused):
        store.load_segments([(good, segment_id(good)), (bad, segment_id(bad))])
    assert _stored(store) == 0  # nothing of the group, and neither id recorded: each loads alone later
    assert store.load_segment(good, segment_id(good)) == 1
    store.close()


APPENDER = """
import sys
from pathlib import Path
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.segments import SegmentLog
from tests.server.test_segments import record

log = SegmentLog(Path(sys.argv[1]), max_bytes=4096, max_age=0.05)
i = 0
while True:
    batch = [record(i + k, session=f"s{i}", marker=f"m{i + k}") for k in range(5)]
    log.append(batch).result()
    print(" ".join(f"m{i + k}" for k in range(5)), flush=True)
    i += 5
"""


def test_kill_9_while_appending_loses_no_acknowledged_event_and_loads_none_twice(
    tmp_path: Path, store: EventStore
) -> None:
    folder = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    acknowledged: list[str] = []
    command = [sys.executable, "-c", APPENDER, str(folder)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as child:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged.extend(line.split())
            if len(acknowledged) >= 2000:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert len(acknowledged) >= 2000
    recover(folder)
    loaded_twice = sealed_segments(folder)[: len(sealed_segments(folder)) // 2]
    for path in [*sealed_segments(folder), *loaded_twice]:  # half of them offered twice
        store.load_segment(path, segment_id(path))
    stored = markers(store)
    assert len(stored) == len(set(stored))  # none twice
    assert set(acknowledged) <= set(stored)
    store.close()


def test_the_log_folder_and_segments_are_private(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path / "log", max_age=60)
    log.append([record(1)]).result(timeout=10)
    (opened,) = (tmp_path / "log").glob("*" + segments.OPEN_SUFFIX)
    assert opened.stat().st_mode & 0o077 == 0
    assert (tmp_path / "log").stat().st_mode & 0o077 == 0
    log.close()


@on_every_store
def test_the_loader_quarantines_undecodable_lines_and_loads_the_rest(tmp_path: Path, store: EventStore) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    segment = folder / "00000000000000000009-00-cccccccc.seg"
    segment.write_bytes(encode(record(1)) + b'{"time": "not a time"}\n' + encode(record(2)))
    loader = IngestLog(folder, store, 0, 0)
    assert loader.load_ready() == 2
    assert loader.quarantined() == 1
    assert b"".join(p.read_bytes() for p in (folder / "quarantine").iterdir()) == b'{"time": "not a time"}\n'
    assert sealed_segments(folder) == []
    assert _stored(store) == 2
    store.close()


@on_every_store
def test_while_the_store_is_down_the_log_keeps_every_segment(tmp_path: Path, store: EventStore) -> None:
    log = IngestLog(tmp_path / "log", store, 0, 0, segment_age_s=60)
    log.append([record(1), record(2)]).result(timeout=10)
    store.close()
    with pytest.raises(StoreUnavailable):
        log.catch_up()
    assert len(sealed_segments(tmp_path / "log")) == 1  # sealed by the catch-up, kept for later
    log.close()
    reopened = reopen(store)
    try:
        assert IngestLog(tmp_path / "log", reopened, 0, 0).load_ready() == 2
    finally:
        reopened.close()


@on_every_store
def test_a_catch_up_makes_acknowledged_events_visible_at_once(tmp_path: Path, store: EventStore) -> None:
    log = IngestLog(tmp_path / "log", store, 0, 0, segment_age_s=60)  # never sealed by age in the test
    store.barrier = log.catch_up
    log.start()
    try:
        log.append([record(i) for i in range(10)]).result(timeout=10)
        assert _stored(store) == 10  # the query's barrier loaded them
        log.append([record(10)]).result(timeout=10)
        assert _stored(store) == 11
        assert log.backlog()[0] == 0
    finally:
        log.close()
        store.close()


def test_backpressure_refuses_appends_past_the_byte_cap(tmp_path: Path, store: EventStore) -> None:
    log = IngestLog(tmp_path / "log", store, max_bytes=2000, max_age_s=0, segment_bytes=500, segment_age_s=60)
    store.close()  # nothing is loaded: the log only grows
    with pytest.raises(Backpressure) as refused:
        for i in range(100):
            log.append([record(i)]).result(timeout=10)
    assert refused.value.status == 503 and refused.value.retry_after >= 1
    assert "cap" in log.pressure()
    log.close()


LOADER = """
import sys
from pathlib import Path
from footfall.server.ingest.log import IngestLog
from footfall.server.stores.duckdb import DuckDBStore

store = DuckDBStore(Path(sys.argv[1]))
log = IngestLog(Path(sys.argv[2]), store, 0, 0)
print("loading", flush=True)
log.load_ready()
print("loaded", flush=True)
"""


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.5])
def test_kill_9_during_a_bulk_load_loses_nothing_and_loads_nothing_twice(tmp_path: Path, delay: float) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.add_app(APP)
    store.close()
    folder = tmp_path / "log"
    writer = SegmentLog(folder, max_age=60)
    count = 100_000
    for start in range(0, count, 10_000):
        writer.append([record(i, session=f"s{i % 50}") for i in range(start, start + 10_000)]).result(timeout=60)
    writer.close()
    # The writer may have rotated (a segment is sealed at 32 MiB): loads go oldest first, each whole.
    sizes = [len(path.read_bytes().splitlines()) for path in sealed_segments(folder)]
    whole_loads = {sum(sizes[:loaded]) for loaded in range(len(sizes) + 1)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    command = [sys.executable, "-c", LOADER, str(tmp_path / "events.duckdb"), str(folder)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "loading"
        threading.Event().wait(delay)  # somewhere inside the load, or after it
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    reopened = DuckDBStore(tmp_path / "events.duckdb")
    try:
        before = _stored(reopened)
        assert before in whole_loads, (before, sizes)  # a load is one transaction: all of a segment or none
        IngestLog(folder, reopened, 0, 0).load_ready()
        assert _stored(reopened) == count
        assert _stored(reopened, "SELECT count(DISTINCT props) FROM events") == count
        assert _stored(reopened, RUN_STARTS) == 50
        assert sealed_segments(folder) == []
    finally:
        reopened.close()


def test_backpressure_refuses_appends_when_the_oldest_unloaded_event_is_too_old(
    tmp_path: Path, store: EventStore
) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    ten_minutes_ago = time.time_ns() - 600 * 10**9
    (folder / f"{ten_minutes_ago:020d}-00-0000test.seg").write_bytes(encode(record(1)))
    log = IngestLog(folder, store, max_bytes=0, max_age_s=60, segment_age_s=60)
    try:
        assert "over 60 s old" in log.pressure()
        with pytest.raises(Backpressure):
            log.append([record(2)])
        assert log.refused_appends == 1
        log.load_ready()  # the store takes it: the pressure is off at once
        assert log.pressure() == ""
        log.append([record(3)]).result(timeout=10)
    finally:
        log.close()
        store.close()


def test_a_line_the_store_cannot_hold_is_quarantined_and_the_log_goes_on(tmp_path: Path, store: EventStore) -> None:
    """Review: a line that parses but breaks a NOT NULL column failed the insert outside the
    refused-data path, so the loader retried that segment for ever and every report answered 503."""
    folder = tmp_path / "log"
    log = IngestLog(folder, store, 0, 0, segment_age_s=60)
    store.barrier = log.catch_up
    try:
        row = json.loads(encode(record(2)))
        del row["os"]  # valid JSON, but the store's os column is NOT NULL
        first = folder / "00000000000000000001-00-0000test.seg"
        first.write_bytes(encode(record(1)) + json.dumps(row).encode() + b"\n" + encode(record(3)))
        log.append([record(4)]).result(timeout=10)  # acknowledged after the bad segment
        assert _stored(store) == 3  # the query's barrier loaded both segments, less the one line
        assert log.quarantined() == 1 and sealed_segments(folder) == []
    finally:
        log.close()
        store.close()


def test_a_crash_between_quarantining_a_line_and_removing_its_segment_quarantines_it_once(
    tmp_path: Path, store: EventStore
) -> None:
    """Known from the review of issue 9: the quarantine was appended to, so a crash after the copy
    and before the segment's removal copied the line again on restart."""
    folder = tmp_path / "log"
    log = IngestLog(folder, store, 0, 0, segment_age_s=60)
    try:
        row = json.loads(encode(record(1)))
        del row["os"]  # valid JSON, but the store's os column is NOT NULL
        bad = folder / "00000000000000000001-00-0000test.seg"
        bad.write_bytes(json.dumps(row).encode() + b"\n")
        log.load_ready()
        assert log.quarantined() == 1 and not bad.exists()
        bad.write_bytes(json.dumps(row).encode() + b"\n")  # as if the removal had not happened: a crash
        log.load_ready()
        assert log.quarantined() == 1 and not bad.exists()
    finally:
        log.close()
        store.close()


@on_every_store
def test_a_crash_between_writing_the_halves_and_removing_the_whole_loads_each_line_once(
    tmp_path: Path, store: EventStore
) -> None:
    """Review: a crash after one half of a split was written left the whole and that half; the
    whole sorts first and, if it loaded, its lines loaded again with the half."""
    folder = tmp_path / "log"
    folder.mkdir()
    lines = [encode(record(i)) for i in range(6)]
    (folder / "00000000000000000001-00-0000test.seg").write_bytes(b"".join(lines))
    (folder / "00000000000000000001-00-0000test~0.seg").write_bytes(b"".join(lines[:3]))
    log = IngestLog(folder, store, 0, 0)
    try:
        assert log.load_ready() == 6
        assert _stored(store, "SELECT count(DISTINCT props) FROM events") == _stored(store) == 6
    finally:
        log.close()
        store.close()


def test_the_old_spool_is_adopted_and_its_folder_removed(tmp_path: Path, store: EventStore) -> None:
    spool = tmp_path / "spool"
    (spool / "quarantine").mkdir(parents=True)
    (spool / "spool-00000000000000000001-000001.jsonl").write_bytes(encode(record(1)) + encode(record(2)))
    (spool / "quarantine" / "spool-00000000000000000000-000001.jsonl").write_bytes(b"not json\n")
    log = IngestLog(tmp_path / "log", store, 0, 0)
    try:
        assert not spool.exists()
        assert log.load_ready() == 2 and log.quarantined() == 1
    finally:
        log.close()
        store.close()


def test_a_data_directory_whose_path_reads_as_a_pattern_is_refused(tmp_path: Path, store: EventStore) -> None:
    """Review: the store reads a segment by a path it takes as a glob; `d*` matched `d?x` too."""
    with pytest.raises(UsageError, match="must not contain"):
        IngestLog(tmp_path / "data[1]" / "log", store, 0, 0)
    store.close()


FULL_DISK = r"""
import resource, signal, sys
from pathlib import Path
from footfall.server.ingest.segments import SegmentLog
from tests.server.test_segments import record

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (2700, 2700))  # 2,700 bytes: a third append stops one whole line in
log = SegmentLog(Path(sys.argv[1]), max_age=60)
for i in range(0, 60, 3):  # three lines per append: a partial write can leave whole lines behind
    markers = [f"m{i + k}" for k in range(3)]
    try:
        log.append([record(i + k, marker=m) for k, m in enumerate(markers)]).result(timeout=10)
        print("\n".join(f"ok {m}" for m in markers), flush=True)
    except OSError:
        print("\n".join(f"refused {m}" for m in markers), flush=True)
log.close()
"""


def test_a_failed_write_is_neither_acknowledged_nor_stored(tmp_path: Path, store: EventStore) -> None:
    """Review: after a failed write or fdatasync the group's whole lines stayed in the segment and
    were loaded, though every client in the group was refused (and would retry: duplicates)."""
    folder = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(folder)], capture_output=True, text=True, env=env, timeout=120
    )
    answers = dict(line.split()[::-1] for line in done.stdout.split("\n") if line)
    assert "refused" in answers.values() and "ok" in answers.values(), done.stdout + done.stderr
    log = IngestLog(folder, store, 0, 0)
    try:
        log.load_ready()
        assert markers(store) == sorted(m for m, answer in answers.items() if answer == "ok")
    finally:
        log.close()
        store.close()


def test_a_seal_that_fails_is_a_store_unavailable_never_a_crash(tmp_path: Path) -> None:
    """Review: a seal that failed (or timed out) surfaced as a bare OSError or TimeoutError, so a
    report's read-your-writes barrier answered 500 instead of a 503 to retry."""
    folder = tmp_path / "log"
    writer = SegmentLog(folder, max_age=3600)
    try:
        writer.append([record(1)]).result(timeout=10)
        moved = tmp_path / "moved"
        folder.rename(moved)  # the open segment's path is gone: its rename to .seg fails
        with pytest.raises(StoreUnavailable, match="could not seal"):
            writer.seal()
        moved.rename(folder)
    finally:
        writer.close()


def test_a_backlog_loads_in_one_transaction(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.add_app(APP)
    log = IngestLog(tmp_path / "log", store, 0, 0, segment_bytes=1, segment_age_s=60)  # a segment per append
    try:
        for i in range(5):
            log.append([record(i)]).result(timeout=10)
        # The writer seals a full segment just after the append it holds is acknowledged: on a
        # busy machine the fifth may still be sealing here (it failed so, now and then).
        wait_until(lambda: len(sealed_segments(tmp_path / "log")) == 5, 10, "the fifth segment to be sealed")
        log.catch_up()
        assert _stored(store) == 5
        assert _stored(store, "SELECT count(DISTINCT loaded) FROM loaded_segments") == 1  # one commit
        assert log.loaded_segments == 5 and log.loaded_events == 5
        assert not sealed_segments(tmp_path / "log")
    finally:
        log.close()
        store.close()


def test_a_catch_up_loads_what_was_sealed_when_it_began_not_what_ingest_adds_meanwhile(tmp_path: Path) -> None:
    """Under ingest load the loader holds the lock while segments keep sealing: a report's catch-up
    that then loaded everything sealed chased the ingest, for tens of seconds (issue 9)."""
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.add_app(APP)
    log = IngestLog(tmp_path / "log", store, 0, 0, segment_bytes=1, segment_age_s=60)
    try:
        log.append([record(1)]).result(timeout=10)
        with log._lock:  # the loader is busy with an earlier backlog
            reader = threading.Thread(target=log.catch_up)
            reader.start()
            reader.join(0.5)
            assert reader.is_alive()
            log.append([record(2)]).result(timeout=10)  # acknowledged after the read began
        reader.join(30)
        assert _stored(store) == 1
        assert len(sealed_segments(tmp_path / "log")) == 1  # left to the loader
    finally:
        log.close()
        store.close()


def test_closing_an_idle_log_stops_its_loader_at_once(
    tmp_path: Path, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader slept out its idle poll before a close could end it: every shutdown of a server
    (and every test's in-thread server) waited up to IDLE_POLL_S for nothing."""
    from footfall.server.ingest import log as ingest_log

    monkeypatch.setattr(ingest_log, "IDLE_POLL_S", 60.0)  # so a close that waits it out is unmistakable
    log = IngestLog(tmp_path / "log", store, 0, 0, segment_age_s=60)
    log.start()
    log.append([record(1)]).result(timeout=10)
    log.catch_up()  # loaded: the loader is idle, waiting for a seal
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < 10  # generous: it takes milliseconds
    assert _stored(store) == 1
    store.close()
