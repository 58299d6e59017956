"""The account store on both engines: the SQLite file in --data and a shared PostgreSQL.

The same calls, the same answers: a login code is used once even when two stores (two
collectors) race for it, tokens and sessions made through one store work through another,
failed logins are throttled across stores, and a removed account is gone everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from footfall.server.auth.accounts import LOCAL_ADMIN, MIGRATIONS, AccountStore
from footfall.server.errors import StoreUnavailable
from tests.postgres import PostgresServer

EMAIL = "maintainer@example.org"
PASSWORD = "a long enough passphrase"
APP = "golden-tool"
RACERS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def open_accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], AccountStore]]:
    """Opens account stores on one database: each call is another collector's store."""
    location: Path | str = tmp_path / "accounts.sqlite"
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        location = server.database()
    opened: list[AccountStore] = []

    def open_one() -> AccountStore:
        store = AccountStore(location)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def test_an_account_made_through_one_store_logs_in_through_another(open_accounts: Callable[[], AccountStore]) -> None:
    first, second = open_accounts(), open_accounts()
    assert first.add_user(EMAIL, PASSWORD, "owner", APP)
    attempt = second.login(EMAIL, PASSWORD, "client")
    assert attempt.principal is not None and attempt.principal.role(APP) == "owner"
    assert second.login(EMAIL, "not the password", "client").principal is None
    session = second.create_session(EMAIL)
    found = first.principal_for_session(session)
    assert found is not None and found.email == EMAIL


def test_a_token_made_through_one_store_works_and_is_revoked_through_another(
    open_accounts: Callable[[], AccountStore],
) -> None:
    first, second = open_accounts(), open_accounts()
    first.add_user(EMAIL, PASSWORD, "viewer", APP)
    token = first.create_token(EMAIL, name="ci")
    principal = second.principal_for_token(token)
    assert principal is not None and principal.can_read(APP) and not principal.can_own(APP)
    (listed,) = second.list_tokens(EMAIL)
    assert listed.name == "ci" and listed.last_used is not None
    assert second.revoke_token(listed.id, LOCAL_ADMIN)
    assert first.principal_for_token(token) is None


def race_for(stores: list[AccountStore], code: str) -> list[str]:
    """`RACERS` threads, spread over `stores`, use `code` at once; the emails they got back."""
    start = threading.Barrier(RACERS)
    winners: list[str] = []

    def race(store: AccountStore) -> None:
        start.wait()
        principal = store.use_login_code(code)
        if principal is not None:
            winners.append(principal.email)

    threads = [threading.Thread(target=race, args=(stores[i % len(stores)],)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return winners


def test_a_login_code_is_used_once_when_stores_race_for_it(open_accounts: Callable[[], AccountStore]) -> None:
    stores = [open_accounts() for _ in range(2)]
    stores[0].add_user(EMAIL, PASSWORD, "owner", APP)
    for _ in range(3):
        assert race_for(stores, stores[0].create_login_code(EMAIL)) == [EMAIL]


def test_failed_logins_back_off_across_stores(open_accounts: Callable[[], AccountStore]) -> None:
    first, second = open_accounts(), open_accounts()
    first.add_user(EMAIL, PASSWORD, "owner", APP)
    waits = [(first if i % 2 else second).login(EMAIL, "wrong", "client").retry_after for i in range(12)]
    assert waits[0] == 0 and waits[-1] > 0  # counted in the shared database, whichever store asked


def test_removal_and_the_audit_log_are_shared(open_accounts: Callable[[], AccountStore]) -> None:
    first, second = open_accounts(), open_accounts()
    first.add_user(EMAIL, PASSWORD, "owner", APP)
    token = first.create_token(EMAIL)
    assert second.remove_user(EMAIL, LOCAL_ADMIN)
    assert first.principal_for_token(token) is None
    assert first.login(EMAIL, PASSWORD, "client").principal is None
    actions = [entry.action for entry in first.audit_log()]
    assert actions[:3] == ["user_remove", "token_create", "role_change"]  # newest first, in order


def test_opening_an_up_to_date_database_again_changes_nothing(open_accounts: Callable[[], AccountStore]) -> None:
    first = open_accounts()
    first.add_user(EMAIL, PASSWORD, "owner", APP)
    second = open_accounts()  # runs the migrations again: each is skipped
    assert [user.email for user in second.list_users()] == [EMAIL]
    with second._db() as db:
        assert second.engine.version(db) == len(MIGRATIONS)


def test_an_unreachable_postgresql_is_a_clear_error(postgres_server: PostgresServer) -> None:
    from tests.clickhouse_process import free_port

    with pytest.raises(StoreUnavailable, match="accounts database cannot be reached") as raised:
        AccountStore(f"postgresql://footfall:a-secret-password@127.0.0.1:{free_port()}/nothing")
    assert "a-secret-password" not in str(raised.value)
