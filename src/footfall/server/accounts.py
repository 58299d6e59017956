"""Who may read what: accounts, roles per app, API tokens, sessions, and the audit log.

Kept in `DIR/accounts.sqlite` (the standard library's SQLite, in WAL mode) rather
than in DuckDB: it is small, transactional data that the CLI must be able to change
while `footfall serve` holds the event store.

Passwords are hashed with scrypt (memory-hard); tokens and session ids are stored
only as SHA-256 hashes. Roles per app are owner, maintainer and viewer; an admin
sees and manages every app. The local admin token in `secrets.json` logs in as the
built-in admin `LOCAL_ADMIN`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from footfall.server.errors import UsageError

ROLES = ("viewer", "maintainer", "owner")
LOCAL_ADMIN = "local-admin"
SESSION_TTL = dt.timedelta(days=7)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB of memory per hash
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
MIN_PASSWORD_CHARS = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY, password TEXT NOT NULL, admin INTEGER NOT NULL,
                                  created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roles (email TEXT NOT NULL, app TEXT NOT NULL, role TEXT NOT NULL,
                                  PRIMARY KEY (email, app));
CREATE TABLE IF NOT EXISTS tokens (token_hash TEXT PRIMARY KEY, email TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, email TEXT NOT NULL, csrf TEXT NOT NULL,
                                     expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS public_apps (app TEXT PRIMARY KEY, since TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (time TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                                  app TEXT NOT NULL, detail TEXT NOT NULL);
"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: an account, or the built-in local admin."""

    email: str
    admin: bool
    roles: dict[str, str]
    session: str = ""  # the session id's hash, when the principal came from a cookie
    csrf: str = ""

    def role(self, app: str) -> str | None:
        return "owner" if self.admin else self.roles.get(app)

    def can_read(self, app: str) -> bool:
        return self.role(app) is not None

    def can_own(self, app: str) -> bool:
        return self.role(app) == "owner"


class AccountStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connection().executescript(SCHEMA)  # executescript commits on its own

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread: SQLite connections must not cross threads."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # -- accounts ---------------------------------------------------------------------

    @staticmethod
    def check_role(email: str, role: str, app: str | None) -> None:
        if not EMAIL.match(email):
            raise UsageError(f"{email!r} is not an email address")
        if role == "admin" and app is not None:
            raise UsageError("--role admin is for the whole instance: leave out --app")
        if role != "admin" and (role not in ROLES or app is None):
            raise UsageError(f"--role must be admin, or one of {', '.join(ROLES)} with --app NAME")

    def add_user(self, email: str, password: str, role: str, app: str | None, actor: str = LOCAL_ADMIN) -> bool:
        """Create or update an account; `role` "admin" (no app) or a role on `app`. True if new."""
        self.check_role(email, role, app)
        with self._db() as db:
            existing = db.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone()
            if password:
                if len(password) < MIN_PASSWORD_CHARS:
                    raise UsageError(f"a password has at least {MIN_PASSWORD_CHARS} characters")
                db.execute(
                    "INSERT INTO users VALUES (?, ?, 0, ?)"
                    " ON CONFLICT (email) DO UPDATE SET password = excluded.password",
                    (email, hash_password(password), now().isoformat()),
                )
            elif not existing:
                raise UsageError("a new account needs a password")
            if role == "admin":
                db.execute("UPDATE users SET admin = 1 WHERE email = ?", (email,))
            else:
                db.execute(
                    "INSERT INTO roles VALUES (?, ?, ?) ON CONFLICT (email, app) DO UPDATE SET role = excluded.role",
                    (email, app, role),
                )
            self._audit(db, actor, "role_change", app or "", f"{email} is {role}")
        return not existing

    def authenticate(self, email: str, password: str) -> Principal | None:
        with self._db() as db:
            row = db.execute("SELECT password FROM users WHERE email = ?", (email,)).fetchone()
        # Hash even for an unknown account, so the time taken does not say which emails exist.
        stored = row[0] if row else hash_password("an unknown account's dummy password")
        if not verify_password(password, stored) or row is None:
            return None
        return self.principal(email)

    def principal(self, email: str, session: str = "", csrf: str = "") -> Principal | None:
        if email == LOCAL_ADMIN:
            return Principal(LOCAL_ADMIN, True, {}, session, csrf)
        with self._db() as db:
            user = db.execute("SELECT admin FROM users WHERE email = ?", (email,)).fetchone()
            if user is None:
                return None
            roles = dict(db.execute("SELECT app, role FROM roles WHERE email = ?", (email,)).fetchall())
        return Principal(email, bool(user[0]), roles, session, csrf)

    # -- tokens and sessions ------------------------------------------------------------

    def create_token(self, email: str) -> str:
        if self.principal(email) is None:
            raise UsageError(f"no account {email!r}; add it with `footfall user add`")
        token = "ff_" + secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (sha256(token), email, now().isoformat()))
            self._audit(db, LOCAL_ADMIN, "token_create", "", email)
        return token

    def principal_for_token(self, token: str) -> Principal | None:
        with self._db() as db:
            row = db.execute("SELECT email FROM tokens WHERE token_hash = ?", (sha256(token),)).fetchone()
        return self.principal(row[0]) if row else None

    def create_session(self, email: str) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (now().isoformat(),))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (sha256(session_id), email, secrets.token_urlsafe(24), (now() + SESSION_TTL).isoformat()),
            )
        return session_id

    def principal_for_session(self, session_id: str) -> Principal | None:
        with self._db() as db:
            row = db.execute(
                "SELECT email, csrf, expires FROM sessions WHERE id_hash = ?", (sha256(session_id),)
            ).fetchone()
        if row is None or row[2] < now().isoformat():
            return None
        return self.principal(row[0], session=sha256(session_id), csrf=row[1])

    def end_session(self, principal: Principal) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (principal.session,))
            self._audit(db, principal.email, "logout", "", "")

    # -- public apps and the audit log --------------------------------------------------

    def set_public(self, app: str, public: bool, actor: str) -> None:
        with self._db() as db:
            if public:
                db.execute(
                    "INSERT INTO public_apps VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (app, now().isoformat()),
                )
            else:
                db.execute("DELETE FROM public_apps WHERE app = ?", (app,))
            self._audit(db, actor, "public" if public else "private", app, "")

    def is_public(self, app: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM public_apps WHERE app = ?", (app,)).fetchone() is not None

    def audit(self, actor: str, action: str, app: str = "", detail: str = "") -> None:
        with self._db() as db:
            self._audit(db, actor, action, app, detail)

    def audit_log(self, limit: int = 100) -> list[tuple[str, str, str, str, str]]:
        with self._db() as db:
            return db.execute("SELECT * FROM audit ORDER BY time DESC LIMIT ?", (limit,)).fetchall()

    @staticmethod
    def _audit(db: sqlite3.Connection, actor: str, action: str, app: str, detail: str) -> None:
        db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?)",
            (now().isoformat(), actor, action, app, detail),
        )
