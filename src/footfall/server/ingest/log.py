"""The ingest log of one data directory: appends, the loader, backpressure, and upkeep.

`IngestLog` is the one way in. The pipeline appends records (`append`) and the
collector acknowledges once they are fsynced; the loader thread moves sealed segments
into the store, oldest first, one bulk load each, and deletes them. Each load records
the segment's id with its rows in one transaction, so a crash at any point loads
nothing twice and loses nothing (`EventStore.load_segment`). While the store is
unavailable the log grows and the loader retries with backoff; past `max_bytes` or
`max_age` of unloaded data, appends are refused (`Backpressure`, a 503 with
Retry-After), so nothing is acknowledged that could not be kept.

A segment the store refuses as data is cut in halves, each a new segment loaded in its
place, until every refused line stands alone; those go to `quarantine/`. So one bad
line costs about log2(lines) extra loads, fails no other line, is never retried ahead
of good data, and is counted. The halves' ids derive from the segment's, so a crash
midway still loads each line once.

Reads see every acknowledged event: `catch_up` seals this process's open segment and
loads everything sealed; the store calls it before each report query (its `barrier`).

With `footfall serve --workers N` the owner's log (the one with a store) also waits for
the ingest workers' segments: `request_seals` asks each live worker to seal its open
segment now, and `catch_up`, `forget` and `paused` wait (at most `PEER_SEAL_WAIT_S`)
until every worker segment that was open when they were called is sealed. A worker's
log has no store (`store=None`): no loader, no upkeep of the folder; its backpressure is
decided from the whole folder, counted again every `FOLDER_STAT_INTERVAL_S`. Each worker
holds `DIR/run/worker-NN.lock` (flock) while it writes, so the owner recovers a worker's
`.open` segment only once that worker is gone (`hold_worker_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

from footfall.server.errors import Backpressure, SegmentRefused, StoreUnavailable, UsageError
from footfall.server.ingest.segments import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_BYTES,
    OPEN_SUFFIX,
    SEALED_SUFFIX,
    LogStats,
    SegmentLog,
    recover,
    sealed_segments,
    segment_id,
    sync_directory,
    write_all,
)
from footfall.server.stores.base import EventRecord, EventStore

log = logging.getLogger("footfall.log")
RETRY_FIRST_S = 0.2  # backoff while the store is unavailable: doubled up to RETRY_MAX_S
RETRY_MAX_S = 30.0
IDLE_POLL_S = 1.0  # sealed segments are looked for at least this often
HALF_MARK = "~"  # "<id>~0" and "<id>~1" are the halves of segment "<id>"; "~" sorts after the id
BACKPRESSURE_RETRY_S = 5
LEGACY_SPOOL = "spool"  # the folder the collector kept events in before the log; moved in on start
GLOB_CHARACTERS = "*?[]{}"
RUN_FOLDER = "run"  # beside the log folder: the workers' locks (DataDir.run)
LOAD_GROUP_BYTES = 64 * 1024 * 1024  # a backlog loads this much per transaction: a load costs mostly per pass
PEER_SEAL_WAIT_S = 2.0  # a read or forget waits at most this long for the workers' open segments to seal
PEER_SEAL_POLL_S = 0.002
FOLDER_STAT_INTERVAL_S = 0.5  # a worker counts the folder's unloaded bytes at most this often


class IngestLog:
    def __init__(
        self,
        folder: Path,
        store: EventStore | None,
        max_bytes: int,
        max_age_s: float,
        worker: int = 0,
        segment_bytes: int = DEFAULT_MAX_BYTES,
        segment_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.folder = folder
        self.quarantine = folder / "quarantine"
        self.store = store
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        if any(char in str(folder) for char in GLOB_CHARACTERS):
            # The store reads a segment by path, and its reader takes a path as a pattern.
            raise UsageError(f"the data directory's path must not contain any of {GLOB_CHARACTERS}: {folder}")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if store is not None:  # the owner tidies the folder; a worker never does (a rewrite may be under way)
            adopt_legacy_spool(folder.parent / LEGACY_SPOOL, folder)
            for leftover in [*folder.glob(".*.tmp"), *folder.glob("quarantine/.*.tmp")]:
                leftover.unlink(missing_ok=True)  # a rewrite a crash interrupted: its original is intact
            recover_idle_workers(folder, worker)
        self.writer = SegmentLog(folder, worker, segment_bytes, segment_age_s)
        # With --workers N, set by the owner: asks every live worker to seal its open segment now,
        # and names the live workers, whose open segments reads and forgets wait for.
        self.request_seals: Callable[[], None] | None = None
        self.live_workers: Callable[[], Collection[int]] = frozenset
        self.peer_stats = LogStats()  # the workers' appends and syncs, summed from what they report
        self.peer_refused_appends = 0
        self._refreshed_at = 0.0  # monotonic time of the last count of the folder
        self.loaded_events = 0
        self.loaded_segments = 0
        self.refused_appends = 0
        self.last_error = ""
        self._backlog = (0, 0, 0.0)  # unloaded segments, bytes, creation time of the oldest (epoch s)
        self._appended_at_refresh = 0  # the writer's appended bytes when the backlog was counted
        self._lock = threading.Lock()  # one load or rewrite at a time: the thread's, a catch-up's, a forget's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_backlog()

    # -- appends ------------------------------------------------------------------

    def append(self, records: Sequence[EventRecord]) -> Future[None]:
        """Queue records for the log; raises Backpressure when the unloaded log is past a cap."""
        self.check_room()
        return self.writer.append(records)

    def append_encoded(self, lines: bytes, events: int) -> Future[None]:
        """`append` for records already encoded as log lines (`segments.LineTemplate`)."""
        self.check_room()
        return self.writer.append_bytes(lines, events)

    def check_room(self) -> None:
        if why := self.pressure():
            self.refused_appends += 1
            raise Backpressure(f"the collector is catching up ({why}); retry later", BACKPRESSURE_RETRY_S)

    def pressure(self) -> str:
        """Why appends are refused now, or "" (for /readyz too)."""
        _, size, oldest = self._backlog
        size += self.writer.stats.appended_bytes - self._appended_at_refresh  # appended since it was counted
        if self.max_bytes and size >= self.max_bytes:
            return f"{size:,} bytes wait to be stored, the cap is {self.max_bytes:,}"
        if self.max_age_s and oldest and time.time() - oldest >= self.max_age_s:
            return f"the oldest event waiting to be stored is over {self.max_age_s:g} s old"
        return ""

    # -- loading -----------------------------------------------------------------

    def start(self) -> None:
        if self.store is None:  # a worker: the owner loads; a thread counts the folder (never the event loop)
            self._thread = threading.Thread(target=self._count_folder, name="footfall-log-count", daemon=True)
        else:
            self._thread = threading.Thread(target=self._run, name="footfall-loader", daemon=True)
        self._thread.start()

    def _count_folder(self) -> None:
        """A worker's backlog: it has no loader to count the folder after each load, so it counts
        every FOLDER_STAT_INTERVAL_S. In a thread: after a long outage the folder holds thousands
        of segments, and counting them on the event loop would stall every request."""
        while not self._stop.wait(FOLDER_STAT_INTERVAL_S):
            try:
                self._refresh_backlog()
            except Exception:  # the count must outlive any failure: the next round retries
                log.exception("counting the ingest log failed")

    def close(self) -> None:
        """Seal and stop writing, stop the loader, and make a last attempt to load everything."""
        self._stop.set()  # first: the writer's close wakes the loader, which must then see it
        self.writer.close()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(StoreUnavailable):
            self.load_ready()

    def load_ready(self, due: Collection[Path] | None = None) -> int:
        """Load every sealed segment now (only those in `due`, if given), up to `LOAD_GROUP_BYTES`
        of them per transaction; returns the events stored. Raises StoreUnavailable."""
        if self.store is None:
            return 0
        stored = 0
        with self._lock:
            try:
                group: list[Path] = []
                group_bytes = 0
                for path in sealed_segments(self.folder):
                    if due is not None and path not in due:
                        continue
                    group.append(path)
                    with contextlib.suppress(OSError):
                        group_bytes += path.stat().st_size
                    if group_bytes >= LOAD_GROUP_BYTES:
                        stored += self._load_group(group)
                        group, group_bytes = [], 0
                if group:
                    stored += self._load_group(group)
            finally:
                self._refresh_backlog()
        return stored

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Seal the open segment, then hold every load (and rewrite) until the block ends: for a
        backup, which copies the store and the log at one moment."""
        self.seal_everywhere()
        with self._lock:
            yield

    def catch_up(self) -> None:
        """Make every event acknowledged so far visible in the store (read-your-writes). The
        segments sealed now hold them all: later ones are the loader's, so a report under load
        waits for the backlog it found, not for the ingest that goes on meanwhile."""
        self.seal_everywhere()
        if due := sealed_segments(self.folder):
            self.load_ready(due=set(due))

    def seal_everywhere(self, strict: bool = False) -> None:
        """Seal this process's open segment, and wait until every worker's segment that is open now
        is sealed: then every event acknowledged before this call is in a sealed file.

        Never under `_lock`: a worker's seal needs nothing from this process, but the wait is
        bounded (`PEER_SEAL_WAIT_S`) anyway, for a worker that hangs or dies meanwhile. Past it, a
        read goes on without that worker's latest events (`strict=False`: a report a moment
        stale), while a forget or an app's removal (`strict=True`) raises StoreUnavailable (a
        503 to retry): it must never say done while an acknowledged event it names could still load.
        """
        if self.writer.pending():
            self.writer.seal()
        if self.request_seals is None:
            return
        live = {f"{worker:02d}" for worker in self.live_workers()}
        own = f"{self.writer.worker:02d}"
        waiting = []
        for path in self.folder.glob("*" + OPEN_SUFFIX):
            number = _worker_of(path)
            if number in live:
                waiting.append(path)
            elif number != own and number.isdigit() and not recover_worker(self.folder, int(number), 0.0):
                waiting.append(path)  # a worker that just died, being recovered by the supervisor now
        if not waiting:
            return
        self.request_seals()
        deadline = time.monotonic() + PEER_SEAL_WAIT_S
        while any(path.exists() for path in waiting):
            if time.monotonic() > deadline:
                if strict:
                    raise StoreUnavailable("a worker did not seal its open segment in time; try again")
                log.warning("a worker did not seal its open segment in time; reading without its latest events")
                return
            time.sleep(PEER_SEAL_POLL_S)

    def _load_group(self, paths: list[Path]) -> int:
        """Load `paths` in one transaction; one at a time (`_load`) when there is one, while a split
        is under way (halves exist: `_load` keeps a whole from loading beside its halves), or when the
        store refuses the group as data (to find the bad lines)."""
        assert self.store is not None  # only the owner loads
        if len(paths) == 1 or any(self.folder.glob("*" + HALF_MARK + "*")):
            return sum(self._load(path) for path in paths)
        try:
            counts = self.store.load_segments([(path, segment_id(path)) for path in paths])
        except SegmentRefused as exc:
            log.warning("%s; loading its segments one at a time", exc)
            return sum(self._load(path) for path in paths)
        for path in paths:
            if (events := counts[segment_id(path)]) is not None:
                self.loaded_events += events
                self.loaded_segments += 1
            self._remove(path)
        return sum(events or 0 for events in counts.values())

    def _load(self, path: Path) -> int:
        if list(path.parent.glob(glob.escape(segment_id(path)) + HALF_MARK + "*")):
            # A split a crash interrupted: its halves exist, so the whole must not load beside them.
            return self._bisect(path)
        assert self.store is not None  # only the owner loads
        try:
            events = self.store.load_segment(path, segment_id(path))
        except SegmentRefused as exc:
            log.warning("%s", exc)
            return self._bisect(path)
        if events is not None:
            self.loaded_events += events
            self.loaded_segments += 1
        self._remove(path)
        return events or 0

    def _bisect(self, path: Path) -> int:
        """Load a refused segment's halves in its place; a refused single line goes to quarantine."""
        lines = path.read_bytes().splitlines(keepends=True)
        if len(lines) <= 1:
            self._quarantine(path.name, lines)
            self._remove(path)
            return 0
        middle = len(lines) // 2
        halves = [path.with_name(f"{segment_id(path)}{HALF_MARK}{i}{SEALED_SUFFIX}") for i in (0, 1)]
        for half, part in zip(halves, (lines[:middle], lines[middle:]), strict=True):
            _write_atomically(half, b"".join(part))
        self._remove(path)  # only once both halves are durable
        return sum(self._load(half) for half in halves)

    def _quarantine(self, name: str, lines: list[bytes]) -> None:
        if not lines:
            return
        self.quarantine.mkdir(mode=0o700, exist_ok=True)
        # Written whole under the segment's own name, never appended: a crash before the segment
        # is removed quarantines it again on restart, and the copy replaces itself.
        _write_atomically(self.quarantine / name, b"".join(lines))
        log.warning("lines the store would not take were quarantined", extra={"count": len(lines)})

    def _remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sync_directory(self.folder)

    def _refresh_backlog(self) -> None:
        self._appended_at_refresh = self.writer.stats.appended_bytes
        self._refreshed_at = time.monotonic()
        segments = sealed_segments(self.folder)
        counted = segments
        if self.store is None:  # a worker: every worker's open segment is unloaded too
            with contextlib.suppress(OSError):
                counted = sorted([*segments, *self.folder.glob("*" + OPEN_SUFFIX)])
        size = 0
        for path in counted:
            with contextlib.suppress(OSError):
                size += path.stat().st_size
        oldest = int(counted[0].name.split("-")[0]) / 1e9 if counted else 0.0
        self._backlog = (len(segments), size, oldest)

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                self.load_ready()
            except Exception as exc:  # the loader must outlive any failure: the next round retries
                self.last_error = str(exc)
                if isinstance(exc, StoreUnavailable):
                    log.warning("the store is unavailable; the log keeps the events: %s", exc)
                else:
                    log.exception("loading the ingest log failed")
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            self.last_error = ""
            self.writer.wait_sealed(IDLE_POLL_S)

    # -- what /metrics and /readyz show -------------------------------------------

    def backlog(self) -> tuple[int, int, float]:
        """Unloaded sealed segments, their bytes, and the age in seconds of the oldest."""
        count, size, oldest = self._backlog
        return count, size, (time.time() - oldest if oldest else 0.0)

    def quarantined(self) -> int:
        """Lines in quarantine."""
        count = 0
        for path in sorted(self.quarantine.glob("*")) if self.quarantine.is_dir() else ():
            with contextlib.suppress(OSError), path.open("rb") as handle:
                count += sum(1 for _ in handle)
        return count

    # -- removals ------------------------------------------------------------------

    def forget(self, app: str, install_hash: str) -> int:
        """Remove one (hashed) install's lines from the segments not yet loaded and the quarantine.

        The caller then deletes from the store. Both happen under the loader's lock (this
        method takes it; the caller's store delete follows a catch-up), so no load can bring
        a removed line back.
        """
        if not install_hash:
            return 0
        return self._remove_lines({"app": app, "install": install_hash})

    def forget_app(self, app: str) -> int:
        """Remove a removed app's lines, so an app later created under its name never gets them."""
        return self._remove_lines({"app": app})

    def _remove_lines(self, fields: dict[str, str]) -> int:
        """Rewrite every unloaded segment and quarantine file without the lines whose record has all `fields`.

        The open segment is sealed first, so every line is in a file this can rewrite. Lines are
        compact JSON, so a substring test finds candidates; each is then decoded and compared.
        A damaged line that does not decode is kept: it names nothing we can be sure of.
        """
        markers = [
            f"{json.dumps(key)}:{json.dumps(value, ensure_ascii=False)}".encode() for key, value in fields.items()
        ]

        def matches(line: bytes) -> bool:
            if not all(marker in line for marker in markers):
                return False
            try:
                row = json.loads(line)
            except ValueError:
                return False
            return isinstance(row, dict) and all(row.get(key) == value for key, value in fields.items())

        self.seal_everywhere(strict=True)
        removed = 0
        with self._lock:
            quarantined = sorted(self.quarantine.glob("*")) if self.quarantine.is_dir() else []
            for path in [*sealed_segments(self.folder), *quarantined]:
                try:
                    lines = path.read_bytes().splitlines(keepends=True)
                except FileNotFoundError:
                    continue
                kept = [line for line in lines if not matches(line)]
                if len(kept) == len(lines):
                    continue
                try:
                    if kept:
                        _write_atomically(path, b"".join(kept))
                    else:
                        path.unlink(missing_ok=True)
                        sync_directory(path.parent)
                except OSError as exc:
                    raise StoreUnavailable(f"the ingest log could not be rewritten: {exc}") from exc
                removed += len(lines) - len(kept)
            self._refresh_backlog()
        if removed:
            log.info("events removed from the ingest log", extra={"count": removed})
        return removed


def _worker_of(path: Path) -> str:
    """The worker number in a segment's name (`<created>-<worker>-<nonce>`), as written."""
    parts = path.name.split("-")
    return parts[1] if len(parts) > 2 else ""


def worker_lock_path(folder: Path, worker: int) -> Path:
    return folder.parent / RUN_FOLDER / f"worker-{worker:02d}.lock"


def hold_worker_lock(folder: Path, worker: int, timeout_s: float) -> int | None:
    """An fd holding worker `worker`'s lock (released when closed or when the process ends),
    or None when another process still held it after `timeout_s`.

    A worker holds its lock while it writes segments; the owner takes it before it recovers
    that worker's `.open` segment, so it never seals a file that a live process still appends to.
    """
    path = worker_lock_path(folder, worker)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def recover_worker(folder: Path, worker: int, timeout_s: float) -> bool:
    """Seal the `.open` segments worker `worker` left, once no process holds its lock; False if one
    still did after `timeout_s` (then its segment is left for that worker, or the next start)."""
    fd = hold_worker_lock(folder, worker, timeout_s)
    if fd is None:
        return False
    try:
        recover(folder, worker)
    finally:
        os.close(fd)
    return True


def recover_idle_workers(folder: Path, own: int) -> None:
    """Recover the open segments of other workers that no longer run (after a crash of every process,
    or a restart with fewer workers), so their acknowledged events load."""
    numbers = {_worker_of(path) for path in folder.glob("*" + OPEN_SUFFIX)} - {f"{own:02d}"}
    for number in sorted(numbers):
        if number.isdigit():
            recover_worker(folder, int(number), 0.0)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")  # outside the segments' glob
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    sync_directory(path.parent)


def adopt_legacy_spool(spool: Path, folder: Path) -> None:
    """Move the files of the collector's former spool (same line format) into the log as sealed
    segments, its quarantine into the log's, and remove the spool's folders once empty."""
    if not spool.is_dir():
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in sorted(spool.glob("spool-*.jsonl")):
        _, created, sequence = path.stem.split("-")
        os.replace(path, folder / f"{created}-99-spool{sequence}{SEALED_SUFFIX}")
    legacy_quarantine = spool / "quarantine"
    if legacy_quarantine.is_dir():
        (folder / "quarantine").mkdir(mode=0o700, exist_ok=True)
        for path in legacy_quarantine.iterdir():
            os.replace(path, folder / "quarantine" / path.name)
        with contextlib.suppress(OSError):
            legacy_quarantine.rmdir()
    sync_directory(folder)
    with contextlib.suppress(OSError):  # not empty: an operator's own file stays, and so does the folder
        spool.rmdir()
