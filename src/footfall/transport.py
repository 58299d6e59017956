"""How a batch reaches the collector.

`Transport` is the boundary: one method, `send(batch) -> bool`. `HttpTransport` posts
gzip-compressed JSON to the collector; `MemoryTransport` keeps batches in a list so
that tool authors can test their instrumentation without a network.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

BATCH_PATH = "/v1/batch"
DEFAULT_TIMEOUT_S = 3.0  # per socket operation: connect, send, or wait for a reply


class Transport:
    """Delivers one batch. Returns True when the collector acknowledged it."""

    def send(self, batch: dict[str, Any]) -> bool:
        raise NotImplementedError


class HttpTransport(Transport):
    def __init__(self, endpoint: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = endpoint.rstrip("/") + BATCH_PATH
        self.timeout = timeout

    def send(self, batch: dict[str, Any]) -> bool:
        body = gzip.compress(json.dumps(batch, separators=(",", ":")).encode(), mtime=0)
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
                status: int = response.status
                return 200 <= status < 300
        except urllib.error.HTTPError as exc:
            exc.close()
            return False


class MemoryTransport(Transport):
    """Keeps every batch in `self.batches`; `events` flattens them."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, batch: dict[str, Any]) -> bool:
        with self._lock:
            self.batches.append(batch)
        return True

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for batch in self.batches for event in batch["events"]]


class DebugTransport(Transport):
    """`FOOTFALL_DEBUG=1`: print each exact payload to stderr and send nothing."""

    def send(self, batch: dict[str, Any]) -> bool:
        print("footfall: would send " + json.dumps(batch, indent=2), file=sys.stderr)
        return True
