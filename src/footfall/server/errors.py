"""Server errors, translated to HTTP or to a CLI message at the edge.

    FootfallError
    ├── BadRequest          the client sent something we refuse (HTTP 4xx)
    │   ├── PayloadTooLarge     413
    │   └── UnknownApp          422, code "unknown_app"
    │   ├── RequestTimeout      408, the body arrived too slowly
    │   └── RateLimited         429, with Retry-After
    ├── NotFound            a report or app that does not exist (404)
    ├── Unauthorized        missing or wrong credentials (401)
    ├── Forbidden           credentials without a role on that app (403)
    ├── StoreError          the store failed
    │   ├── StoreUnavailable    cannot be reached right now (HTTP 503)
    │   └── DataDirLocked       another process holds the embedded database
    └── UsageError          a CLI invocation we cannot carry out

Every JSON error body comes from `error_body()`: {"error": {"code", "message"}}.
"""

from __future__ import annotations

from typing import Any


class FootfallError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(FootfallError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class UnknownApp(BadRequest):
    status = 422
    code = "unknown_app"


class RequestTimeout(BadRequest):
    status = 408
    code = "request_timeout"


class RateLimited(BadRequest):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class NotFound(FootfallError):
    status = 404
    code = "not_found"


class Unauthorized(FootfallError):
    status = 401
    code = "unauthorized"


class Forbidden(FootfallError):
    status = 403
    code = "forbidden"


class StoreError(FootfallError):
    code = "store_error"


class SegmentRefused(StoreError):
    """The store cannot read an ingest-log segment as data: it is quarantined, not retried."""

    code = "segment_refused"


class StoreUnavailable(StoreError):
    status = 503
    code = "store_unavailable"
    # What a client is told: the message itself names the store's address, for the log only.
    public_message = "The event store is not answering; collected events are kept and loaded once it is back."


class AccountsUnavailable(StoreUnavailable):
    """The accounts database (PostgreSQL) cannot be reached or failed."""

    public_message = "The accounts database is not answering; try again shortly."


class Backpressure(StoreUnavailable):
    """The ingest log holds more unloaded data than its cap: nothing more is acknowledged for now."""

    code = "backpressure"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class DataDirLocked(StoreError):
    code = "data_dir_locked"


class UsageError(FootfallError):
    status = 400
    code = "usage"


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one shape of every JSON error: {"error": {"code": ..., "message": ...}}."""
    return {"error": {"code": code, "message": message}}
