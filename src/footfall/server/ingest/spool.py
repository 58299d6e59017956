"""The collector's spool: where acknowledged events wait while the store is unavailable.

An event is acknowledged only once it is committed to the store or appended here
and fsynced. Each append is one file (`spool-<time>-<seq>.jsonl`, one record per
line); a background replayer writes them to the store in order once it is back,
and deletes each file after its commit.

A line that cannot be replayed (it does not decode, or the store refuses it as data)
is moved to `quarantine/`, counted, and reported by /readyz and /metrics: it is never
retried ahead of good data, and never silently deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from footfall.server.errors import StoreError, StoreUnavailable
from footfall.server.stores.base import EVENT_COLUMNS, EventRecord, EventStore

TIME_FIELDS = ("time", "received")
log = logging.getLogger("footfall.spool")


def _encode(record: EventRecord) -> str:
    row = {c: getattr(record, c) for c in EVENT_COLUMNS}
    for field in TIME_FIELDS:
        row[field] = row[field].isoformat()
    return json.dumps(row, separators=(",", ":"))


def _decode(line: str) -> EventRecord:
    row = json.loads(line)
    for field in TIME_FIELDS:
        row[field] = dt.datetime.fromisoformat(row[field])
    return EventRecord(**row)


class EventSpool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.quarantine = directory / "quarantine"
        self._committed: set[str] = set()  # files stored whose deletion failed
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sequence = 0
        self._refused = False  # an append was refused for room, and no replay has freed any since

    def files(self) -> list[Path]:
        try:
            return sorted(self.directory.glob("spool-*.jsonl"))
        except OSError:
            return []

    def size(self) -> int:
        total = 0
        for path in self.files():
            with contextlib.suppress(OSError):  # replayed and deleted meanwhile
                total += path.stat().st_size
        return total

    def depth(self) -> int:
        """Events waiting (counted by lines)."""
        count = 0
        for path in self.files():
            try:
                with path.open("rb") as handle:
                    count += sum(1 for _ in handle)
            except OSError:
                pass
        return count

    @property
    def over_limit(self) -> bool:
        return self._refused or self.size() >= self.max_bytes

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the spool still: no append, replay or forget runs until the block ends. A backup
        copies the store and the spool inside it, so each spooled event is in exactly one copy."""
        with self._lock:
            yield

    def append(self, records: Sequence[EventRecord]) -> None:
        """Append and fsync; raises StoreUnavailable when the spool is full or unwritable."""
        data = "".join(_encode(r) + "\n" for r in records).encode()
        with self._lock:
            if self.size() + len(data) > self.max_bytes:
                self._refused = True
                raise StoreUnavailable("the store is unavailable and the spool is full")
            self._sequence += 1
            path = self.directory / f"spool-{time.time_ns():020d}-{self._sequence:06d}.jsonl"
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._sync_directory(self.directory)  # the new file's name is durable too
            except OSError as exc:
                raise StoreUnavailable(f"the store is unavailable and the spool failed: {exc}") from exc
        log.warning("store unavailable; events spooled", extra={"event": "spooled", "count": len(records)})

    def replay(self, store: EventStore) -> int:
        """Write spooled files to the store, oldest first; stop at the first unavailability.

        Lines that cannot be stored go to quarantine. Returns how many events were stored.
        Each file is read, stored and deleted under the spool's lock, so a forget (which
        rewrites files under the same lock) never races a replay of the lines it removes.
        """
        replayed = 0
        for path in self.files():
            if path.name in self._committed:
                continue  # stored already; only its deletion failed
            with self._lock:
                stored = self._replay_file(path, store)
            if stored is None:
                break
            replayed += stored
        if replayed:
            log.info("spooled events stored", extra={"event": "replayed", "count": replayed})
        return replayed

    def _replay_file(self, path: Path, store: EventStore) -> int | None:
        """How many of the file's events were stored; None when the store or the disk failed."""
        try:
            lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line]
        except FileNotFoundError:
            return 0  # forgotten meanwhile
        except OSError:
            return None
        records, bad = [], []
        for line in lines:
            try:
                records.append(_decode(line))
            except (ValueError, TypeError, KeyError):
                bad.append(line)
        records = [r for r in records if store.has_app(r.app)]  # an app removed meanwhile takes its events along
        try:
            # Before the store write, so a failure here leaves everything to retry; written whole
            # (not appended), so retrying while the store is down never repeats a line.
            self._quarantine(path.name.replace(".jsonl", "-undecodable.jsonl"), bad, mode="w")
        except OSError:
            return None
        try:
            # No timeout: the writer resolves every future, and a write given up on could still
            # commit later, and then be replayed twice.
            refused = store.write(records).result()
        except StoreError:
            return None
        try:
            self._quarantine(path.name, [_encode(records[index]) for index in refused])
        except OSError:
            # The rest is committed: replaying the file again would count it twice. These lines
            # could never be stored; say so loudly rather than double-count everything else.
            log.error("spooled events could not be stored or quarantined", extra={"count": len(refused)})
        try:
            path.unlink(missing_ok=True)
        except OSError:
            # Committed, but still here (a read-only remount?): never replay it again in this process.
            self._committed.add(path.name)
            log.error("a replayed spool file could not be deleted", extra={"file": str(path)})
        self._refused = False
        return len(records) - len(refused)

    def _quarantine(self, name: str, lines: list[str], mode: str = "a") -> None:
        if not lines:
            return
        self.quarantine.mkdir(parents=True, exist_ok=True)
        path = self.quarantine / name
        with path.open(mode, encoding="utf-8", errors="backslashreplace") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        log.error(
            "spooled events could not be stored and were quarantined",
            extra={"event": "quarantined", "count": len(lines), "file": str(path)},
        )

    def quarantined(self) -> int:
        """Events in quarantine (counted by lines), for /readyz and /metrics."""
        count = 0
        for path in sorted(self.quarantine.glob("*.jsonl")) if self.quarantine.is_dir() else ():
            with contextlib.suppress(OSError), path.open("rb") as handle:
                count += sum(1 for _ in handle)
        return count

    def forget(self, app: str, install_hash: str) -> int:
        """Rewrite every spool and quarantine file without the events of one (hashed) install;
        returns how many went.

        A replay that read a file before this ran may still write its old lines to the store:
        the caller deletes from the store after this returns, and a replay holds this spool's
        lock from reading a file to deleting it, so that order is safe (see `Ingestor.forget`).
        """
        if not install_hash:
            return 0
        removed = self._remove_lines({"app": app, "install": install_hash})
        if removed:
            log.info("forgotten events removed from the spool", extra={"event": "spool_forget", "count": removed})
        return removed

    def forget_app(self, app: str) -> int:
        """Rewrite every spool and quarantine file without the lines of `app`; returns how many went.

        For a removed app: its acknowledged-but-unstored events and its quarantined lines go
        with it, so an app later created under that name never receives them.
        """
        removed = self._remove_lines({"app": app})
        if removed:
            log.info(
                "a removed app's events deleted from the spool", extra={"event": "spool_forget_app", "count": removed}
            )
        return removed

    def _remove_lines(self, fields: dict[str, str]) -> int:
        """Rewrite every spool and quarantine file without the lines whose record has all `fields`.

        A first pass reads without the lock: appends only ever add new files, so the usual
        answer, no file holds such a line, blocks nobody. Each file that does is read again and
        rewritten atomically (a fsynced temporary file, then `os.replace`) under the spool's
        lock; a file left empty is deleted. A damaged line that does not decode is kept: it
        names nothing we can be sure of, and replay deals with it.
        """
        # Lines are compact JSON (`_encode`), so a substring test finds candidates cheaply;
        # each candidate is then decoded and compared exactly.
        markers = [f"{json.dumps(key)}:{json.dumps(value)}" for key, value in fields.items()]

        def matches(line: str) -> bool:
            if not all(marker in line for marker in markers):
                return False
            try:
                row = json.loads(line)
            except ValueError:
                return False
            return isinstance(row, dict) and all(row.get(key) == value for key, value in fields.items())

        def split(path: Path) -> tuple[list[str], int] | None:
            """The lines to keep and how many go, or None when the file is gone."""
            try:
                lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line]
            except OSError:
                return None  # replayed and deleted meanwhile
            kept = [line for line in lines if not matches(line)]
            return kept, len(lines) - len(kept)

        quarantined = sorted(self.quarantine.glob("*.jsonl")) if self.quarantine.is_dir() else []
        candidates = [path for path in self.files() + quarantined if (found := split(path)) is not None and found[1]]
        removed = 0
        with self._lock:
            for path in candidates:
                found = split(path)
                if found is None or not found[1]:
                    continue
                kept, gone = found
                try:
                    if kept:
                        self._rewrite(path, "".join(line + "\n" for line in kept).encode())
                    else:
                        path.unlink(missing_ok=True)
                    self._sync_directory(path.parent)
                except OSError as exc:
                    raise StoreUnavailable(f"the spool could not be rewritten: {exc}") from exc
                removed += gone
        return removed

    def _rewrite(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".forget-{path.name}.tmp")  # outside the `spool-*.jsonl` glob
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @staticmethod
    def _sync_directory(folder: Path) -> None:
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class SpoolReplayer:
    """A daemon thread that replays the spool every `interval` seconds while it holds anything."""

    def __init__(self, spool: EventSpool, store: EventStore, interval: float = 1.0) -> None:
        self._spool, self._store, self._interval = spool, store, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="footfall.spool", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._spool.files():
                    self._spool.replay(self._store)
            except Exception as exc:  # a replay that fails must not end the replayer for good
                log.error("spool replay failed; retrying", extra={"error": type(exc).__name__})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._spool.files():
            self._spool.replay(self._store)  # a last try before the store closes
