"""Security headers on every HTTP response, as a small pure-ASGI middleware.

The dashboard is server-rendered: one self-hosted stylesheet, inline SVG, no script
and no third-party origin. So the Content-Security-Policy can deny everything else:
no script runs at all (not even an injected inline one), no style attribute applies,
nothing loads from a CDN, forms post only back here, and no other site may frame a
page (clickjacking). A handler that sets one of these headers itself keeps its own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HSTS_MAX_AGE_S = 365 * 24 * 3600
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS` to every response; `hsts` adds Strict-Transport-Security too.

    Turn `hsts` on only when the public URL is https: a browser then refuses plain
    http to this host for a year.
    """

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS
        if hsts:
            self.headers += ((b"strict-transport-security", f"max-age={HSTS_MAX_AGE_S}".encode()),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in self.headers if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
