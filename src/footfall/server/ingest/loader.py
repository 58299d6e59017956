"""The loader: moves sealed ingest-log segments into the store, oldest first, and deletes them.

Each segment is one bulk load in one transaction, recorded by id with its rows, so a
crash at any point loads nothing twice and loses nothing (`EventStore.load_segment`).
While the store is unavailable the log grows and the loader retries with backoff.

A segment the store refuses as data is split once: lines that do not decode go to
`quarantine/`, the others are written to a new segment that is loaded in its place. If
the store refuses that too, the whole segment is quarantined. Either way it is never
retried ahead of good data, and every quarantined line is counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from footfall.server.errors import SegmentRefused, StoreUnavailable
from footfall.server.ingest.segments import (
    SEALED_SUFFIX,
    SegmentLog,
    decode,
    sealed_segments,
    segment_id,
    sync_directory,
)
from footfall.server.stores.base import EventStore

log = logging.getLogger("footfall.loader")
RETRY_FIRST_S = 0.2  # backoff while the store is unavailable: doubled up to RETRY_MAX_S
RETRY_MAX_S = 30.0
IDLE_POLL_S = 1.0  # sealed segments of other workers are looked for at least this often
SPLIT_MARK = "-split"


class SegmentLoader:
    def __init__(self, folder: Path, store: EventStore, own_log: SegmentLog | None = None) -> None:
        self.folder = folder
        self.quarantine = folder / "quarantine"
        self.store = store
        self.own_log = own_log
        self.loaded_events = 0
        self.loaded_segments = 0
        self.quarantined_lines = 0
        self.last_error = ""
        self._lock = threading.Lock()  # one load at a time: the thread's, or a catch-up's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="footfall-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def load_ready(self) -> int:
        """Load every sealed segment now; returns the events stored. Raises StoreUnavailable."""
        stored = 0
        with self._lock:
            for path in sealed_segments(self.folder):
                stored += self._load(path)
        return stored

    def catch_up(self) -> None:
        """Seal this process's open segment and load everything sealed: read-your-writes for reports."""
        if self.own_log is not None:
            self.own_log.seal()
        self.load_ready()

    def _load(self, path: Path) -> int:
        try:
            events = self.store.load_segment(path, segment_id(path))
        except SegmentRefused as exc:
            log.warning("%s", exc)
            self.last_error = str(exc)
            return self._split(path)
        if events is not None:
            self.loaded_events += events
            self.loaded_segments += 1
        self._remove(path)
        return events or 0

    def _split(self, path: Path) -> int:
        if SPLIT_MARK in path.name:  # refused even with every undecodable line out: keep it aside whole
            lines = path.read_bytes().splitlines(keepends=True)
            self._quarantine(path.name, lines)
            self._remove(path)
            return 0
        good, bad = [], []
        for line in path.read_bytes().splitlines(keepends=True):
            try:
                decode(line)
            except (ValueError, TypeError, KeyError):
                bad.append(line)
            else:
                good.append(line)
        self._quarantine(path.name, bad)
        replacement = path.with_name(segment_id(path) + SPLIT_MARK + SEALED_SUFFIX)
        if good:
            temporary = replacement.with_suffix(".tmp")
            with open(temporary, "wb") as handle:
                handle.write(b"".join(good))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, replacement)
        self._remove(path)
        return self._load(replacement) if good else 0

    def _quarantine(self, name: str, lines: list[bytes]) -> None:
        if not lines:
            return
        self.quarantine.mkdir(mode=0o700, exist_ok=True)
        with open(self.quarantine / name, "ab") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        self.quarantined_lines += len(lines)

    def _remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sync_directory(self.folder)

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                self.load_ready()
            except StoreUnavailable as exc:
                self.last_error = str(exc)
                log.warning("store unavailable, the log keeps the events: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except Exception:  # the loader must outlive any failure; the next round retries
                log.exception("loading the ingest log failed")
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            self.last_error = ""
            if self.own_log is not None:
                self.own_log.wait_sealed(IDLE_POLL_S)
            else:
                self._stop.wait(IDLE_POLL_S)

    def depth(self) -> tuple[int, int, float]:
        """Unloaded segments, their bytes, and the age in seconds of the oldest (0 when none)."""
        segments = sealed_segments(self.folder)
        size = 0
        oldest = 0.0
        for path in segments:
            with contextlib.suppress(OSError):
                size += path.stat().st_size
        if segments:
            created_ns = int(segments[0].name.split("-")[0])
            oldest = max(0.0, time.time() - created_ns / 1e9)
        return len(segments), size, oldest
