"""The offline spool: batches the collector could not take wait on disk for a later run.

One JSON file per batch in `<config dir>/footfall/<app>.spool/`, capped by file
count, total size and age; the oldest files go first when a cap is reached. A
process claims a file by renaming it before sending, so two runs never send the
same file. Every disk error is swallowed: a full disk loses the batch, never the host.

Forget requests wait beside them (`forget-*.json`), with no age limit: a forget that
expired would leave the user's events on the collector. A forget is written ahead: the
request is on disk, claimed by the process that forgets, before the install id changes;
it is deleted once the collector took it, or released for any later run to send.
`purge_install` deletes every batch that carries a forgotten install id.

The folder is 0700 and its files 0600. An older version left them 0755 and 0644, and
`os.makedirs(mode=...)` leaves an existing folder as it is, so the first time a run looks
into or writes to the spool it tightens the folder and every file in it, best effort.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

MAX_FILES = 200
MAX_TOTAL_BYTES = 2 * 1024 * 1024
MAX_AGE_S = 7 * 24 * 3600
STALE_CLAIM_S = 600  # a claim older than this was left by a process that died
MAX_FORGET_FILES = 100  # forget requests waiting; each is one small file
BATCH_PREFIX = "batch-"
CLAIM_MARK = ".claimed-"  # then the claiming process id
FORGET_PREFIX = "forget-"


class Spool:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._tightened = False

    def _tighten(self) -> None:
        """Once a run: the folder 0700 and each file in it 0600, whatever an older version left."""
        if self._tightened:
            return
        try:
            os.chmod(self.directory, 0o700)
            names = os.listdir(self.directory)
        except OSError:
            return  # absent (nothing to protect yet), not ours or read-only: try again next time
        self._tightened = True
        for name in names:
            path = os.path.join(self.directory, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(path) and os.path.isfile(path):
                    os.chmod(path, 0o600)

    def _entries(self, prefix: str = BATCH_PREFIX) -> list[tuple[str, float, int]]:
        self._tighten()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        entries = []
        for name in names:
            if not name.startswith(prefix):
                continue
            path = os.path.join(self.directory, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            entries.append((path, info.st_mtime, info.st_size))
        entries.sort(key=lambda entry: entry[0])  # names start with the time: oldest first
        return entries

    def save(self, batch: dict[str, Any]) -> bool:
        data = json.dumps(batch, separators=(",", ":")).encode()
        if len(data) > MAX_TOTAL_BYTES:
            return False
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._tighten()
            self._make_room(len(data))
            self._write(BATCH_PREFIX, data)
        except OSError:
            return False
        return True

    def _write(self, prefix: str, data: bytes, claimed: bool = False) -> str:
        """Write one file atomically; returns its path. `claimed`: as if this process had
        already claimed it for sending, so no other run sends it until released (or stale)."""
        name = f"{prefix}{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}.json"
        if claimed:
            name += f"{CLAIM_MARK}{os.getpid()}"
        tmp = os.path.join(self.directory, "." + name)
        try:
            # Private: a batch holds the install id, all anyone needs to ask a collector to forget it.
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                handle.write(data)
                if prefix == FORGET_PREFIX:  # a write-ahead forget must survive a crash; batches may not
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, os.path.join(self.directory, name))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full disk leaves no half-written file behind
            raise
        return os.path.join(self.directory, name)

    def _make_room(self, incoming: int) -> None:
        entries = self._entries()
        now = time.time()
        total = sum(size for _, _, size in entries)
        for path, mtime, size in list(entries):
            too_many = len(entries) >= MAX_FILES
            too_big = total + incoming > MAX_TOTAL_BYTES
            if not (too_many or too_big or now - mtime > MAX_AGE_S):
                continue
            with contextlib.suppress(OSError):
                os.unlink(path)
            entries.remove((path, mtime, size))
            total -= size

    def replay(self, send: Callable[[dict[str, Any]], bool], prefix: str = BATCH_PREFIX) -> int:
        """Send spooled batches (or forget requests) oldest first; stop at the first failure.

        Returns how many went.
        """
        sent = 0
        now = time.time()
        for path, mtime, _ in self._entries(prefix):
            if prefix == BATCH_PREFIX and now - mtime > MAX_AGE_S:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            if CLAIM_MARK in path and now - mtime < STALE_CLAIM_S:
                continue  # another process is sending it
            claimed = f"{path.split(CLAIM_MARK)[0]}{CLAIM_MARK}{os.getpid()}"
            try:
                os.rename(path, claimed)
                os.utime(claimed)  # the claim's age starts now
                with open(claimed, "rb") as handle:
                    batch = json.loads(handle.read())
            except (OSError, ValueError):
                continue
            if not send(batch):
                original = path.split(CLAIM_MARK)[0]
                with contextlib.suppress(OSError):
                    os.rename(claimed, original)
                    os.utime(original, (mtime, mtime))
                break
            with contextlib.suppress(OSError):
                os.unlink(claimed)
            sent += 1
        return sent

    def __len__(self) -> int:
        return len(self._entries())

    # -- forgetting ---------------------------------------------------------------------

    def purge_install(self, install: str) -> int:
        """Delete every spooled batch that carries `install`, claimed ones too; returns how many."""
        purged = 0
        for path, _, _ in self._entries():
            try:
                with open(path, "rb") as handle:
                    batch = json.loads(handle.read())
            except (OSError, ValueError):
                continue  # claimed and sent meanwhile, or damaged (replay drops it)
            context = batch.get("context") if isinstance(batch, dict) else None
            if isinstance(context, dict) and context.get("install") == install:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    purged += 1
        return purged

    def hold_forget(self, request: dict[str, Any]) -> str | None:
        """Save a forget request before anything it covers changes: the write-ahead step.

        The file is written already claimed by this process, so no other run sends it before
        this one has stopped sending the id; `release` or `discard` it next. Returns its path,
        or None when it cannot be saved (the disk is full or read-only, or `MAX_FORGET_FILES`
        requests already wait).
        """
        if len(self.pending_forgets()) >= MAX_FORGET_FILES:
            return None
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._tighten()
            return self._write(FORGET_PREFIX, json.dumps(request, separators=(",", ":")).encode(), claimed=True)
        except OSError:
            return None

    def release(self, held: str) -> None:
        """Hand a held request to whichever run next reaches the collector.

        If even the rename fails, the claim goes stale after `STALE_CLAIM_S` and a later
        run sends it all the same: the request is never lost once held.
        """
        with contextlib.suppress(OSError):
            os.rename(held, held.split(CLAIM_MARK)[0])

    def discard(self, held: str) -> None:
        """Delete a held request the collector took (or refused for good)."""
        with contextlib.suppress(OSError):
            os.unlink(held)

    def pending_forgets(self) -> list[str]:
        return [path for path, _, _ in self._entries(FORGET_PREFIX)]

    def replay_forgets(self, send: Callable[[dict[str, Any]], bool]) -> int:
        """Send waiting forget requests oldest first; stop at the first failure."""
        return self.replay(send, FORGET_PREFIX)
