"""How a login is checked: scrypt password hashes, and the backoff rules for failures.

The rows of failures live in the accounts file (table `login_failures`); the
methods here take an open transaction from `accounts.AccountStore`, which decides
what counts as a client. No HTTP here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from functools import cache

from footfall.server.auth.database import Database
from footfall.server.errors import UsageError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB of memory per hash
SCRYPT_MAX_MEMORY_BYTES = 64 * 1024 * 1024  # the most any stored parameters may ask for
MIN_PASSWORD_CHARS = 10


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=SCRYPT_MAX_MEMORY_BYTES)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


@cache
def dummy_password_hash() -> str:
    """A hash to check unknown accounts against, made once: one scrypt per login either way."""
    return hash_password(secrets.token_urlsafe(16))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsageError(f"a password has at least {MIN_PASSWORD_CHARS} characters")


class LoginThrottle:
    """Backoff rules for failed logins, so guessing is slow and nobody can lock an account.

    Failures are counted per *client on an account*: a known device (a browser holding
    the cookie from an earlier successful login to that account), or else the client's
    address (its key) together with the email. After `FREE_FAILURES` failures a client
    waits `BASE_DELAY` doubled per further failure, up to `MAX_DELAY`; a success clears it.
    An attacker's failures therefore slow only the attacker's own clients.

    On top, failures from unknown devices are counted per account in a window of
    `ACCOUNT_WINDOW`: above `ACCOUNT_CAP` of them, the account accepts logins only from
    its known devices until the window passes. That bounds guesses spread over many
    addresses, while the account's owner, on a browser that logged in before, still
    gets in with the right password.
    """

    FREE_FAILURES = 3  # failures a client may make on an account before it has to wait
    BASE_DELAY = dt.timedelta(seconds=5)  # the wait after the first failure beyond the free ones
    MAX_DELAY = dt.timedelta(minutes=15)
    ACCOUNT_WINDOW = dt.timedelta(hours=1)
    ACCOUNT_CAP = 30  # failures from unknown devices per account and window
    FORGET_AFTER = dt.timedelta(days=1)  # failure records idle this long are dropped

    @classmethod
    def delay(cls, failures: int) -> dt.timedelta:
        """How long a client waits after its `failures`-th failure in a row on an account."""
        extra = failures - cls.FREE_FAILURES
        if extra <= 0:
            return dt.timedelta(0)
        delay: dt.timedelta = cls.BASE_DELAY * (2 ** min(extra - 1, 20))
        return min(cls.MAX_DELAY, delay)

    @classmethod
    def begin(cls, db: Database, key: str, email: str, moment: dt.datetime, known_device: bool) -> float:
        """Seconds the client `key` must wait before trying `email`, or 0 when it may try now.

        A permitted attempt is counted as a failure at once, in the caller's transaction,
        and `succeeded` takes it back: so parallel attempts cannot all pass the check
        before any of them is counted.
        """
        db.execute("DELETE FROM login_failures WHERE last_failure < ?", ((moment - cls.FORGET_AFTER).isoformat(),))
        row = db.execute("SELECT blocked_until FROM login_failures WHERE key = ?", (key,)).fetchone()
        wait = (dt.datetime.fromisoformat(row[0]) - moment).total_seconds() if row else 0.0
        if wait <= 0 and not known_device:
            wait = cls.account_wait(db, email, moment)
        if wait > 0:
            return wait
        cls.record_failure(db, key, email, moment, count_for_account=not known_device)
        return 0.0

    @staticmethod
    def succeeded(db: Database, key: str, email: str, known_device: bool) -> None:
        """Clear the client's failures, and take back the attempt counted against the account."""
        db.execute("DELETE FROM login_failures WHERE key = ?", (key,))
        if not known_device:
            db.execute(
                # CASE, not max(a, b): SQLite's two-argument max is GREATEST in PostgreSQL
                "UPDATE login_failures SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END"
                " WHERE key = ?",
                ("account:" + _sha256(email),),
            )

    @staticmethod
    def forget_account(db: Database, email: str) -> None:
        """Drop the per-account failure count of a removed account. (Per-client rows are keyed
        by a hash of address and email, so they cannot be found from the email; they expire
        after `FORGET_AFTER`.)"""
        db.execute("DELETE FROM login_failures WHERE key = ?", ("account:" + _sha256(email),))

    @staticmethod
    def account_wait(db: Database, email: str, moment: dt.datetime) -> float:
        row = db.execute(
            "SELECT failures, last_failure FROM login_failures WHERE key = ?", ("account:" + _sha256(email),)
        ).fetchone()
        if row is None or row[0] < LoginThrottle.ACCOUNT_CAP:
            return 0.0
        window_end = dt.datetime.fromisoformat(row[1]) + LoginThrottle.ACCOUNT_WINDOW
        return max(0.0, (window_end - moment).total_seconds())

    @staticmethod
    def record_failure(db: Database, key: str, email: str, moment: dt.datetime, count_for_account: bool) -> None:
        row = db.execute("SELECT failures FROM login_failures WHERE key = ?", (key,)).fetchone()
        failures = (row[0] if row else 0) + 1
        blocked_until = moment + LoginThrottle.delay(failures)
        db.execute(
            "INSERT INTO login_failures (key, failures, last_failure, blocked_until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET"
            " failures = excluded.failures, last_failure = excluded.last_failure,"
            " blocked_until = excluded.blocked_until",
            (key, failures, moment.isoformat(), blocked_until.isoformat()),
        )
        if count_for_account:
            # A fixed window per account: the count restarts once the last failure is a window old.
            account_key = "account:" + _sha256(email)
            account = db.execute(
                "SELECT failures, last_failure FROM login_failures WHERE key = ?", (account_key,)
            ).fetchone()
            fresh = account is None or dt.datetime.fromisoformat(account[1]) < moment - LoginThrottle.ACCOUNT_WINDOW
            count = 1 if fresh else account[0] + 1
            db.execute(
                "INSERT INTO login_failures (key, failures, last_failure, blocked_until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure",
                (account_key, count, moment.isoformat(), moment.isoformat()),
            )
