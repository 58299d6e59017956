"""Several collectors on one ClickHouse database: each store reloads the shared registry.

- A client sending events for apps nobody registered must not turn each request into a
  ClickHouse query: reloads on a miss are single-flight and at most one per
  `MISS_REFRESH_INTERVAL_S`.
- A change made through another store (a time zone, a removal) is seen without any miss,
  by the periodic reload; an app removed elsewhere is refused here, queued events included.
- The install key: the first fingerprint written wins, and another key is refused.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from footfall.server.datadir import ServerSecrets
from footfall.server.errors import UsageError
from footfall.server.ingest.segments import encode
from footfall.server.stores.base import EventRecord
from footfall.server.stores.clickhouse import (
    MISS_REFRESH_INTERVAL_S,
    REGISTRY_REFRESH_S,
    ClickHouseStore,
    HttpTransport,
    parse_url,
)
from tests.clickhouse import ClickHouseServer
from tests.clickhouse_cluster import ClickHouseCluster
from tests.conftest import wait_until

FLOOD_S = 3.0
FLOOD_THREADS = 4


class CountingTransport(HttpTransport):
    """The real HTTP transport, counting the registry reloads it carries."""

    def __init__(self, url: str) -> None:
        super().__init__(parse_url(url))
        self.reloads = 0
        self._count = threading.Lock()

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        if sql.startswith("SELECT name, timezone, updated, deleted FROM apps FINAL"):
            with self._count:
                self.reloads += 1
        return super().run(sql, body, settings)


@pytest.fixture
def database(clickhouse_server: ClickHouseServer) -> str:
    return clickhouse_server.database()


@pytest.fixture
def stores(database: str) -> Iterator[tuple[ClickHouseStore, ClickHouseStore, CountingTransport]]:
    transport = CountingTransport(database)
    first, second = ClickHouseStore(database), ClickHouseStore(database, transport)
    try:
        yield first, second, transport
    finally:
        second.close()
        first.close()


def test_unknown_apps_cannot_hammer_clickhouse(
    stores: tuple[ClickHouseStore, ClickHouseStore, CountingTransport],
) -> None:
    _, store, transport = stores
    before = transport.reloads
    asked = [0] * FLOOD_THREADS
    deadline = time.monotonic() + FLOOD_S

    def flood(worker: int) -> None:
        while time.monotonic() < deadline:
            assert not store.has_app(f"nobody-{worker}-{asked[worker]}")
            assert store.app_for_key("ga-tid", f"UA-{asked[worker]}-1") is None
            asked[worker] += 1

    threads = [threading.Thread(target=flood, args=(worker,)) for worker in range(FLOOD_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(FLOOD_S + 30)
    reloads = transport.reloads - before
    bound = FLOOD_S / MISS_REFRESH_INTERVAL_S + FLOOD_S / REGISTRY_REFRESH_S + 2  # +2: the edges of the window
    assert sum(asked) > 100 * reloads, "the flood asked far more often than the store reloaded"
    assert reloads <= bound, f"{reloads} reloads for {sum(asked)} unknown names in {FLOOD_S} s"


def test_an_app_registered_elsewhere_is_found_at_once_on_a_miss(
    stores: tuple[ClickHouseStore, ClickHouseStore, CountingTransport],
) -> None:
    first, second, _ = stores
    time.sleep(MISS_REFRESH_INTERVAL_S)  # past the bound of the reloads at start
    first.add_app("fresh-tool")
    first.add_key("fresh-tool", "ga-tid", "UA-7-1")
    assert second.has_app("fresh-tool")
    assert second.app_for_key("ga-tid", "UA-7-1") == ("fresh-tool", "")


def test_changes_and_removals_elsewhere_are_seen_without_a_miss(
    stores: tuple[ClickHouseStore, ClickHouseStore, CountingTransport],
) -> None:
    first, second, _ = stores
    time.sleep(MISS_REFRESH_INTERVAL_S)  # past the bound of the reloads at start
    first.add_app("zoned-tool")
    assert second.has_app("zoned-tool")
    first.set_timezone("zoned-tool", "Europe/Paris")
    first.set_schema("zoned-tool", '{"events": {"start": {}}}')
    limit = time.monotonic() + 3 * REGISTRY_REFRESH_S
    while second.timezone("zoned-tool") != "Europe/Paris" or second.schema("zoned-tool") is None:
        assert time.monotonic() < limit, "the periodic reload did not bring the change"
        time.sleep(0.1)

    removed: list[str] = []
    second.on_removed = removed.append
    first.remove_app("zoned-tool")
    limit = time.monotonic() + 3 * REGISTRY_REFRESH_S
    while second.registry.apps:
        assert time.monotonic() < limit, "the periodic reload did not bring the removal"
        time.sleep(0.1)
    assert removed == ["zoned-tool"] and not second.has_app("zoned-tool")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    fields = dict.fromkeys(("app_version", "install", "session", "os", "os_version", "arch", "runtime"), "")
    fields |= dict.fromkeys(("runtime_version", "ci", "container", "country"), "")
    queued = EventRecord(time=now, received=now, app="zoned-tool", name="start", props="{}", source="native", **fields)
    assert second.write([queued]).result(30) == (0,), "an event accepted before the removal is not stored"


def test_the_first_install_key_wins_and_another_is_refused(database: str) -> None:
    mine, other = ServerSecrets(b"k" * 32, "admin"), ServerSecrets(b"x" * 32, "admin")
    assert mine.fingerprint != other.fingerprint and b"k".hex() not in mine.fingerprint
    first, second = ClickHouseStore(database), ClickHouseStore(database)
    try:
        first.check_secrets(mine.fingerprint, "/a/secrets.json")
        second.check_secrets(mine.fingerprint, "/b/secrets.json")  # the same key: served
        with pytest.raises(UsageError, match=r"another install key than /c/secrets.json's.*Copy secrets.json"):
            second.check_secrets(other.fingerprint, "/c/secrets.json")
    finally:
        second.close()
        first.close()


class HeldTransport(HttpTransport):
    """The real HTTP transport; a reload on the registry thread waits until released."""

    def __init__(self, url: str) -> None:
        super().__init__(parse_url(url))
        self.reloading, self.release = threading.Event(), threading.Event()

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        if threading.current_thread().name == "footfall.registry":
            self.reloading.set()
            self.release.wait(30)
        return super().run(sql, body, settings)


def test_closing_a_store_during_a_reload_ends_the_reload_cleanly(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CI failure of 2026-12-01: close() closed the connections under a running reload,
    whose request then died with an error the reload loop did not expect."""
    failures: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    transport = HeldTransport(database)
    store = ClickHouseStore(database, transport)
    assert transport.reloading.wait(REGISTRY_REFRESH_S + 10), "no periodic reload started"
    releaser = threading.Timer(0.5, transport.release.set)
    releaser.start()
    store.close()
    releaser.join()
    assert not any(t.name == "footfall.registry" and t.is_alive() for t in threading.enumerate())
    assert failures == [], [f"{f.exc_type.__name__}: {f.exc_value}" for f in failures]


def queued_event(app: str) -> EventRecord:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    fields = dict.fromkeys(("app_version", "install", "session", "os", "os_version", "arch", "runtime"), "")
    fields |= dict.fromkeys(("runtime_version", "ci", "container", "country"), "")
    return EventRecord(time=now, received=now, app=app, name="start", props="{}", source="native", **fields)


def test_an_app_missing_from_a_stale_read_is_not_removed(
    stores: tuple[ClickHouseStore, ClickHouseStore, CountingTransport],
    clickhouse_server: ClickHouseServer,
    tmp_path: Path,
) -> None:
    """Review: a reload that read a lagging replica, without an app registered a moment ago, took
    the absence for a removal, and the app's events already acknowledged were refused. Only a
    removal's row (a tombstone) removes an app. The lagging read is made here by deleting the
    app's row behind the stores' back (on a replica, its copy has not arrived yet)."""
    first, second, _ = stores
    time.sleep(MISS_REFRESH_INTERVAL_S)  # past the bound of the reloads at start
    first.add_app("young-tool")
    first.add_key("young-tool", "ga-tid", "UA-9-1")
    assert second.has_app("young-tool")
    database = first.address.database
    for table, column in (("apps", "name"), ("app_keys", "app")):
        clickhouse_server.execute(f"ALTER TABLE {database}.{table} DELETE WHERE {column} = 'young-tool'")
    wait_until(
        lambda: (
            clickhouse_server.execute(f"SELECT count(*) FROM {database}.apps WHERE name = 'young-tool'").strip() == "0"
        ),
        60,
        "the row's delete (a mutation)",
    )
    removed: list[str] = []
    second.on_removed = removed.append
    second.refresh_registry()  # the stale read
    assert removed == [] and second.has_app("young-tool")
    assert second.app_for_key("ga-tid", "UA-9-1") == ("young-tool", "")
    assert second.write([queued_event("young-tool")]).result(30) == (), "an acknowledged event was refused"
    path = tmp_path / "1-w-young.seg"
    path.write_bytes(encode(queued_event("young-tool")))
    assert second.load_segment(path, "1-w-young") == 1, "a queued segment's events were refused"
    # A removal recorded through the other store still removes it here, by its tombstone.
    assert first.remove_app("young-tool") == 2
    second.refresh_registry()
    assert removed == ["young-tool"] and not second.has_app("young-tool")
    assert second.write([queued_event("young-tool")]).result(30) == (0,)


def test_a_removal_takes_the_keys_and_apps_registered_elsewhere(
    stores: tuple[ClickHouseStore, ClickHouseStore, CountingTransport], database: str
) -> None:
    """Review: a removal wrote tombstones only for the keys its store had seen, so a key added
    through another collector a moment before stayed registered to the removed app; and an app
    its store had not seen yet was not removed at all."""
    first, second, _ = stores
    time.sleep(MISS_REFRESH_INTERVAL_S)  # past the bound of the reloads at start
    first.add_app("keyed-tool")
    assert second.has_app("keyed-tool")
    first.add_key("keyed-tool", "ga-tid", "UA-5-1")  # second has not reloaded since
    second.remove_app("keyed-tool")
    first.add_app("unseen-tool")
    second.remove_app("unseen-tool")  # registered through first, not yet seen by second
    reopened = ClickHouseStore(database)
    try:
        assert reopened.registry.keys == {} and reopened.registry.apps == set()
    finally:
        reopened.close()


class StalledTransport(HttpTransport):
    """The real HTTP transport; a reload on the registry thread, once it has read the registry,
    waits until released before it applies what it read."""

    def __init__(self, url: str) -> None:
        super().__init__(parse_url(url))
        self.read, self.release = threading.Event(), threading.Event()

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        answer = super().run(sql, body, settings)
        if threading.current_thread().name == "footfall.registry" and "FROM app_schemas FINAL" in sql:
            self.read.set()
            self.release.wait(30)
        return answer


def test_an_import_during_a_reload_is_not_undone(database: str) -> None:
    """Review: `import_app` (footfall migrate) skipped the guard that let a reload read before a
    change drop it, so the reload took the imported app for removed and refused its events."""
    transport = StalledTransport(database)
    store = ClickHouseStore(database, transport)
    try:
        removed: list[str] = []
        store.on_removed = removed.append  # called at the end of a reload that removed an app
        assert transport.read.wait(REGISTRY_REFRESH_S + 10), "no periodic reload started"
        assert store.import_app("imported-tool", dt.datetime(2024, 1, 1)) is True
        transport.release.set()
        store.refresh_registry()  # waits for the stalled reload to end, then reloads
        assert removed == [] and store.has_app("imported-tool")
        assert store.write([queued_event("imported-tool")]).result(30) == ()
    finally:
        transport.release.set()
        store.close()


class BalancedTransport:
    """Requests spread over the nodes in turn, as a TCP load balancer in front of them would."""

    def __init__(self, urls: list[str]) -> None:
        self._nodes = [HttpTransport(parse_url(url)) for url in urls]
        self._turn = itertools.count()

    def run(self, sql: str, body: Iterable[bytes] | None = None, settings: Mapping[str, str] | None = None) -> str:
        return self._nodes[next(self._turn) % len(self._nodes)].run(sql, body, settings)

    def close(self) -> None:
        for node in self._nodes:
            node.close()


def test_a_lagging_replica_does_not_remove_an_app(clickhouse_replicas: ClickHouseCluster) -> None:
    """The review's case on a real replicated shard: the second replica fetches nothing (`SYSTEM
    STOP FETCHES`), and a collector behind a load balancer reads the registry from either. A read
    from the lagging replica lacks the app registered a moment ago: the app stays registered, and
    its acknowledged events are stored."""
    url = clickhouse_replicas.database()
    database = parse_url(url).database
    writer = ClickHouseStore(url)  # through the first replica
    lagging = clickhouse_replicas.nodes[1]
    balanced = ClickHouseStore(url, BalancedTransport([url, clickhouse_replicas.url(1, database)]))
    removed: list[str] = []
    balanced.on_removed = removed.append
    try:
        lagging.execute("SYSTEM STOP FETCHES")
        writer.add_app("young-tool")
        assert lagging.execute(f"SELECT count(*) FROM {database}.apps_local").strip() == "0"  # the premise
        for _ in range(6):  # reads from both replicas, in turn
            balanced.refresh_registry()
        assert removed == [] and balanced.has_app("young-tool")
        assert balanced.write([queued_event("young-tool")]).result(30) == (), "an acknowledged event was refused"
    finally:
        lagging.execute("SYSTEM START FETCHES")
        balanced.close()
        writer.close()
