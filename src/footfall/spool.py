"""The offline spool: batches the collector could not take wait on disk for a later run.

One JSON file per batch in `<config dir>/footfall/<app>.spool/`, capped by file
count, total size and age; the oldest files go first when a cap is reached. A
process claims a file by renaming it before sending, so two runs never send the
same file. Every disk error is swallowed: a full disk loses the batch, never the host.
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


class Spool:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _entries(self) -> list[tuple[str, float, int]]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        entries = []
        for name in names:
            if not name.startswith("batch-"):
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
            os.makedirs(self.directory, exist_ok=True)
            self._make_room(len(data))
            name = f"batch-{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}.json"
            tmp = os.path.join(self.directory, "." + name)
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, os.path.join(self.directory, name))
        except OSError:
            return False
        return True

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

    def replay(self, send: Callable[[dict[str, Any]], bool]) -> int:
        """Send spooled batches oldest first; stop at the first failure. Returns how many went."""
        sent = 0
        now = time.time()
        for path, mtime, _ in self._entries():
            if now - mtime > MAX_AGE_S:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            if ".claimed-" in path and now - mtime < STALE_CLAIM_S:
                continue  # another process is sending it
            claimed = f"{path.split('.claimed-')[0]}.claimed-{os.getpid()}"
            try:
                os.rename(path, claimed)
                os.utime(claimed)  # the claim's age starts now
                with open(claimed, "rb") as handle:
                    batch = json.loads(handle.read())
            except (OSError, ValueError):
                continue
            if not send(batch):
                original = path.split(".claimed-")[0]
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
