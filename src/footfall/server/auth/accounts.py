"""Who may read what: accounts, roles per app, API tokens, sessions, and the audit log.

Kept in `DIR/accounts.sqlite` (the standard library's SQLite, in WAL mode) rather
than in DuckDB: it is small, transactional data that the CLI must be able to change
while `footfall serve` holds the event store. Collectors that share a store share their
accounts on PostgreSQL instead (`--accounts postgresql://...`): the same SQL and the same
numbered migrations run on both (auth/database.py).

Passwords are hashed with scrypt (memory-hard); tokens and session ids are stored
only as SHA-256 hashes. Roles per app are owner, maintainer and viewer; an admin
sees and manages every app. The local admin token in `secrets.json` is the CLI's
bearer as the built-in admin `LOCAL_ADMIN`; people log in as that admin only through
a one-time login code (`create_login_code`), never with the token itself.

Everything that can be granted can be taken back: tokens expire and are revoked by
their public id, a password change ends the account's sessions, accounts, roles and
apps are removed, and each change is written to the audit log.

Logins are throttled without a lock the attacker controls (see `logins.LoginThrottle`).

The SQL here must run on the SQLite of older distributions (RHEL 8 has 3.26): no
RETURNING or DROP COLUMN (3.35). A read and the delete it decides on share one
`BEGIN IMMEDIATE` transaction instead, so a login code is still used only once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from footfall.server.auth.database import Database, SqliteEngine, migrate, open_engine
from footfall.server.auth.logins import (
    LoginThrottle,
    check_password,
    dummy_password_hash,
    hash_password,
    verify_password,
)
from footfall.server.errors import NotFound, UsageError

ROLES = ("viewer", "maintainer", "owner")
LOCAL_ADMIN = "local-admin"
UNKNOWN_ACCOUNT = "(unknown account)"  # the audit actor of a failed login to no account
SESSION_TTL = dt.timedelta(days=7)
LOGIN_CODE_TTL = dt.timedelta(minutes=15)  # a one-time login link works this long, once
DEVICE_TTL = dt.timedelta(days=365)  # a browser that logged in is known this long (see LoginThrottle)
TOKEN_ID_CHARS = 12  # a token's public id: this many hex digits of its hash
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # last_used is written at most this often per token
MAX_EXPIRES_DAYS = 3660
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")

# The schema, as an ordered list of migrations. `PRAGMA user_version` counts the ones a
# file has had; each runs once, in one transaction, so a file of any age is brought up
# to date on open. Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
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
    """,
    # Token expiry, last use and a label; one-time login codes; login failure backoff; known devices.
    """
    ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN expires TEXT;
    ALTER TABLE tokens ADD COLUMN last_used TEXT;
    CREATE INDEX IF NOT EXISTS tokens_by_email ON tokens (email);
    CREATE INDEX IF NOT EXISTS sessions_by_email ON sessions (email);
    CREATE INDEX IF NOT EXISTS audit_by_time ON audit (time);
    CREATE TABLE login_codes (code_hash TEXT PRIMARY KEY, email TEXT NOT NULL, expires TEXT NOT NULL);
    CREATE TABLE login_failures (key TEXT PRIMARY KEY, email TEXT NOT NULL, failures INTEGER NOT NULL,
                                 last_failure TEXT NOT NULL, blocked_until TEXT NOT NULL);
    CREATE TABLE login_devices (device_hash TEXT PRIMARY KEY, email TEXT NOT NULL, expires TEXT NOT NULL);
    """,
    # A failure row kept whatever was typed as the email, often a password; its key says all it needs.
    # The counts are disposable, so the table is made anew: DROP COLUMN would need SQLite 3.35.0,
    # newer than Debian bullseye's, Ubuntu 20.04's or RHEL 8's. Older servers also audited a failed
    # login with the typed email as the actor, and the audit log is never pruned: such actors that
    # are no account become the marker. (This migration briefly was `DROP COLUMN email`, in
    # development only: a file at version 3 already has this table.)
    f"""
    DROP TABLE login_failures;
    CREATE TABLE login_failures (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_failure TEXT NOT NULL,
                                 blocked_until TEXT NOT NULL);
    UPDATE audit SET actor = '{UNKNOWN_ACCOUNT}'
        WHERE action = 'login_failed' AND actor NOT IN (SELECT email FROM users);
    """,
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


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


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: never the secret, only its public id (the start of its hash)."""

    id: str
    email: str
    name: str
    created: dt.datetime
    expires: dt.datetime | None
    last_used: dt.datetime | None

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= now()


@dataclasses.dataclass(frozen=True)
class UserInfo:
    email: str
    admin: bool
    roles: dict[str, str]
    created: dt.datetime


class AuditEntry(NamedTuple):
    """One audit log line; a tuple, so `for time, actor, action, app, detail in log` reads it."""

    time: dt.datetime
    actor: str
    action: str
    app: str
    detail: str


@dataclasses.dataclass(frozen=True)
class LoginAttempt:
    """What a login attempt came to: a principal, or a refusal with a wait in seconds."""

    principal: Principal | None
    retry_after: float = 0.0  # > 0: refused without checking the password (throttled)
    device: str = ""  # after a success: the new known-device token for the browser's cookie


class AccountStore:
    """The accounts, on the SQLite file at `location` or the PostgreSQL server a
    postgresql:// URL names (the --accounts setting; see auth/database.py)."""

    def __init__(self, location: Path | str) -> None:
        self.engine = open_engine(location)
        try:
            self.migrate()
        except BaseException:
            self.engine.close()
            raise

    def _sqlite(self) -> SqliteEngine:
        assert isinstance(self.engine, SqliteEngine), "a PostgreSQL account store has no SQLite file"
        return self.engine

    @property
    def path(self) -> Path:
        """The SQLite file (a SQLite store only)."""
        return self._sqlite().path

    def _connection(self) -> sqlite3.Connection:
        """This thread's SQLite connection (a SQLite store only)."""
        return self._sqlite().connection()

    @contextmanager
    def _db(self) -> Iterator[Database]:
        with self.engine.transaction() as db:
            yield db

    def migrate(self) -> None:
        """Bring the database up to the newest schema (see `database.migrate`)."""
        migrate(self.engine, MIGRATIONS)

    def close(self) -> None:
        self.engine.close()

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
        """Create or update an account; `role` "admin" (no app) or a role on `app`. True if new.

        Giving an existing account a new password ends its sessions, as `set_password` does.
        """
        self.check_role(email, role, app)
        if password:
            check_password(password)
        with self._db() as db:
            existing = db.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone()
            if password:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, 0, ?)"
                    " ON CONFLICT (email) DO UPDATE SET password = excluded.password",
                    (email, hash_password(password), now().isoformat()),
                )
                if existing:
                    self._end_sessions(db, email)
                    self._audit(db, actor, "password_change", "", email)
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

    def list_users(self) -> list[UserInfo]:
        with self._db() as db:
            users = db.execute("SELECT email, admin, created FROM users ORDER BY email").fetchall()
            roles = db.execute("SELECT email, app, role FROM roles ORDER BY app").fetchall()
        by_email: dict[str, dict[str, str]] = {}
        for email, app, role in roles:
            by_email.setdefault(email, {})[app] = role
        return [
            UserInfo(email, bool(admin), by_email.get(email, {}), _parse(created)) for email, admin, created in users
        ]

    def remove_user(self, email: str, actor: str) -> bool:
        """Delete an account with its roles, tokens, sessions and known devices. True if it existed."""
        with self._db() as db:
            existed = db.execute("DELETE FROM users WHERE email = ?", (email,)).rowcount > 0
            if not existed:
                return False
            for table in ("roles", "tokens", "sessions", "login_codes", "login_devices"):
                db.execute(f"DELETE FROM {table} WHERE email = ?", (email,))  # a fixed table name
            LoginThrottle.forget_account(db, email)
            self._audit(db, actor, "user_remove", "", email)
        return True

    def set_password(self, email: str, password: str, actor: str) -> int:
        """Set a new password and end every session of the account; returns how many ended."""
        check_password(password)
        with self._db() as db:
            changed = db.execute(
                "UPDATE users SET password = ? WHERE email = ?", (hash_password(password), email)
            ).rowcount
            if not changed:
                raise UsageError(f"no account {email!r}")
            ended = self._end_sessions(db, email)
            self._audit(db, actor, "password_change", "", f"{email}; {ended} sessions ended")
        return ended

    def remove_role(self, email: str, app: str, actor: str) -> bool:
        """Take away the account's role on `app`; True if it had one."""
        with self._db() as db:
            row = db.execute("SELECT role FROM roles WHERE email = ? AND app = ?", (email, app)).fetchone()
            if row is not None:
                db.execute("DELETE FROM roles WHERE email = ? AND app = ?", (email, app))
                self._audit(db, actor, "role_remove", app, f"{email} was {row[0]}")
        return row is not None

    def set_admin(self, email: str, admin: bool, actor: str) -> bool:
        """Grant or take away the admin flag; True if the account exists."""
        with self._db() as db:
            found = db.execute("UPDATE users SET admin = ? WHERE email = ?", (int(admin), email)).rowcount > 0
            if found:
                self._audit(db, actor, "role_change", "", f"{email} is {'admin' if admin else 'not admin'}")
        return found

    def remove_app(self, app: str, actor: str, detail: str = "") -> None:
        """Forget an app here: every role on it and its public page."""
        with self._db() as db:
            db.execute("DELETE FROM roles WHERE app = ?", (app,))
            db.execute("DELETE FROM public_apps WHERE app = ?", (app,))
            self._audit(db, actor, "app_remove", app, detail)

    def authenticate(self, email: str, password: str) -> Principal | None:
        """The account's principal if the password is right. One scrypt either way, known or not."""
        dummy = dummy_password_hash()  # made before the lookup, so even the first call costs the same
        with self._db() as db:
            row = db.execute("SELECT password FROM users WHERE email = ?", (email,)).fetchone()
        matches = verify_password(password, row[0] if row else dummy)
        if not matches or row is None:
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

    # -- login throttling and known devices --------------------------------------------

    def login(self, email: str, password: str, client: str, device: str = "") -> LoginAttempt:
        """Check a password under `LoginThrottle`'s rules.

        `client` is a key for the client's address (never the address itself); `device`
        is the known-device cookie the browser sent, if any.
        """
        known_device = self.is_known_device(device, email)
        key = "device:" + sha256(device) if known_device else "client:" + sha256(f"{client}\n{email}")
        with self._db() as db:
            # The clock is read inside the transaction: parallel attempts then see times in the
            # order they are counted, and a free failure never blocks one that read the clock earlier.
            moment = now()
            wait = LoginThrottle.begin(db, key, email, moment, known_device)
        if wait > 0:
            return LoginAttempt(None, retry_after=wait)
        principal = self.authenticate(email, password)
        if principal is None:
            return LoginAttempt(None)  # counted already, by `begin`
        with self._db() as db:
            LoginThrottle.succeeded(db, key, email, known_device)
            new_device = secrets.token_urlsafe(32)
            db.execute("DELETE FROM login_devices WHERE expires < ?", (moment.isoformat(),))
            if known_device:
                db.execute("DELETE FROM login_devices WHERE device_hash = ?", (sha256(device),))
            db.execute(
                "INSERT INTO login_devices VALUES (?, ?, ?)",
                (sha256(new_device), email, (moment + DEVICE_TTL).isoformat()),
            )
        return LoginAttempt(principal, device=new_device)

    def audit_failed_login(self, email: str) -> None:
        """Record a failed login. The actor is the email only when it names an account: an
        anonymous client may type anything there, often the password, which must not be kept."""
        with self._db() as db:
            known = db.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone() is not None
            self._audit(db, email if known else UNKNOWN_ACCOUNT, "login_failed", "", "")

    def is_known_device(self, device: str, email: str) -> bool:
        """True if `device` (a browser's cookie) logged in to `email` before and has not expired."""
        if not device:
            return False
        with self._db() as db:
            row = db.execute(
                "SELECT email FROM login_devices WHERE device_hash = ? AND expires > ?",
                (sha256(device), now().isoformat()),
            ).fetchone()
        return row is not None and row[0] == email

    # -- one-time login codes -------------------------------------------------------------

    def create_login_code(self, email: str = LOCAL_ADMIN, actor: str = LOCAL_ADMIN) -> str:
        """A random code that logs `email` in once, within `LOGIN_CODE_TTL`; stored only hashed."""
        if self.principal(email) is None:
            raise UsageError(f"no account {email!r}")
        code = secrets.token_urlsafe(32)
        moment = now()
        with self._db() as db:
            db.execute("DELETE FROM login_codes WHERE expires < ?", (moment.isoformat(),))
            db.execute(
                "INSERT INTO login_codes VALUES (?, ?, ?)", (sha256(code), email, (moment + LOGIN_CODE_TTL).isoformat())
            )
            self._audit(db, actor, "login_link_create", "", email)
        return code

    def use_login_code(self, code: str) -> Principal | None:
        """The principal a login code is for, consuming it; None when unknown, used or expired."""
        with self._db() as db:
            found = db.execute("SELECT email, expires FROM login_codes WHERE code_hash = ?", (sha256(code),)).fetchone()
            deleted = db.execute("DELETE FROM login_codes WHERE code_hash = ?", (sha256(code),)).rowcount
        if found is None or deleted != 1 or found[1] < now().isoformat():
            return None
        return self.principal(found[0])

    # -- tokens and sessions ------------------------------------------------------------

    def create_token(
        self, email: str, *, expires_days: int | None = 90, actor: str = LOCAL_ADMIN, name: str = ""
    ) -> str:
        """A new bearer token for `email`, valid `expires_days` (None: until revoked). Shown once."""
        if self.principal(email) is None or email == LOCAL_ADMIN:
            raise UsageError(f"no account {email!r}; add it with `footfall user add`")
        if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise UsageError(f"a token expires after 1 to {MAX_EXPIRES_DAYS} days")
        if len(name) > 100 or not name.isprintable():
            raise UsageError("a token name has at most 100 printable characters")
        token = "ff_" + secrets.token_urlsafe(32)
        created = now()
        expires = None if expires_days is None else (created + dt.timedelta(days=expires_days)).isoformat()
        with self._db() as db:
            db.execute(
                "INSERT INTO tokens (token_hash, email, created, name, expires) VALUES (?, ?, ?, ?, ?)",
                (sha256(token), email, created.isoformat(), name, expires),
            )
            detail = f"{email} {sha256(token)[:TOKEN_ID_CHARS]} {name}".strip()
            self._audit(db, actor, "token_create", "", detail)
        return token

    def list_tokens(self, email: str | None = None) -> list[TokenInfo]:
        query = "SELECT token_hash, email, name, created, expires, last_used FROM tokens"
        with self._db() as db:
            if email is None:
                rows = db.execute(query + " ORDER BY email, created").fetchall()
            else:
                rows = db.execute(query + " WHERE email = ? ORDER BY created", (email,)).fetchall()
        return [TokenInfo(h[:TOKEN_ID_CHARS], e, n, _parse(c), _time(x), _time(u)) for h, e, n, c, x, u in rows]

    def revoke_token(self, token_id: str, actor: str) -> bool:
        """Revoke the token whose public id is `token_id`; True if one was revoked."""
        if len(token_id) != TOKEN_ID_CHARS or any(c not in "0123456789abcdef" for c in token_id):
            return False
        with self._db() as db:
            row = db.execute(
                "SELECT email FROM tokens WHERE substr(token_hash, 1, ?) = ?", (TOKEN_ID_CHARS, token_id)
            ).fetchone()
            if row is not None:
                db.execute("DELETE FROM tokens WHERE substr(token_hash, 1, ?) = ?", (TOKEN_ID_CHARS, token_id))
                self._audit(db, actor, "token_revoke", "", f"{row[0]} {token_id}")
        return row is not None

    def principal_for_token(self, token: str) -> Principal | None:
        moment = now()
        with self._db() as db:
            row = db.execute(
                "SELECT email, expires, last_used FROM tokens WHERE token_hash = ?", (sha256(token),)
            ).fetchone()
            if row is None or (row[1] is not None and row[1] <= moment.isoformat()):
                return None
            if row[2] is None or row[2] < (moment - LAST_USED_RESOLUTION).isoformat():
                db.execute("UPDATE tokens SET last_used = ? WHERE token_hash = ?", (moment.isoformat(), sha256(token)))
        return self.principal(row[0])

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

    def end_sessions(self, email: str, actor: str) -> int:
        """End every session of an account (all its browsers) and void its unused login links;
        returns how many sessions ended."""
        with self._db() as db:
            ended = self._end_sessions(db, email)
            db.execute("DELETE FROM login_codes WHERE email = ?", (email,))
            self._audit(db, actor, "sessions_end", "", f"{email}; {ended} sessions ended")
        return ended

    @staticmethod
    def _end_sessions(db: Database, email: str) -> int:
        return db.execute("DELETE FROM sessions WHERE email = ?", (email,)).rowcount

    # -- public apps and the audit log --------------------------------------------------

    def set_public(self, app: str, public: bool, actor: str, *, exists: Callable[[str], bool]) -> None:
        """Share `app` or stop sharing it. `exists` says whether the event store has the app:
        sharing an app before it exists would make an app later created (or re-created) under
        that name public from birth, so that is refused with NotFound. It is asked inside this
        store's write transaction, which `remove_app` also needs, so a removal cannot slip
        between the check and the flag: either it sees no app, or the removal deletes the flag.
        """
        with self._db() as db:
            if public and not exists(app):
                raise NotFound(f"no app named {app!r}", code="unknown_app")
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

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT time, actor, action, app, detail FROM audit"
                f" ORDER BY time DESC, {self.engine.audit_order} DESC LIMIT ?",  # a fixed column name
                (max(0, limit),),
            ).fetchall()
        return [AuditEntry(_parse(t), actor, action, app, detail) for t, actor, action, app, detail in rows]

    @staticmethod
    def _audit(db: Database, actor: str, action: str, app: str, detail: str) -> None:
        db.execute(
            "INSERT INTO audit (time, actor, action, app, detail) VALUES (?, ?, ?, ?, ?)",
            (now().isoformat(), actor, action, app, detail),
        )


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def migrate_schema(connection: sqlite3.Connection) -> None:
    """Bring an accounts file up to the newest schema, one migration per transaction.

    `connection` is in autocommit mode (`isolation_level=None`), as `AccountStore`'s are.
    """
    migrate(SqliteEngine(Path(), connection), MIGRATIONS)
