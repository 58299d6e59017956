"""The ingest log: every acknowledged event is first a line in an fsynced segment file.

A request is acknowledged once its records' bytes are on disk: `SegmentLog.append`
returns a future that one writer thread resolves after the `fdatasync` that covers
them. Appends that arrive while a sync is in flight share the next one (group sync),
so the cost of a sync is paid once per group, not once per request.

Segments live in one folder per data directory (`DATA/log/`):

    <created, ns>-<worker>-<nonce>.open     the segment being written (one per writer)
    <created, ns>-<worker>-<nonce>.seg      sealed: complete, never written again

A segment is sealed when it reaches `max_bytes` or `max_age` seconds, and on close.
Its name (without the suffix) is its id, unique across workers and restarts, and
sorts in creation order. The loader moves sealed segments into the store, records
their ids in the same transaction as their rows (exactly once), and deletes them.

After a crash an `.open` segment may end in a torn line that was never acknowledged
(its sync had not returned): `recover` cuts it at the last complete line and seals it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from footfall.server.errors import StoreUnavailable
from footfall.server.stores.base import EVENT_COLUMNS, EventRecord

OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".seg"
TIME_FIELDS = ("time", "received")
DEFAULT_MAX_BYTES = 32 * 1024 * 1024  # a segment this large is sealed: one bulk load
DEFAULT_MAX_AGE_S = 0.5  # ... or this old: bounds how long an event waits to be loaded
MAX_GROUP_BYTES = 8 * 1024 * 1024  # one write + sync covers at most this much


# json.dumps's own escaping of a str (ASCII: non-ASCII escaped), so lines built from parts are
# byte for byte what json.dumps(row, separators=(",", ":")) gave, and any str encodes, even a
# lone surrogate the pipeline should have refused.
_quote = json.encoder.encode_basestring_ascii
_SHARED_COLUMNS = EVENT_COLUMNS[1:-2]  # between time and props: what one batch's events of one name share
assert EVENT_COLUMNS[0] == "time" and EVENT_COLUMNS[-2:] == ("props", "source")


class LineTemplate:
    """The log lines of records that differ only in their time and props: the rest is encoded once.

    A line is one JSON object, the columns of `EVENT_COLUMNS` in order, times in ISO 8601.
    """

    __slots__ = ("_middle", "_tail")

    def __init__(self, record: EventRecord) -> None:
        fields = []
        for column in _SHARED_COLUMNS:
            value = getattr(record, column)
            fields.append(f',"{column}":{_quote(value.isoformat() if column in TIME_FIELDS else value)}')
        self._middle = "".join(fields) + ',"props":'
        self._tail = f',"source":{_quote(record.source)}}}\n'

    def line(self, time: dt.datetime, props: str) -> str:
        """One line (ASCII text): encode a batch's lines joined, once."""
        return '{"time":' + _quote(time.isoformat()) + self._middle + _quote(props) + self._tail


def encode(record: EventRecord) -> bytes:
    """One record as one JSON line (the columns of `EVENT_COLUMNS`, times in ISO 8601)."""
    return LineTemplate(record).line(record.time, record.props).encode()


def encode_lines(records: Sequence[EventRecord]) -> bytes:
    """Records as log lines."""
    return "".join(LineTemplate(record).line(record.time, record.props) for record in records).encode()


def decode(line: bytes | str) -> EventRecord:
    row = json.loads(line)
    for field in TIME_FIELDS:
        row[field] = dt.datetime.fromisoformat(row[field])
    return EventRecord(**row)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a large write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def segment_id(path: Path) -> str:
    return path.name.removesuffix(SEALED_SUFFIX).removesuffix(OPEN_SUFFIX)


def sealed_segments(folder: Path) -> list[Path]:
    """The sealed segments, oldest first."""
    try:
        return sorted(folder.glob("*" + SEALED_SUFFIX))
    except OSError:
        return []


def sync_directory(folder: Path) -> None:
    """Make a create, rename or delete in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(folder: Path, worker: int | None = None) -> list[Path]:
    """Seal the `.open` segments a crashed writer left (all, or one worker's), cut at the last whole line.

    Only bytes that an fsync covered were acknowledged, and a sync covers whole lines, so
    a torn last line was never acknowledged and is dropped.
    """
    sealed = []
    for path in sorted(folder.glob("*" + OPEN_SUFFIX)):
        if worker is not None and path.name.split("-")[1] != f"{worker:02d}":
            continue
        data = path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with open(path, "r+b") as handle:
                handle.truncate(len(whole))
                os.fsync(handle.fileno())
        if whole:
            target = path.with_suffix(SEALED_SUFFIX)
            os.replace(path, target)
            sealed.append(target)
        else:
            path.unlink()
    if sealed:
        sync_directory(folder)
    return sealed


@dataclasses.dataclass
class LogStats:
    """What /metrics shows of the writer: appends, syncs and their latency."""

    appended_events: int = 0
    appended_bytes: int = 0
    appends: int = 0  # requests written; appends / syncs is the mean group size
    syncs: int = 0
    sync_seconds: float = 0.0  # summed
    sealed: int = 0


class _Append:
    __slots__ = ("data", "events", "future")

    def __init__(self, data: bytes, events: int) -> None:
        self.data = data
        self.events = events
        self.future: Future[None] = Future()


_STOP = object()


class _Seal:
    """A request to seal the open segment now (so its events can be loaded at once)."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[None] = Future()


class SegmentLog:
    """One writer's segments: appends, group syncs, rotation. Thread-safe; one per process."""

    def __init__(
        self,
        folder: Path,
        worker: int = 0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.folder = folder
        self.worker = worker
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.stats = LogStats()
        self._sealed_event = threading.Event()  # set after each seal: wakes a waiting loader
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        recover(folder, worker)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._size = 0
        self._closed = False
        self._closing = threading.Lock()  # the closed flag and the queue's last item change together
        self._sealing = False
        self._thread = threading.Thread(target=self._run, name=f"footfall-log-{worker}", daemon=True)
        self._thread.start()

    # -- appends ------------------------------------------------------------------

    def append(self, records: Sequence[EventRecord]) -> Future[None]:
        """Queue records; the future resolves once they are fsynced (or fails with the OSError)."""
        return self.append_bytes(encode_lines(records), len(records))

    def append_bytes(self, data: bytes, events: int) -> Future[None]:
        """Queue already-encoded lines (each ending in a newline)."""
        item = _Append(data, events)
        if not data:
            item.future.set_result(None)
            return item.future
        with self._closing:  # never queued behind the stop, where no one would answer it
            if self._closed:
                item.future.set_exception(OSError("the ingest log is closed"))
                return item.future
            self._queue.put(item)
        return item.future

    def seal(self, timeout: float = 10.0) -> None:
        """Seal the open segment once what is queued before this call is written."""
        request = _Seal()
        with self._closing:
            if self._closed:
                return  # closing seals the open segment itself
            self._queue.put(request)
        try:
            request.future.result(timeout)
        except (TimeoutError, OSError) as exc:  # a stuck or failing disk: a 503 to retry, never a 500
            raise StoreUnavailable(f"the ingest log could not seal its segment: {exc or 'timed out'}") from exc

    def pending(self) -> bool:
        """Whether a segment is open (holds appended lines not yet sealed); it stays open until
        its sealed file exists, so a caller that sees False finds every line in a sealed file."""
        return self._fd is not None or self._sealing

    def wait_sealed(self, timeout: float) -> bool:
        """Block until a segment is sealed (or timeout); for the loader in this process."""
        sealed = self._sealed_event.wait(timeout)
        self._sealed_event.clear()
        return sealed

    def close(self) -> None:
        """Write what is queued, seal the open segment, stop."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()
        self._sealed_event.set()  # a loader waiting for a seal ends its wait: none will come

    # -- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group: list[_Append] = []
            size = 0
            try:
                item = self._queue.get(timeout=self._idle_timeout())
            except queue.Empty:
                self._seal_if_old()
                continue
            seal: _Seal | None = None
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, _Seal):
                    seal = item
                    break
                assert isinstance(item, _Append)
                group.append(item)
                size += len(item.data)
                if size >= MAX_GROUP_BYTES:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._write_group(group)
            if seal is not None:
                try:
                    self._seal()
                except OSError as exc:
                    seal.future.set_exception(exc)
                else:
                    seal.future.set_result(None)
            self._seal_if_old()
        with contextlib.suppress(OSError):
            self._seal()

    def _idle_timeout(self) -> float | None:
        if self._fd is None:
            return None  # nothing open: wait for an append
        return max(0.0, self._opened + self.max_age - time.monotonic())

    def _write_group(self, group: list[_Append]) -> None:
        data = b"".join(item.data for item in group)
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            write_all(self._fd, data)
            started = time.perf_counter()
            os.fdatasync(self._fd)
            self.stats.sync_seconds += time.perf_counter() - started
        except OSError as exc:
            # Nothing of this group is acknowledged, so nothing of it may be stored: the segment is
            # cut back to what earlier syncs covered (whole lines all), then sealed, and the next
            # group starts a new file. A client retries what it was refused.
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
            with contextlib.suppress(OSError):
                if self._fd is not None:
                    os.ftruncate(self._fd, self._size)
                    os.fsync(self._fd)
            with contextlib.suppress(OSError):
                self._seal()
            return
        self._size += len(data)
        self.stats.syncs += 1
        self.stats.appends += len(group)
        self.stats.appended_bytes += len(data)
        self.stats.appended_events += sum(item.events for item in group)
        for item in group:
            item.future.set_result(None)
        if self._size >= self.max_bytes:
            self._seal()

    def _open(self) -> None:
        name = f"{time.time_ns():020d}-{self.worker:02d}-{secrets.token_hex(4)}{OPEN_SUFFIX}"
        self._path = self.folder / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        sync_directory(self.folder)  # the new name survives a crash with its synced bytes
        self._opened = time.monotonic()
        self._size = 0

    def _seal_if_old(self) -> None:
        if self._fd is not None and time.monotonic() - self._opened >= self.max_age:
            with contextlib.suppress(OSError):  # retried at the next group or timeout
                self._seal()

    def _seal(self) -> None:
        if self._fd is None or self._path is None:
            return
        fd, path = self._fd, self._path
        self._sealing = True  # until the sealed file exists, `pending()` sends callers through the queue
        self._fd = self._path = None
        try:
            os.close(fd)
            if self._size:
                os.replace(path, path.with_suffix(SEALED_SUFFIX))
                sync_directory(self.folder)
            else:
                path.unlink()
        finally:
            self._sealing = False
        self.stats.sealed += 1
        self._sealed_event.set()
