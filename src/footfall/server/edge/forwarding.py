"""An ingest worker's side of `footfall serve --workers N`: what it asks of the owner.

- `OwnerClient`: small JSON calls to the owner's Unix socket (edge/internal.py).
- `OwnerView`: the store as a worker sees it. Only what ingestion reads (apps, keys,
  schemas, distinct values for the cardinality guard), from a snapshot of the owner's
  registry, refreshed every `CONFIG_REFRESH_S`, and at once when a request names an app
  or key the snapshot lacks: single-flight (one refresh at a time, the others wait for
  it) and at most once per `MISS_REFRESH_INTERVAL_S`, so a client sending unknown apps
  costs the owner at most a few small requests a second.
- `forward`: any other request goes to the owner over the socket, streamed both ways
  (status, headers with every Set-Cookie, body). The client's address rides in
  `x-footfall-peer`, which only the owner's socket trusts; the owner applies its body
  caps and timeouts as for a request of its own.
- `Reporter`: every `REPORT_INTERVAL_S` the worker sends the owner what its counters
  and log writer counted since its last report, so /metrics covers every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import h11
from starlette.types import Receive, Scope, Send

from footfall.server.edge.internal import PEER_HEADER
from footfall.server.errors import StoreUnavailable, error_body
from footfall.server.ingest.log import IngestLog
from footfall.server.metrics import Labels, Metrics
from footfall.server.stores.base import AppRegistry, EventStore, QueryResult

log = logging.getLogger("footfall.server")
CONFIG_REFRESH_S = 1.0  # a change of apps, keys or schemas reaches every worker within about this
MISS_REFRESH_INTERVAL_S = 0.25  # an unknown app or key refreshes at most this often
OWNER_CALL_TIMEOUT_S = 5.0
FORWARD_IDLE_TIMEOUT_S = 300.0  # the owner's answer may pause this long (a large report or backup)
REPORT_INTERVAL_S = 1.0
READ_CHUNK_BYTES = 64 * 1024
# Not relayed either way: they describe one connection, not the request (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, address: str, timeout: float) -> None:
        super().__init__("owner", timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._address)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class OwnerClient:
    """JSON calls to the owner's internal routes; raises StoreUnavailable when it does not answer."""

    def __init__(self, address: str, timeout_s: float = OWNER_CALL_TIMEOUT_S) -> None:
        self.address = address
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, document: Any = None) -> Any:
        connection = _UnixConnection(self.address, self.timeout_s)
        try:
            body = None if document is None else json.dumps(document).encode()
            headers = {"content-type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise StoreUnavailable(f"the owner answered {response.status} to {path}")
            return json.loads(data)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise StoreUnavailable(f"the owner process does not answer: {exc}") from exc
        finally:
            connection.close()


class OwnerView(EventStore):
    """The store as an ingest worker reads it: the owner's registry, kept fresh (see the module)."""

    def __init__(self, client: OwnerClient) -> None:
        self.client = client
        self.registry = AppRegistry()
        self.on_removed: Callable[[str], None] | None = None  # an app went: drop what is cached about it
        self._refreshing = threading.Lock()
        self._refreshed_at = -MISS_REFRESH_INTERVAL_S  # monotonic time the last refresh started
        self._removals: dict[str, int] | None = None  # the owner's removal counts, as last fetched
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Fetch the owner's registry now; raises StoreUnavailable (the old one stays)."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        self._refreshed_at = time.monotonic()
        snapshot = self.client.call("GET", "/internal/config")
        registry = AppRegistry()
        registry.apps = set(snapshot["apps"])
        registry.keys = {(kind, key): (app, secret) for kind, key, app, secret in snapshot["keys"]}
        registry.schemas = dict(snapshot["schemas"])
        removed = self.registry.apps - registry.apps
        removals = {str(app): int(count) for app, count in snapshot.get("removals", {}).items()}
        if self._removals is not None:  # also removed, and created again, since the last refresh
            removed |= {app for app, count in removals.items() if count > self._removals.get(app, 0)}
        self._removals = removals
        self.registry = registry
        if self.on_removed is not None:
            for app in removed:
                self.on_removed(app)

    def _refresh_on_miss(self) -> None:
        if time.monotonic() - self._refreshed_at < MISS_REFRESH_INTERVAL_S:
            return
        if not self._refreshing.acquire(timeout=OWNER_CALL_TIMEOUT_S):
            return
        try:  # another caller may have refreshed while this one waited for the lock
            if time.monotonic() - self._refreshed_at >= MISS_REFRESH_INTERVAL_S:
                with contextlib.suppress(StoreUnavailable):
                    self._refresh()
        finally:
            self._refreshing.release()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="footfall-config", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(OWNER_CALL_TIMEOUT_S)

    def _run(self) -> None:
        while not self._stop.wait(CONFIG_REFRESH_S):
            try:
                self.refresh()
            except StoreUnavailable as exc:
                log.warning("the app configuration could not be refreshed from the owner: %s", exc)
            except Exception:  # a malformed answer: the loop outlives it, the registry keeps its last state
                log.exception("the app configuration refresh failed")

    def distinct_values(self, app: str, column: str, limit: int) -> list[str]:
        query = urllib.parse.urlencode({"app": app, "field": column, "limit": limit})
        values = self.client.call("GET", "/internal/distinct?" + query)["values"]
        return [str(value) for value in values]

    def query_now(self, sql: str, params: Any = None) -> QueryResult:
        raise StoreUnavailable("an ingest worker has no store; the owner answers queries")


class Reporter:
    """Sends the owner, every `REPORT_INTERVAL_S`, what this worker counted since its last report.

    Each report carries this process's random id and a sequence number, and one that got no
    answer is sent again as it was, before anything newer: the owner may have added it before
    the answer was lost (a timeout), and it adds each (id, sequence) once.
    """

    def __init__(self, client: OwnerClient, metrics: Metrics, ingest_log: IngestLog) -> None:
        self.client = client
        self.metrics = metrics
        self.log = ingest_log
        self._sent_counters: dict[tuple[str, Labels], float] = {}
        self._sent_histogram: tuple[list[int], float] = ([], 0.0)
        self._sent_log: dict[str, float] = {}
        self._reporter = secrets.token_hex(8)
        self._sequence = 0
        self._unanswered: dict[str, Any] | None = None  # the last report, until the owner answers it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="footfall-report", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop, with a last report of what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(StoreUnavailable):
            self.report()

    def _run(self) -> None:
        while not self._stop.wait(REPORT_INTERVAL_S):
            try:
                self.report()
            except StoreUnavailable as exc:
                log.warning("counters could not be reported to the owner (kept for the next try): %s", exc)

    def report(self) -> None:
        """Send what was counted since the last report; raises StoreUnavailable (kept for the next)."""
        if self._unanswered is not None:
            self._send(self._unanswered)
        counters, counts, total = self.metrics.snapshot()
        deltas: list[list[Any]] = []
        for name, (help_text, series) in counters.items():
            for labels, amount in series.items():
                delta = amount - self._sent_counters.get((name, labels), 0.0)
                if delta > 0:
                    deltas.append([name, help_text, dict(labels), delta])
        sent_counts, sent_total = self._sent_histogram
        histogram = [count - (sent_counts[i] if sent_counts else 0) for i, count in enumerate(counts)]
        stats = self.log.writer.stats
        log_now = {
            "appended_events": stats.appended_events,
            "appended_bytes": stats.appended_bytes,
            "appends": stats.appends,
            "syncs": stats.syncs,
            "sealed": stats.sealed,
            "sync_seconds": stats.sync_seconds,
            "refused_appends": self.log.refused_appends,
        }
        log_delta: dict[str, float] = {key: value - self._sent_log.get(key, 0) for key, value in log_now.items()}
        if not deltas and not any(histogram) and not any(log_delta.values()):
            return
        self._sequence += 1
        document = {
            "reporter": self._reporter,
            "sequence": self._sequence,
            "counters": deltas,
            "histogram": [histogram, total - sent_total],
            "log": log_delta,
        }
        # Counted as sent from here: it is either answered or sent again as it is.
        for name, (_, series) in counters.items():
            for labels, amount in series.items():
                self._sent_counters[(name, labels)] = amount
        self._sent_histogram = (counts, total)
        self._sent_log = dict(log_now)
        self._send(document)

    def _send(self, document: dict[str, Any]) -> None:
        self._unanswered = document
        self.client.call("POST", "/internal/report", document)
        self._unanswered = None


async def forward(scope: Scope, receive: Receive, send: Send, address: str) -> None:
    """Relay one HTTP request to the owner over its Unix socket, and its answer back."""
    try:
        reader, writer = await asyncio.open_unix_connection(address)
    except OSError:
        await _answer_unavailable(send)
        return
    connection = h11.Connection(h11.CLIENT)
    dropped = HOP_BY_HOP | {PEER_HEADER.encode()}  # a client's own x-footfall-peer never reaches the owner
    headers = [(name, value) for name, value in scope["headers"] if name not in dropped]
    chunked = any(name == b"transfer-encoding" for name, _ in scope["headers"])
    if chunked and not any(name == b"content-length" for name, _ in headers):
        headers.append((b"transfer-encoding", b"chunked"))
    if not any(name == b"host" for name, _ in headers):
        headers.append((b"host", b"footfall"))
    if scope.get("client"):
        headers.append((PEER_HEADER.encode(), str(scope["client"][0]).encode()))
    target = scope["raw_path"] or scope["path"].encode()
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    started = False
    try:
        writer.write(connection.send(h11.Request(method=scope["method"], target=target, headers=headers)))
        pump = asyncio.create_task(_send_body(receive, connection, writer))
        try:
            started = await _relay_answer(send, connection, reader)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
    except (OSError, h11.ProtocolError, asyncio.TimeoutError):
        if not started:
            await _answer_unavailable(send)
        # Once the answer has started, the client sees a cut answer: nothing better can be said.
    finally:
        writer.close()


async def _send_body(receive: Receive, connection: h11.Connection, writer: asyncio.StreamWriter) -> None:
    """Stream the client's body to the owner, which may answer (a 413, say) before it is all sent."""
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            if body:
                writer.write(connection.send(h11.Data(data=body)))
                await writer.drain()
            if not message.get("more_body", False):
                writer.write(connection.send(h11.EndOfMessage()))
                await writer.drain()
                return
    except (OSError, h11.LocalProtocolError):
        return  # the owner closed: its answer says why


async def _relay_answer(send: Send, connection: h11.Connection, reader: asyncio.StreamReader) -> bool:
    """Relay the owner's answer; True once its start was sent to the client."""
    started = False
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), FORWARD_IDLE_TIMEOUT_S)
            connection.receive_data(data)  # b"" is the end of the stream: h11 then raises if it was early
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            headers = [(name, value) for name, value in event.headers if name not in HOP_BY_HOP and name != b"date"]
            await send({"type": "http.response.start", "status": event.status_code, "headers": headers})
            started = True
        elif isinstance(event, h11.Data):
            await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            if not started:
                raise OSError("the owner closed the connection without an answer")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return started


async def _answer_unavailable(send: Send) -> None:
    body = json.dumps(error_body("unavailable", "the collector's main process does not answer; retry later")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
