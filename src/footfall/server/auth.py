"""Who may read: the local admin token, as a bearer token or a signed session cookie.

The admin token lives in the data directory (mode 0600), so whoever can read that
folder is the instance's administrator. `footfall serve` prints a login link that
carries it once; the browser then keeps only a signed, expiring, HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SESSION_COOKIE = "footfall_session"
SESSION_TTL_S = 7 * 24 * 3600


class AdminAuth:
    def __init__(self, admin_token: str) -> None:
        self._token = admin_token
        self._key = hashlib.sha256(b"footfall-session\0" + admin_token.encode()).digest()

    def check_token(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    def check_bearer(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.check_token(token.strip())

    def new_session(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_TTL_S)
        return f"{expires}.{self._sign(str(expires))}"

    def check_session(self, cookie: str, now: float | None = None) -> bool:
        expires, _, signature = cookie.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(signature, self._sign(expires)):
            return False
        return int(expires) > (now or time.time())

    def _sign(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
