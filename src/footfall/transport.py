"""How a batch reaches the collector.

`Transport` is the boundary: one method, `send(batch) -> SendResult`.
`HttpTransport` posts gzip-compressed JSON over HTTP or HTTPS (certificates
verified) within a total deadline; `MemoryTransport` keeps batches in a list so
tool authors can test their instrumentation; `DebugTransport` prints them.
Network modules are imported on first send, in the worker thread, so that
`import footfall` stays cheap.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BATCH_PATH = "/v1/batch"
DEFAULT_TIMEOUT_S = 3.0  # total, for connecting, sending and reading the reply
RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
MAX_RETRY_AFTER_S = 60.0


class SendResult:
    """`delivered`: the collector took it. Otherwise `retryable` says whether to try again, and
    `code` is the collector's error code for a final refusal (`unknown_app`...), when it gave one."""

    __slots__ = ("code", "delivered", "retry_after", "retryable")

    def __init__(
        self,
        delivered: bool,
        retryable: bool = False,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.delivered = delivered
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code

    def __repr__(self) -> str:
        return (
            f"SendResult(delivered={self.delivered}, retryable={self.retryable},"
            f" retry_after={self.retry_after}, code={self.code!r})"
        )


ERROR_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


def error_code(reply: bytes) -> str | None:
    """The `code` of the collector's error reply `{"error": {"code", "message"}}`, or None.

    Only a short lowercase code is taken: the message, written by whoever answers at the
    endpoint, is never kept or printed.
    """
    import json

    from footfall.patterns import compiled

    try:
        document = json.loads(reply)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and compiled(ERROR_CODE_PATTERN).match(code) else None


DELIVERED = SendResult(True)


class Transport:
    """Delivers one batch."""

    def send(self, batch: dict[str, Any]) -> SendResult:
        raise NotImplementedError


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None  # the HTTP-date form is rare for APIs; fall back to our backoff


def refusal_sentence(code: str, app: str) -> str:
    """What a final refusal means, for `analytics status` and FOOTFALL_DEBUG."""
    if code == "unknown_app":
        return (
            f"The collector does not know the app {app!r} (unknown_app): its maintainers register it"
            f" on the collector with `footfall app add {app}`."
        )
    return f"The collector refused a batch ({code})."


class HttpTransport(Transport):
    def __init__(self, endpoint: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def post_json(self, path: str, document: dict[str, Any]) -> tuple[int, bytes, str | None]:
        """POST gzip JSON; returns (status, body, Retry-After). Raises on network failure."""
        import gzip
        import http.client
        import json
        import urllib.parse

        url = urllib.parse.urlsplit(self.endpoint + path)
        deadline = time.monotonic() + self.timeout

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the collector did not answer in time")
            return left

        connection: http.client.HTTPConnection
        if url.scheme == "https":
            import ssl

            connection = http.client.HTTPSConnection(
                url.hostname or "",
                url.port,
                timeout=remaining(),
                context=ssl.create_default_context(),
            )
        elif url.scheme == "http":
            connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=remaining())
        else:
            raise OSError(f"unsupported endpoint scheme {url.scheme!r}")
        body = gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)
        try:
            connection.connect()
            sock = connection.sock  # http.client lets go of it once the reply says "close"
            assert sock is not None
            sock.settimeout(remaining())
            connection.request(
                "POST",
                url.path + (f"?{url.query}" if url.query else ""),
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                    "User-Agent": "footfall-sdk",
                },
            )
            sock.settimeout(remaining())
            response = connection.getresponse()
            sock.settimeout(remaining())
            reply = response.read(64 * 1024)
            return response.status, reply, response.getheader("Retry-After")
        finally:
            connection.close()

    def send(self, batch: dict[str, Any]) -> SendResult:
        from http.client import HTTPException

        try:
            status, reply, retry_after = self.post_json(BATCH_PATH, batch)
        except (OSError, ValueError, HTTPException) as exc:  # refused, timed out, bad TLS, not HTTP
            from footfall.errors import debug

            debug(f"could not reach the collector: {type(exc).__name__}: {exc}")
            return SendResult(False, retryable=True)
        if 200 <= status < 300:
            return DELIVERED
        retryable = status in RETRY_STATUSES or status >= 500
        code = None if retryable else error_code(reply)
        return SendResult(False, retryable=retryable, retry_after=parse_retry_after(retry_after), code=code)


class NoTransport(Transport):
    """Sends nothing: the client of a tool whose endpoint is not an http(s) URL."""

    def send(self, batch: dict[str, Any]) -> SendResult:
        return SendResult(False, retryable=False)


class MemoryTransport(Transport):
    """Keeps every batch in `self.batches`; `events` flattens them."""

    def __init__(self) -> None:
        import threading

        self.batches: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, batch: dict[str, Any]) -> SendResult:
        with self._lock:
            self.batches.append(batch)
        return DELIVERED

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for batch in self.batches for event in batch["events"]]


class DebugTransport(Transport):
    """`FOOTFALL_DEBUG=1`: print each exact payload to stderr and send nothing."""

    def send(self, batch: dict[str, Any]) -> SendResult:
        import json

        print("footfall: would send " + json.dumps(batch, indent=2), file=sys.stderr)
        return DELIVERED
