"""What every endpoint shares (`ServerContext`): who is asking, body reading, limits.

Built once by `footfall.server.edge.app.build_context`; the route modules take it as
an argument, so they never import the app factory back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import json
import logging
import threading
from collections.abc import Callable

from starlette.requests import Request

from footfall.server.auth.accounts import LOCAL_ADMIN, AccountStore, Principal
from footfall.server.datadir import SECRETS_FILE, DataDir
from footfall.server.edge.ratelimit import TokenBuckets
from footfall.server.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unauthorized,
)
from footfall.server.ingest.geo import CountryResolver, Network, client_ip
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.pipeline import Ingestor
from footfall.server.metrics import Metrics
from footfall.server.operations import StoreOperations
from footfall.server.settings import SETTINGS, Settings
from footfall.server.stores.base import EventStore

SESSION_COOKIE = "footfall_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_CONTENT_LENGTH_DIGITS = 18  # 10**18 bytes is past any body limit; int() refuses over 4,300 digits
# Each limit's unit and settings, by its scope in footfall_rate_limited_total.
LIMITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "client": ("requests/s", ("rate_per_client", "burst_per_client")),
    "forget": ("forget requests/minute", ("forget_per_minute",)),
    "app": ("events/s", ("rate_per_app", "burst_per_app")),
    "app_bytes": ("bytes/s after decompression", ("bytes_per_app", "burst_bytes_per_app")),
}
MAX_LIMIT_WARNINGS = 1000  # (limit, app) pairs warned about; apps are registered, so this is only a backstop
limit_log = logging.getLogger("footfall.server.limits")


@dataclasses.dataclass
class ServerContext:
    """Everything the endpoints share, built once by `create_app`."""

    settings: Settings
    store: EventStore
    ingestor: Ingestor
    operations: StoreOperations
    metrics: Metrics
    log: IngestLog
    accounts: AccountStore
    datadir: DataDir
    geo: CountryResolver
    trusted_proxies: tuple[Network, ...]
    per_client: TokenBuckets
    per_app: TokenBuckets
    per_app_bytes: TokenBuckets
    forgets: TokenBuckets
    logins: TokenBuckets
    # Called (in order) when the server stops, before the log is closed: the owner stops its workers.
    on_shutdown: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    # The owner: each ingest worker's last report added, by the worker's random id (edge.internal).
    report_sequences: dict[str, int] = dataclasses.field(default_factory=dict)
    _admin_token: tuple[tuple[int, int, int], str] | None = None  # (secrets.json's stat signature, token)
    _limits_warned: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (scope, app) logged once
    _limits_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def admin_token(self) -> str:
        """The local admin token, read again whenever secrets.json changes, so that
        `footfall admin rotate` takes effect on a running server at once. "" when unreadable."""
        path = self.datadir.path / SECRETS_FILE
        try:
            stat = path.stat()
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = self._admin_token
            if cached is None or cached[0] != signature:
                # Read, never create: DataDir.secrets() would make a new install key.
                cached = (signature, str(json.loads(path.read_text(encoding="utf-8"))["admin_token"]))
                self._admin_token = cached
        except (OSError, ValueError, KeyError, TypeError):  # gone or damaged: no local admin until fixed
            return ""
        return cached[1]

    def client_ip(self, request: Request) -> str | None:
        """The client's address, used for the country and rate limits, then forgotten."""
        peer = request.client.host if request.client else None
        return client_ip(peer, request.headers.get("x-forwarded-for"), self.trusted_proxies)

    def limit_client(self, request: Request, ip: str | None, buckets: TokenBuckets | None = None) -> None:
        wait = self.limit_client_wait(ip, buckets)
        if wait:
            raise RateLimited("too many requests from this address; slow down", wait)

    def limit_client_wait(self, ip: str | None, buckets: TokenBuckets | None = None) -> float:
        """0 when the client may go on; otherwise the seconds to wait, with the refusal counted.

        The GA endpoints use this directly: GA's semantics are always 2xx, so they drop instead of raising.
        The per-client request rate does not apply to this host itself (see `is_local_client`).
        """
        buckets = self.per_client if buckets is None else buckets
        scope = "client" if buckets is self.per_client else "forget"
        if scope == "client" and self.is_local_client(ip):
            return 0.0
        wait = buckets.take(buckets.key_for_address(ip))
        if wait:
            self.limit_bit(scope)
        return wait

    def limit_app(self, app: str, events: int) -> float:
        wait = self.per_app.take(app, cost=events)
        if wait:
            self.limit_bit("app", app)
        return wait

    def limit_app_bytes(self, app: str, size: int) -> float:
        """Charge `size` request bytes (as decompressed) to the app's byte budget; as `limit_app`."""
        wait = self.per_app_bytes.take(app, cost=size)
        if wait:
            self.limit_bit("app_bytes", app)
        return wait

    def is_local_client(self, ip: str | None) -> bool:
        """A loopback client that is not a trusted proxy: this host itself, which can already write the
        data directory, so a per-client request rate would only turn its benchmark or its own tools into
        429s. Behind a trusted proxy on loopback, the address is the forwarded one, and limited."""
        try:
            address = ipaddress.ip_address((ip or "").strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback and not any(address in network for network in self.trusted_proxies)

    def limit_bit(self, scope: str, app: str = "") -> None:
        """Count a refusal; the first of each limit (and app) in this process is also logged as a warning
        naming the settings, so that an operator learns a limit bites before the users say so."""
        self.metrics.count("footfall_rate_limited_total", "Requests refused by a rate limit.", scope=scope)
        with self._limits_lock:
            if (scope, app) in self._limits_warned or len(self._limits_warned) >= MAX_LIMIT_WARNINGS:
                return
            self._limits_warned.add((scope, app))
        unit, names = LIMITS[scope]
        settings = {setting.name: setting for setting in SETTINGS}
        limit_log.warning(
            "rate limit: %s went over %g %s; what is over it is refused (native 429 with Retry-After, GA "
            "dropped and counted). Settings: %s (docs/collector.md, Rate limits). Logged once per limit%s "
            'in this process; every refusal counts in footfall_rate_limited_total{scope="%s"}.',
            f"app {app!r}" if app else "a client address",
            getattr(self.settings, names[0]),
            unit,
            ", ".join(f"{settings[n].flag} or {settings[n].env} = {getattr(self.settings, n):g}" for n in names),
            " and app" if app else "",
            scope,
        )

    def principal(self, request: Request) -> Principal | None:
        """Who is asking: a bearer token (the local admin's or an API token) or a session cookie."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            token = token.strip()
            admin_token = self.admin_token()
            if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
                return Principal(LOCAL_ADMIN, True, {})
            return self.accounts.principal_for_token(token)
        cookie = request.cookies.get(SESSION_COOKIE)
        principal = self.accounts.principal_for_session(cookie) if cookie else None
        if principal is not None and request.method not in SAFE_METHODS and request.url.path.startswith("/api/"):
            # A browser sends the cookie with any cross-site form or text/plain POST (a sibling subdomain is
            # even same-site); only our own pages know the session's CSRF token to put in this header.
            sent = request.headers.get(CSRF_HEADER, "")
            if not (sent and hmac.compare_digest(sent.encode(), principal.csrf.encode())):
                raise Forbidden("a change made with a session cookie needs its X-CSRF-Token header", code="csrf")
        return principal

    def require(self, request: Request, app: str | None = None) -> Principal:
        """The principal, allowed to read `app`: 401 without credentials, 403 without a role."""
        principal = self.principal(request)
        if principal is None:
            if request.headers.get("authorization", "").lower().startswith("bearer "):
                raise Unauthorized("that token is not valid: it is unknown, expired or revoked")
            raise Unauthorized("log in, or send 'Authorization: Bearer <token>'")
        if app is not None and not principal.can_read(app):
            raise Forbidden(f"this account has no role on {app!r}")
        return principal

    async def read_body(self, request: Request, limit: int) -> bytes:
        """The body, refused early when over `limit` bytes or slower than the read timeout."""
        declared = request.headers.get("content-length")
        if declared is not None:
            # ASCII digits only: "²".isdigit() is True, and int() refuses it.
            if not (declared.isascii() and declared.isdigit()):
                raise BadRequest("Content-Length is not a number", code="invalid_request")
            if len(declared.lstrip("0")) > MAX_CONTENT_LENGTH_DIGITS or int(declared) > limit:
                raise PayloadTooLarge(f"the body is larger than {limit} bytes")

        async def read() -> bytes:
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            return await asyncio.wait_for(read(), self.settings.read_timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {self.settings.read_timeout_s:g} s") from None
