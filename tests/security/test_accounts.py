"""Red-team regressions for the access lifecycle (issue 11, "Accounts, sessions and the dashboard").

Each test replays an attack that worked before its fix: login timing that told which
emails exist, the reusable admin token printed as the login link, credentials that
outlived a password change or could not be revoked, and a per-email lock that anyone
could trip. All against real servers, real SQLite and DuckDB files, no mocks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from footfall.server.auth.accounts import (
    LOCAL_ADMIN,
    LOGIN_CODE_TTL,
    MIGRATIONS,
    UNKNOWN_ACCOUNT,
    AccountStore,
    migrate_schema,
)
from footfall.server.auth.logins import LoginThrottle, hash_password
from footfall.server.errors import NotFound
from footfall.server.stores.duckdb import DuckDBStore
from footfall.server.stores.memory import MemoryStore
from tests.conftest import GOLDEN_APP, InThreadServer, LiveServer, footfall_command, load_golden, with_fresh_times

PASSWORD = "correct horse battery"
VICTIM = "victim@example.org"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def accounts(server: InThreadServer) -> AccountStore:
    store: AccountStore = server.app.state.context.accounts
    return store


def login(client: httpx.Client, email: str, password: str = PASSWORD, address: str = "") -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"csrf": csrf, "email": email, "password": password}, headers=headers)


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(footfall_command(*args), input=stdin, capture_output=True, text=True, timeout=120)


@contextmanager
def counting_scrypt() -> Iterator[list[int]]:
    """Count the real calls of hashlib.scrypt in this thread, with the interpreter's profiler."""
    calls = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and arg is hashlib.scrypt:
            calls[0] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


def scrypt_calls(action: Callable[[], object]) -> int:
    with counting_scrypt() as calls:
        action()
    return calls[0]


# -- 1. login timing ------------------------------------------------------------------


def test_a_login_costs_one_scrypt_whether_or_not_the_account_exists(tmp_path: Path) -> None:
    # Before: an unknown email hashed a dummy password and then verified against it: two
    # scrypts (51 ms) against one for a known email (26 ms), so timing listed the accounts.
    store = AccountStore(tmp_path / "accounts.sqlite")
    try:
        store.add_user(VICTIM, PASSWORD, "admin", None)
        store.authenticate("warm-up@example.org", "x")  # the dummy hash may be made once, on first use
        costs = {
            "known, right password": scrypt_calls(lambda: store.authenticate(VICTIM, PASSWORD)),
            "known, wrong password": scrypt_calls(lambda: store.authenticate(VICTIM, "wrong password!")),
            "unknown account": scrypt_calls(lambda: store.authenticate("nobody@example.org", PASSWORD)),
        }
    finally:
        store.close()
    assert costs == dict.fromkeys(costs, 1), costs


def test_the_first_login_after_start_costs_the_same_known_or_not(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.sqlite")
    try:
        store.add_user(VICTIM, PASSWORD, "admin", None)
        first = scrypt_calls(lambda: store.authenticate("nobody@example.org", PASSWORD))
        second = scrypt_calls(lambda: store.authenticate(VICTIM, PASSWORD))
    finally:
        store.close()
    assert first <= 2 and second == 1, "only the process's very first login makes the dummy hash"


# -- 2. the login link ----------------------------------------------------------------


def announced_link(server: LiveServer) -> str:
    match = re.search(r"Open the dashboard: (\S+)", server.log.read_text())
    assert match, server.log.read_text()
    return match.group(1)


def test_serve_prints_a_one_time_link_not_the_admin_token(live_server: LiveServer) -> None:
    log = live_server.log.read_text()
    assert live_server.token not in log, "the permanent admin token must never be printed"
    link = announced_link(live_server)
    code = link.split("code=", 1)[1]
    assert httpx.get(live_server.url + "/api/v1/apps", headers=bearer(code)).status_code == 401
    with httpx.Client() as browser:
        first = browser.get(link)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert browser.get(live_server.url + "/").status_code == 200, "the link logged the browser in"
    with httpx.Client() as replay:
        again = replay.get(link)
        assert again.status_code == 401 and "footfall_session" not in again.headers.get("set-cookie", "")
    with httpx.Client() as browser:
        assert browser.get(f"{live_server.url}/login?token={live_server.token}").status_code == 200
        assert browser.get(live_server.url + "/").status_code == 303, "the admin token is not a login link"


def test_a_login_link_expires(app_server: InThreadServer) -> None:
    code = accounts(app_server).create_login_code()
    with sqlite3.connect(app_server.data / "accounts.sqlite") as db:
        past = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)).isoformat()
        db.execute("UPDATE login_codes SET expires = ?", (past,))
    assert dt.timedelta(minutes=15) >= LOGIN_CODE_TTL, "short-lived"
    with httpx.Client(base_url=app_server.url) as browser:
        assert browser.get(f"/login?code={code}").status_code == 401
        assert browser.get("/").status_code == 303


def test_the_login_link_is_stored_only_hashed(app_server: InThreadServer) -> None:
    code = accounts(app_server).create_login_code()
    files = b"".join(p.read_bytes() for p in app_server.data.glob("accounts.sqlite*"))
    assert code.encode() not in files


def test_admin_rotate_and_login_link_on_a_running_server(live_server: LiveServer) -> None:
    data = str(live_server.data)
    old = live_server.token
    assert httpx.get(live_server.url + "/api/v1/apps", headers=bearer(old)).status_code == 200
    with httpx.Client() as admin_browser:
        assert admin_browser.get(announced_link(live_server)).status_code == 303
        rotated = run_cli("admin", "rotate", "--data", data)
        assert admin_browser.get(live_server.url + "/").status_code == 303, "logged out by the rotation"
    assert rotated.returncode == 0, rotated.stderr
    assert old not in rotated.stdout + rotated.stderr
    new = live_server.token
    assert new != old
    assert httpx.get(live_server.url + "/api/v1/apps", headers=bearer(old)).status_code == 401, "old token dead"
    assert httpx.get(live_server.url + "/api/v1/apps", headers=bearer(new)).status_code == 200
    assert (live_server.data / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert run_cli("app", "add", "after-rotation", "--data", data).returncode == 0, "the CLI uses the new token"
    assert "1 admin sessions ended" in rotated.stdout, "the session the announced link opened ended too"
    link = run_cli("admin", "login-link", "--data", data)
    assert link.returncode == 0, link.stderr
    url = link.stdout.splitlines()[-1]
    assert url.startswith(live_server.url + "/login?code=") and new not in url
    with httpx.Client() as browser:
        assert browser.get(url).status_code == 303
        assert browser.get(url).status_code == 401, "used once"
    actions = [json.loads(line)["action"] for line in run_cli("audit", "--json", "--data", data).stdout.splitlines()]
    assert "admin_token_rotate" in actions and "login_link_create" in actions


def test_a_damaged_or_missing_secrets_file_locks_the_admin_out_cleanly(app_server: InThreadServer) -> None:
    token = app_server.token
    secrets_file = app_server.data / "secrets.json"
    key = json.loads(secrets_file.read_text())["install_key"]
    assert httpx.get(app_server.url + "/api/v1/apps", headers=bearer(token)).status_code == 200
    secrets_file.write_text("{not json")
    assert httpx.get(app_server.url + "/api/v1/apps", headers=bearer(token)).status_code == 401
    secrets_file.unlink()
    assert httpx.get(app_server.url + "/api/v1/apps", headers=bearer(token)).status_code == 401
    assert not secrets_file.exists(), "a request never makes new secrets (a new install key)"
    secrets_file.write_text(json.dumps({"install_key": key, "admin_token": token}))
    assert httpx.get(app_server.url + "/api/v1/apps", headers=bearer(token)).status_code == 200


# -- 3. revocation ----------------------------------------------------------------------


@pytest.fixture
def served(app_server: InThreadServer) -> InThreadServer:
    batch = with_fresh_times(load_golden("batch-command.json"))
    assert httpx.post(app_server.url + "/v1/batch", json=batch).status_code == 202
    accounts(app_server).add_user(VICTIM, PASSWORD, "owner", GOLDEN_APP)
    return app_server


def test_a_password_change_ends_every_session(served: InThreadServer) -> None:
    with httpx.Client(base_url=served.url) as laptop, httpx.Client(base_url=served.url) as phone:
        assert login(laptop, VICTIM).status_code == 303 and login(phone, VICTIM).status_code == 303
        assert laptop.get(f"/apps/{GOLDEN_APP}").status_code == 200
        assert phone.get("/api/v1/apps").status_code == 200
        changed = run_cli(
            "user", "passwd", VICTIM, "--password-stdin", "--data", str(served.data), stdin="a brand new password\n"
        )
        assert changed.returncode == 0 and "2 sessions ended" in changed.stdout, changed.stderr
        assert laptop.get(f"/apps/{GOLDEN_APP}").status_code == 303, "back to the login page"
        assert phone.get("/api/v1/apps").status_code == 401
        assert login(laptop, VICTIM).status_code == 401, "the old password no longer works"
        assert login(laptop, VICTIM, "a brand new password").status_code == 303


def test_tokens_expire_and_are_revoked_at_once(served: InThreadServer) -> None:
    store = accounts(served)
    kept = store.create_token(VICTIM, name="kept")
    revoked = store.create_token(VICTIM, name="ci")
    expiring = store.create_token(VICTIM, expires_days=1, name="short")
    for token in (kept, revoked, expiring):
        assert httpx.get(served.url + "/api/v1/apps", headers=bearer(token)).status_code == 200
    listed = {t.name: t for t in store.list_tokens(VICTIM)}
    assert all(t.last_used is not None for t in listed.values()), "use is recorded"
    assert all(t.id not in (kept, revoked, expiring) and len(t.id) == 12 for t in listed.values())
    result = run_cli("token", "revoke", listed["ci"].id, "--data", str(served.data))
    assert result.returncode == 0, result.stderr
    assert httpx.get(served.url + "/api/v1/apps", headers=bearer(revoked)).status_code == 401
    with sqlite3.connect(served.data / "accounts.sqlite") as db:
        past = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)).isoformat()
        db.execute("UPDATE tokens SET expires = ? WHERE name = 'short'", (past,))
    assert httpx.get(served.url + "/api/v1/apps", headers=bearer(expiring)).status_code == 401
    assert httpx.get(served.url + "/api/v1/apps", headers=bearer(kept)).status_code == 200
    assert not store.revoke_token(listed["ci"].id, "test"), "gone already"
    assert not store.revoke_token("%", "test") and not store.revoke_token("", "test"), "no wildcard revokes"
    assert {"token_create", "token_revoke"} <= {e.action for e in store.audit_log()}


def test_removing_a_role_or_an_account_takes_effect_at_once(served: InThreadServer) -> None:
    store = accounts(served)
    token = store.create_token(VICTIM)
    summary = f"{served.url}/api/v1/apps/{GOLDEN_APP}/summary"
    with httpx.Client(base_url=served.url) as browser:
        assert login(browser, VICTIM).status_code == 303
        assert httpx.get(summary, headers=bearer(token)).status_code == 200
        assert store.remove_role(VICTIM, GOLDEN_APP, "test")
        assert httpx.get(summary, headers=bearer(token)).status_code == 403
        assert browser.get(f"/apps/{GOLDEN_APP}").status_code == 404
        store.add_user(VICTIM, "", "viewer", GOLDEN_APP)
        assert store.remove_user(VICTIM, "test")
        assert httpx.get(summary, headers=bearer(token)).status_code == 401
        assert browser.get("/").status_code == 303
    assert store.list_tokens(VICTIM) == [] and VICTIM not in {u.email for u in store.list_users()}
    assert {"role_remove", "user_remove"} <= {e.action for e in store.audit_log()}


def test_an_app_is_removed_with_all_its_data(served: InThreadServer) -> None:
    store = accounts(served)
    owner = store.create_token(VICTIM)
    store.set_public(GOLDEN_APP, True, VICTIM, exists=served.store.has_app)
    assert served.store.query("SELECT count(*) FROM events WHERE app = $app", {"app": GOLDEN_APP}).rows[0][0] == 2
    url = f"{served.url}/api/v1/apps/{GOLDEN_APP}"
    assert httpx.delete(url, headers=bearer(owner)).status_code == 403, "owners may not, only admins"
    removed = httpx.delete(url, headers=bearer(served.token))
    assert removed.status_code == 200
    assert removed.json() == {"name": GOLDEN_APP, "events": 2, "unloaded_events": 0, "releases": 0}
    assert served.store.query("SELECT count(*) FROM events WHERE app = $app", {"app": GOLDEN_APP}).rows[0][0] == 0
    assert not served.store.has_app(GOLDEN_APP)
    assert store.principal(VICTIM) is not None and store.principal(VICTIM).roles == {}  # type: ignore[union-attr]
    assert not store.is_public(GOLDEN_APP)
    batch = with_fresh_times(load_golden("batch-command.json"))
    assert httpx.post(served.url + "/v1/batch", json=batch).status_code != 202, "its events are refused"
    assert httpx.delete(url, headers=bearer(served.token)).status_code == 404
    assert ("app_remove", GOLDEN_APP) in {(e.action, e.app) for e in store.audit_log()}


def test_the_store_removes_keys_schema_and_lets_the_name_be_reused(tmp_path: Path) -> None:
    for store in (MemoryStore(), DuckDBStore(tmp_path / "footfall.duckdb")):
        try:
            store.add_app("gone")
            store.add_key("gone", "ga-tid", "UA-1-1")
            store.set_schema("gone", "{}")
            assert store.remove_app("gone") == 0 and store.remove_app("gone") == 0
            assert store.app_for_key("ga-tid", "UA-1-1") is None and store.schema("gone") is None
            assert not store.has_app("gone")
            store.add_app("other")
            store.add_key("other", "ga-tid", "UA-1-1")  # the key is free again
        finally:
            store.close()
    reopened = DuckDBStore(tmp_path / "footfall.duckdb")
    try:
        assert [a.name for a in reopened.list_apps()] == ["other"]
    finally:
        reopened.close()


# -- 5. login throttling ------------------------------------------------------------------


@pytest.fixture
def behind_proxy(app_server_factory: Any) -> InThreadServer:
    """A server that trusts loopback's X-Forwarded-For, so one test plays many addresses."""
    server: InThreadServer = app_server_factory(trusted_proxies="127.0.0.1", logins_per_minute=600)
    accounts(server).add_user(VICTIM, PASSWORD, "owner", GOLDEN_APP)
    return server


def test_an_attacker_cannot_lock_the_owner_out(app_server_factory: Any) -> None:
    # Before: one hard bucket per email. Ten wrong passwords a minute from anywhere locked
    # the account for everyone. Now failures slow the failing client, and a browser that
    # logged in before keeps getting in with the right password.
    server: InThreadServer = app_server_factory(trusted_proxies="127.0.0.1")  # the default logins_per_minute
    accounts(server).add_user(VICTIM, PASSWORD, "owner", GOLDEN_APP)
    with httpx.Client(base_url=server.url) as owner:
        assert login(owner, VICTIM, address="192.0.2.1").status_code == 303  # the owner's browser is known
        with httpx.Client(base_url=server.url) as attacker:
            answers = [
                login(attacker, VICTIM, f"guess number {n}", address=f"198.51.100.{n}").status_code
                for n in range(LoginThrottle.ACCOUNT_CAP + 5)
            ]
        assert answers[: LoginThrottle.ACCOUNT_CAP] == [401] * LoginThrottle.ACCOUNT_CAP
        assert set(answers[LoginThrottle.ACCOUNT_CAP :]) == {429}, "guessing from many addresses is capped"
        owner.cookies.delete("footfall_session")
        assert login(owner, VICTIM, address="192.0.2.1").status_code == 303, "the owner still gets in"
        assert login(owner, VICTIM, address="203.0.113.9").status_code == 303, "from any address"
        with httpx.Client(base_url=server.url) as neighbour:  # behind the owner's own address
            shared = [login(neighbour, VICTIM, "guess", address="192.0.2.1").status_code for _ in range(12)]
        assert shared[-1] == 429, "the address's own limit holds"
        assert login(owner, VICTIM, address="192.0.2.1").status_code == 303, "but not against the owner's browser"


def test_failures_back_off_per_client(behind_proxy: InThreadServer) -> None:
    with httpx.Client(base_url=behind_proxy.url) as attacker:
        free = [login(attacker, VICTIM, "wrong password", "198.51.100.7").status_code for _ in range(4)]
        assert free == [401, 401, 401, 401]
        refused = login(attacker, VICTIM, PASSWORD, "198.51.100.7")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "footfall_session" not in refused.headers.get("set-cookie", ""), "not even the right password"
    with httpx.Client(base_url=behind_proxy.url) as someone_else:
        assert login(someone_else, VICTIM, address="192.0.2.50").status_code == 303


def test_parallel_guesses_do_not_slip_past_the_backoff(behind_proxy: InThreadServer) -> None:
    # Counting a failure only after the password check let a burst of parallel guesses
    # all pass the check first. Each attempt is counted before its check now.
    attempts = 16
    clients = [httpx.Client(base_url=behind_proxy.url, timeout=60) for _ in range(attempts)]
    try:
        forms = []
        for client in clients:
            page = client.get("/login")
            forms.append(re.search(r'name="csrf" value="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
        start = threading.Barrier(attempts)

        def guess(index: int) -> int:
            start.wait(timeout=30)
            data = {"csrf": forms[index], "email": VICTIM, "password": f"guess {index}"}
            answer = clients[index].post("/login", data=data, headers={"X-Forwarded-For": "198.51.100.9"})
            return answer.status_code

        with ThreadPoolExecutor(attempts) as pool:
            statuses = sorted(pool.map(guess, range(attempts)))
    finally:
        for client in clients:
            client.close()
    checked = LoginThrottle.FREE_FAILURES + 1  # the free ones, and the one that starts the wait
    assert statuses == [401] * checked + [429] * (attempts - checked), repr(statuses)


def test_the_throttle_treats_unknown_emails_alike(behind_proxy: InThreadServer) -> None:
    with httpx.Client(base_url=behind_proxy.url) as attacker:
        for email in (VICTIM, "nobody@example.org"):
            answers = [login(attacker, email, "wrong password", "198.51.100.8").status_code for _ in range(6)]
            assert answers == [401, 401, 401, 401, 429, 429], (email, answers)


def test_backoff_doubles_and_is_bounded() -> None:
    delays = [LoginThrottle.delay(n).total_seconds() for n in range(1, 40)]
    free = LoginThrottle.FREE_FAILURES
    base = LoginThrottle.BASE_DELAY.total_seconds()
    assert delays[:free] == [0.0] * free
    assert delays[free : free + 3] == [base, 2 * base, 4 * base]
    assert max(delays) == LoginThrottle.MAX_DELAY.total_seconds() == delays[-1]


# -- schema migration ---------------------------------------------------------------------


def test_an_old_accounts_file_is_migrated_and_its_tokens_keep_working(tmp_path: Path) -> None:
    path = tmp_path / "accounts.sqlite"
    token = "ff_made-by-an-older-footfall"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE users (email TEXT PRIMARY KEY, password TEXT NOT NULL, admin INTEGER NOT NULL,
                                created TEXT NOT NULL);
            CREATE TABLE roles (email TEXT NOT NULL, app TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (email, app));
            CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, email TEXT NOT NULL, created TEXT NOT NULL);
            CREATE TABLE sessions (id_hash TEXT PRIMARY KEY, email TEXT NOT NULL, csrf TEXT NOT NULL,
                                   expires TEXT NOT NULL);
            CREATE TABLE public_apps (app TEXT PRIMARY KEY, since TEXT NOT NULL);
            CREATE TABLE audit (time TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, app TEXT NOT NULL,
                                detail TEXT NOT NULL);
            INSERT INTO users VALUES ('old@example.org', 'scrypt$x', 0, '2026-01-01T00:00:00');
            """
        )
        db.execute(
            "INSERT INTO tokens VALUES (?, 'old@example.org', '2026-01-01T00:00:00')",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
    store = AccountStore(path)
    try:
        (listed,) = store.list_tokens()
        assert (listed.email, listed.expires, listed.last_used) == ("old@example.org", None, None)
        assert store.principal_for_token(token) is not None
        assert store.list_tokens()[0].last_used is not None
    finally:
        store.close()
    again = AccountStore(path)  # opening twice runs nothing twice
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


# -- what a failed login keeps (red team 5, review 7) ----------------------------------------


def stored_text(path: Path) -> str:
    """Every value in every table of an accounts file, as one string."""
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(str(row) for table in tables for row in db.execute(f"SELECT * FROM {table}"))


def test_a_failed_login_keeps_what_was_typed_as_the_email_nowhere(served: InThreadServer) -> None:
    typed_password = "Tr0ub4dor&3-typed-in-the-wrong-field"
    with httpx.Client(base_url=served.url) as client:
        assert login(client, typed_password).status_code == 401
        assert login(client, VICTIM, "not the password").status_code == 401
    store = accounts(served)
    with sqlite3.connect(store.path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(login_failures)")}
        assert "email" not in columns
        assert db.execute("SELECT count(*) FROM login_failures").fetchone()[0] >= 2  # still counted
    assert typed_password not in stored_text(store.path)
    failed = [entry.actor for entry in store.audit_log() if entry.action == "login_failed"]
    assert sorted(failed) == sorted([UNKNOWN_ACCOUNT, VICTIM])  # an account's own failures keep its name


# -- upgrading an accounts file on any SQLite (review 8) ------------------------------------

# An accounts file as footfall wrote it up to migration 2, spelled out rather than taken from
# MIGRATIONS, so these tests keep describing the files that exist. Its login_failures kept the
# typed email, and older servers audited a failed login with the typed email as the actor.
VERSION_2_SCHEMA = """
    CREATE TABLE users (email TEXT PRIMARY KEY, password TEXT NOT NULL, admin INTEGER NOT NULL, created TEXT NOT NULL);
    CREATE TABLE roles (email TEXT NOT NULL, app TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (email, app));
    CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, email TEXT NOT NULL, created TEXT NOT NULL,
                         name TEXT NOT NULL DEFAULT '', expires TEXT, last_used TEXT);
    CREATE TABLE sessions (id_hash TEXT PRIMARY KEY, email TEXT NOT NULL, csrf TEXT NOT NULL, expires TEXT NOT NULL);
    CREATE TABLE public_apps (app TEXT PRIMARY KEY, since TEXT NOT NULL);
    CREATE TABLE audit (time TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, app TEXT NOT NULL,
                        detail TEXT NOT NULL);
    CREATE INDEX tokens_by_email ON tokens (email);
    CREATE INDEX sessions_by_email ON sessions (email);
    CREATE INDEX audit_by_time ON audit (time);
    CREATE TABLE login_codes (code_hash TEXT PRIMARY KEY, email TEXT NOT NULL, expires TEXT NOT NULL);
    CREATE TABLE login_failures (key TEXT PRIMARY KEY, email TEXT NOT NULL, failures INTEGER NOT NULL,
                                 last_failure TEXT NOT NULL, blocked_until TEXT NOT NULL);
    CREATE TABLE login_devices (device_hash TEXT PRIMARY KEY, email TEXT NOT NULL, expires TEXT NOT NULL);
    PRAGMA user_version = 2;
"""
# SQL that SQLite gained after 3.26.0 (RHEL 8), and the version that brought it. Debian bullseye
# has 3.34.1, Ubuntu 20.04 3.31.1.
NEWER_SQL = {
    r"\bRETURNING\b": "3.35.0",
    r"\bDROP\s+COLUMN\b": "3.35.0",
    r"->>?": "3.38.0",
    r"\bunixepoch\s*\(": "3.38.0",
    r"\bSTRICT\b": "3.37.0",
    r"\bIIF\s*\(": "3.32.0",
    r"\bNULLS\s+(FIRST|LAST)\b": "3.30.0",
}
TYPED_SECRET = "Tr0ub4dor&3-typed-as-the-email"
OLD_AUDIT = [  # (actor, action) as older servers wrote them
    (TYPED_SECRET, "login_failed"),
    (VICTIM, "login_failed"),  # an account's own failures keep its name
    ("gone@example.org", "login_failed"),  # not an account (any more): indistinguishable from typing
    (LOCAL_ADMIN, "role_change"),  # other actions are left alone
]


def version_2_file(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_2_SCHEMA)
        db.execute("INSERT INTO users VALUES (?, ?, 0, '2026-01-01T00:00:00')", (VICTIM, hash_password(PASSWORD)))
        db.execute("INSERT INTO login_failures VALUES ('client:ab', ?, 1, '2026-01-01', '2026-01-01')", (TYPED_SECRET,))
        db.executemany(
            "INSERT INTO audit VALUES ('2026-01-01T00:00:00', ?, ?, '', '')",
            OLD_AUDIT,
        )
    db.close()
    return path


def refusing_drop_column(action: int, first: str | None, second: str | None, third: str | None, _: object) -> int:
    """An authorizer that acts as SQLite before 3.35.0 for DROP COLUMN: SQLite names a column
    (the third argument) in an ALTER TABLE check only for DROP COLUMN."""
    if action == sqlite3.SQLITE_ALTER_TABLE and third is not None:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def test_no_accounts_migration_needs_a_newer_sqlite() -> None:
    """Above all no DROP COLUMN (3.35.0): an upgraded server could not open its accounts file."""
    newer = {
        (number, pattern)
        for number, script in enumerate(MIGRATIONS, start=1)
        for pattern in NEWER_SQL
        if re.search(pattern, script, re.IGNORECASE)
    }
    assert newer == set()


def test_a_version_2_file_upgrades_where_drop_column_is_refused(tmp_path: Path) -> None:
    path = version_2_file(tmp_path / "accounts.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.set_authorizer(refusing_drop_column)
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):  # the stand-in does refuse it
            db.execute("ALTER TABLE login_devices DROP COLUMN expires")
        migrate_schema(db)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        columns = [row[1] for row in db.execute("PRAGMA table_info(login_failures)")]
        assert columns == ["key", "failures", "last_failure", "blocked_until"]
    finally:
        db.close()
    assert TYPED_SECRET not in stored_text(path)


def test_a_version_2_file_opens_and_its_audit_keeps_no_typed_email(tmp_path: Path) -> None:
    path = version_2_file(tmp_path / "accounts.sqlite")
    store = AccountStore(path)
    try:
        logged = sorted((entry.actor, entry.action) for entry in store.audit_log())
        assert logged == sorted(
            [
                (UNKNOWN_ACCOUNT, "login_failed"),
                (VICTIM, "login_failed"),
                (UNKNOWN_ACCOUNT, "login_failed"),
                (LOCAL_ADMIN, "role_change"),
            ]
        )
        # The rebuilt table counts failures and lets the account in.
        assert store.login(VICTIM, "not the password", "client").principal is None
        assert store.login(VICTIM, PASSWORD, "client").principal is not None
    finally:
        store.close()
    assert TYPED_SECRET not in stored_text(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


def test_a_file_migrated_to_version_3_by_drop_column_still_opens(tmp_path: Path) -> None:
    """Migration 3 was briefly `ALTER TABLE login_failures DROP COLUMN email` (development files only):
    such a file already has the right table, and is not migrated again."""
    path = tmp_path / "accounts.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_2_SCHEMA)
        if sqlite3.sqlite_version_info >= (3, 35, 0):
            db.execute("ALTER TABLE login_failures DROP COLUMN email")
        else:  # the same table, on a SQLite that could not have made this file
            db.executescript(
                "DROP TABLE login_failures; CREATE TABLE login_failures (key TEXT PRIMARY KEY,"
                " failures INTEGER NOT NULL, last_failure TEXT NOT NULL, blocked_until TEXT NOT NULL);"
            )
        db.execute("INSERT INTO users VALUES (?, ?, 0, '2026-01-01T00:00:00')", (VICTIM, hash_password(PASSWORD)))
        db.execute("PRAGMA user_version = 3")
    db.close()
    store = AccountStore(path)
    try:
        assert store.login(VICTIM, "not the password", "client").principal is None
        assert store.login(VICTIM, PASSWORD, "client").principal is not None
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


def test_the_account_store_runs_only_sql_that_older_sqlite_knows(tmp_path: Path) -> None:
    """Once the file opens, every change to accounts must work there too: each statement the store
    runs through a whole access lifecycle is read from SQLite's own trace."""
    store = AccountStore(tmp_path / "accounts.sqlite")
    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    try:
        assert store.add_user(VICTIM, PASSWORD, "owner", GOLDEN_APP)
        token = store.create_token(VICTIM)
        (listed,) = store.list_tokens(VICTIM)
        assert store.revoke_token(listed.id, LOCAL_ADMIN)
        assert not store.revoke_token(listed.id, LOCAL_ADMIN)
        assert store.principal_for_token(token) is None
        code = store.create_login_code(VICTIM)
        assert store.use_login_code(code) is not None
        assert store.use_login_code(code) is None
        assert store.login(VICTIM, "not the password", "client").principal is None
        assert store.login(VICTIM, PASSWORD, "client").principal is not None
        store.create_session(VICTIM)
        assert store.set_password(VICTIM, PASSWORD + "!", LOCAL_ADMIN) == 1
        store.create_session(VICTIM)
        assert store.end_sessions(VICTIM, LOCAL_ADMIN) == 1
        assert store.set_admin(VICTIM, True, LOCAL_ADMIN)
        assert not store.set_admin("nobody@example.org", True, LOCAL_ADMIN)
        assert store.remove_role(VICTIM, GOLDEN_APP, LOCAL_ADMIN)
        assert not store.remove_role(VICTIM, GOLDEN_APP, LOCAL_ADMIN)
        assert store.remove_user(VICTIM, LOCAL_ADMIN)
        assert not store.remove_user(VICTIM, LOCAL_ADMIN)
        assert store.principal(VICTIM) is None
    finally:
        store.close()
    assert len(statements) > 20
    newer = {
        (pattern, statement)
        for statement in statements
        for pattern in NEWER_SQL
        if re.search(pattern, statement, re.IGNORECASE)
    }
    assert newer == set()


def test_the_accounts_store_refuses_to_share_an_app_the_event_store_lacks(served: InThreadServer) -> None:
    store = accounts(served)
    with pytest.raises(NotFound):
        store.set_public("no-such-app", True, VICTIM, exists=served.store.has_app)
    assert not store.is_public("no-such-app")
    store.set_public("no-such-app", False, VICTIM, exists=served.store.has_app)  # stopping sharing is always fine
    store.set_public(GOLDEN_APP, True, VICTIM, exists=served.store.has_app)
    assert store.is_public(GOLDEN_APP)
