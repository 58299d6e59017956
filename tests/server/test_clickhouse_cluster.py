"""The ClickHouse store on a cluster (tests/clickhouse_cluster.py: real clickhouse-server 18.16
processes and Debian's ZooKeeper on loopback).

- Two shards: every report over the cluster equals the single-node answer for the same data (and
  the reference's); an install's events sit on one shard; two `footfall serve` collectors write
  at once through different nodes; a segment copied to some shards only before a crash loads
  again whole; forget deletes on every shard.
- One shard, two replicas: `kill -9` of one replica during load loses no acknowledged event, and
  the replicas converge once it is back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from footfall.server.errors import UsageError
from footfall.server.ingest.segments import encode
from footfall.server.stores.base import EventRecord
from footfall.server.stores.clickhouse import ATTEMPT_PREFIX, ClickHouseStore, parse_url
from tests.clickhouse import NOW, ClickHouseServer, command_event
from tests.clickhouse_cluster import ClickHouseCluster
from tests.conftest import start_server, wait_until
from tests.contract import reference
from tests.contract.data import QUERIED_APPS, generate
from tests.contract.test_contract import SEED, answers, calls, filter_cases, load, now_utc, same

CASES = 4  # filter cases compared over the cluster (the whole set runs on one node in tests/contract)


def event(install: str, number: int = 0, app: str = "alpha") -> EventRecord:
    moment = NOW - dt.timedelta(minutes=5, seconds=number)
    return command_event(time=moment, app=app, install=install, session=install[::-1])


def install(number: int) -> str:
    """An install id as the collector stores it: a 64-hex-digit keyed hash (its first 16 digits are the key)."""
    return hashlib.sha256(str(number).encode()).hexdigest()


def local_installs(node: ClickHouseServer, database: str) -> set[int]:
    text = node.execute(f"SELECT DISTINCT install_key FROM {database}.events_local WHERE install_key IS NOT NULL")
    return {int(line) for line in text.split()}


def count_on(node: ClickHouseServer, sql: str) -> int:
    return int(node.execute(sql).strip())


@pytest.fixture
def cluster_store(clickhouse_shards: ClickHouseCluster) -> Iterator[ClickHouseStore]:
    store = ClickHouseStore(clickhouse_shards.database())
    store.add_app("alpha")
    try:
        yield store
    finally:
        store.close()


def test_the_cluster_options_of_the_store_url() -> None:
    address = parse_url("clickhouse://h:9/db?cluster=main&replicated=1")
    assert (address.cluster, address.replicated) == ("main", True)
    assert str(address) == "clickhouse://h:9/db?cluster=main&replicated=1"
    assert parse_url("clickhouse://h:9/db?cluster=main").replicated is None  # detected from the cluster
    assert parse_url("clickhouse://h/db").settings == {}
    for bad in ("?cluster=", "?cluster=a;b", "?replicated=1", "?cluster=a&replicated=yes", "?shards=2", "?x"):
        with pytest.raises(UsageError):
            parse_url("clickhouse://h/db" + bad)


def test_a_cluster_the_server_does_not_have_is_a_clear_error(clickhouse_shards: ClickHouseCluster) -> None:
    url = clickhouse_shards.database().replace("cluster=footfall_shards", "cluster=nowhere")
    with pytest.raises(UsageError, match="no cluster 'nowhere'"):
        ClickHouseStore(url)


def test_tables_are_local_under_distributed_and_the_registry_is_the_same_on_every_node(
    cluster_store: ClickHouseStore, clickhouse_shards: ClickHouseCluster
) -> None:
    database = cluster_store.address.database
    for node in clickhouse_shards.nodes:
        engines = dict(
            line.split("\t")
            for line in node.execute(f"SELECT name, engine FROM system.tables WHERE database = '{database}'").split(
                "\n"
            )
            if line
        )
        assert engines["events"] == engines["apps"] == engines["loaded_segments"] == "Distributed"
        assert engines["events_local"] == "MergeTree" and engines["apps_local"] == "ReplacingMergeTree"
    # The migrations ran once for the cluster; a second store through the other node finds them done.
    other = ClickHouseStore(clickhouse_shards.url(1, database))
    try:
        assert other.registry.apps == {"alpha"}
        assert [row[0] for row in other.query("SELECT version FROM schema_migrations ORDER BY version").rows] == [
            1, 2, 3, 4, 5, 6
        ]  # fmt: skip
        other.set_timezone("alpha", "Europe/Berlin")
    finally:
        other.close()
    reopened = ClickHouseStore(clickhouse_shards.url(0, database))
    try:
        assert reopened.registry.timezones == {"alpha": "Europe/Berlin"}  # FINAL picks the newer row
    finally:
        reopened.close()


def test_every_report_over_the_cluster_equals_the_single_node_answer(
    cluster_store: ClickHouseStore, clickhouse_shards: ClickHouseCluster, clickhouse_server: ClickHouseServer
) -> None:
    records = generate(SEED, now_utc(), size=40)
    single = ClickHouseStore(clickhouse_server.database())
    try:
        load(single, records)
        load(cluster_store, records)
        data = reference.Data(records)
        compared = 0
        for number, (case, filters) in enumerate(filter_cases()[:CASES]):
            for app in QUERIED_APPS:
                for call in calls(data, app, case, number):
                    where = f"{call[0]}{call[1] or ''} of {app}, {case}"
                    found, expected = answers(cluster_store, data, call, app, filters)
                    alone, _ = answers(single, data, call, app, filters)
                    same(found, alone, where + " (cluster against one node)")
                    same(found, expected, where + " (cluster against the reference)")
                    compared += 1
        assert compared > 100
    finally:
        single.close()
    database = cluster_store.address.database
    first, second = (local_installs(node, database) for node in clickhouse_shards.nodes)
    assert first and second and not first & second  # each install on one shard, and both shards used


def test_two_collectors_write_at_once_and_each_install_lands_on_one_shard(
    clickhouse_shards: ClickHouseCluster, tmp_path: Path
) -> None:
    url = clickhouse_shards.database()
    database = parse_url(url).database
    setup = ClickHouseStore(url)  # the migrations, once, before the collectors start
    setup.add_app("golden-tool")
    setup.close()
    collectors = []
    for n in range(2):
        if n:  # every collector on one store needs the same secrets (the store checks a fingerprint)
            (tmp_path / f"data{n}").mkdir(mode=0o700)
            shutil.copy2(tmp_path / "data0" / "secrets.json", tmp_path / f"data{n}" / "secrets.json")
        collectors.append(
            start_server(
                tmp_path / f"data{n}",
                tmp_path / f"server{n}.log",
                env={"FOOTFALL_STORE": clickhouse_shards.url(n, database)},
            )
        )
    batches, per_batch = 20, 5
    failures: list[BaseException] = []

    def send(collector: int) -> None:
        try:
            for number in range(batches):
                batch = {
                    "app": "golden-tool",
                    "context": {
                        "install": f"{collector:02d}{number:030x}",
                        "session": f"{number:032x}",
                        "app_version": "1.0",
                    },
                    "events": [
                        {
                            "name": "command",
                            "time": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=i)).isoformat(),
                            "props": {"n": i},
                        }
                        for i in range(per_batch)
                    ],
                }
                request = urllib.request.Request(
                    collectors[collector].url + "/v1/batch",
                    data=json.dumps(batch).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as answer:
                    assert answer.status in (200, 202)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        total = 2 * batches * per_batch
        node = clickhouse_shards.nodes[0]
        wait_until(lambda: count_on(node, f"SELECT count(*) FROM {database}.events") == total, 60, "all events loaded")
    finally:
        for collector in collectors:
            assert collector.stop() == 0, collector.log.read_text()
    first, second = (local_installs(node, database) for node in clickhouse_shards.nodes)
    assert len(first | second) == 2 * batches and not first & second and first and second


def test_a_segment_copied_to_some_shards_only_loads_again_whole(
    cluster_store: ClickHouseStore, clickhouse_shards: ClickHouseCluster, tmp_path: Path
) -> None:
    records = [event(install(n), n) for n in range(40)]
    path = tmp_path / "1-w-abc.seg"
    path.write_bytes(b"".join(encode(record) for record in records))
    database = cluster_store.address.database
    # A crash between the shards' inserts: the record that the load began, a few of the segment's
    # rows on the second shard, no record that it loaded.
    clickhouse_shards.nodes[0].execute(
        f"INSERT INTO {database}.loaded_segments_local VALUES ('{ATTEMPT_PREFIX}1-w-abc', now(), 0)"  # first shard
    )
    clickhouse_shards.nodes[1].execute(
        f"INSERT INTO {database}.events_local (app, install, segment, time, received)"
        f" SELECT 'alpha', 'x', '1-w-abc', now(), now() FROM system.numbers LIMIT 3"
    )
    assert cluster_store.load_segment(path, "1-w-abc") == len(records)
    assert cluster_store.query("SELECT count(*) FROM events WHERE segment = '1-w-abc'").rows == [(len(records),)]
    assert cluster_store.load_segment(path, "1-w-abc") is None  # and once only
    assert cluster_store.query("SELECT count(*) FROM events").rows == [(len(records),)]


def test_forget_on_a_cluster_deletes_on_every_shard(
    cluster_store: ClickHouseStore, clickhouse_shards: ClickHouseCluster
) -> None:
    records = [event(install(n), k) for n in range(12) for k in range(2)]
    assert cluster_store.write(records).result(timeout=60) == ()
    database = cluster_store.address.database
    assert all(local_installs(node, database) for node in clickhouse_shards.nodes)
    assert cluster_store.delete_install("alpha", install(3)) == 2
    assert cluster_store.remove_app("alpha") == 22
    for node in clickhouse_shards.nodes:
        assert count_on(node, f"SELECT count(*) FROM {database}.events_local") == 0


def send_batch(url: str, install_id: str, events: int) -> bool:
    """One native batch of `events` events; whether the collector acknowledged it."""
    now = dt.datetime.now(dt.timezone.utc)
    batch = {
        "app": "golden-tool",
        "context": {"install": install_id, "session": install_id[::-1], "app_version": "1.0"},
        "events": [
            {"name": "command", "time": (now - dt.timedelta(seconds=i)).isoformat(), "props": {"n": i}}
            for i in range(events)
        ],
    }
    request = urllib.request.Request(
        url + "/v1/batch", data=json.dumps(batch).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status in (200, 202)
    except OSError:
        return False


@pytest.mark.timeout(300)  # measured about 20 s here; a JVM and three restarts on a loaded runner
def test_a_replica_killed_during_load_loses_no_acknowledged_event_and_converges_when_back(
    clickhouse_replicas: ClickHouseCluster, tmp_path: Path
) -> None:
    url = clickhouse_replicas.url(1, parse_url(clickhouse_replicas.database()).database)
    database = parse_url(url).database
    setup = ClickHouseStore(url)  # the migrations, once; the collector writes through the second replica
    assert setup.layout.replicated  # detected: the cluster's shard has two replicas
    setup.add_app("golden-tool")
    setup.close()
    collector = start_server(tmp_path / "data", tmp_path / "server.log", env={"FOOTFALL_STORE": url})
    acknowledged = 0
    try:
        for number in range(60):
            if number == 20:
                clickhouse_replicas.kill(0)  # kill -9 of the first replica, mid-load
            if send_batch(collector.url, install(number)[:32], 5):
                acknowledged += 5
            time.sleep(0.02)
        survivor = clickhouse_replicas.nodes[1]
        local = f"SELECT count(*) FROM {database}.events_local"
        wait_until(lambda: count_on(survivor, local) == acknowledged, 90, "every acknowledged event on the survivor")
        returned = clickhouse_replicas.restart(0)

        def markers(node: ClickHouseServer) -> str:
            """Each segment's rows, and the loaded segments' records, on one replica."""
            return node.execute(
                f"SELECT segment, count(*) FROM {database}.events_local GROUP BY segment ORDER BY segment"
            ) + node.execute(f"SELECT id, events FROM {database}.loaded_segments_local ORDER BY id")

        assert markers(survivor)
        wait_until(
            lambda: count_on(returned, local) == acknowledged and markers(returned) == markers(survivor),
            90,
            "the returned replica to converge",
        )
    finally:
        assert collector.stop() == 0, collector.log.read_text()
    assert acknowledged == 300  # every batch was taken: the collector acknowledges once its log holds it


def test_the_example_cluster_config_is_one_a_node_can_read() -> None:
    """deploy/clickhouse/footfall-cluster.xml: well-formed, the cluster the docs' URL names, shards
    with replicas replicated internally, ZooKeeper, the DDL queue and the node's macros."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(Path(__file__).parents[2] / "deploy" / "clickhouse" / "footfall-cluster.xml").getroot()
    shards = root.findall("remote_servers/footfall/shard")
    assert len(shards) == 2 and all(len(shard.findall("replica")) == 2 for shard in shards)
    assert all(shard.findtext("internal_replication") == "true" for shard in shards)
    assert root.findall("zookeeper/node") and root.findtext("distributed_ddl/path")
    assert root.findtext("macros/shard") and root.findtext("macros/replica") and root.findtext("interserver_http_port")


def test_a_subquery_over_the_cluster_runs_as_on_one_node(cluster_store: ClickHouseStore) -> None:
    """An IN subquery over events, in a query over events: "double distributed", refused by
    default; the store makes it GLOBAL, so the SQL a report writes for one node runs as is. (No
    report needs one today: they use subqueries in FROM.)"""
    records = [event(install(n), k) for n in range(10) for k in range(n % 3 + 1)]
    assert cluster_store.write(records).result(timeout=60) == ()
    found = cluster_store.query(
        "SELECT count(*) FROM events WHERE install_key IN"
        " (SELECT install_key FROM events GROUP BY install_key HAVING count(*) > 1)"
    )
    assert found.rows == [(sum(n % 3 + 1 for n in range(10) if n % 3),)]


def test_equal_batches_on_a_replicated_cluster_are_both_stored(clickhouse_replicas: ClickHouseCluster) -> None:
    """ReplicatedMergeTree drops an inserted block equal to a recent one by default: two equal
    batches (or a segment loaded again after a partial copy was deleted) would be stored once."""
    store = ClickHouseStore(clickhouse_replicas.database())
    try:
        store.add_app("alpha")
        batch = [dataclasses.replace(event(install(n)), session="") for n in range(3)]  # no run starts: equal rows
        for _ in range(2):
            assert store.write(batch).result(timeout=60) == ()
        assert store.query("SELECT count(*) FROM events").rows == [(6,)]
    finally:
        store.close()


def test_expiry_on_a_cluster_drops_old_months_on_every_shard(
    cluster_store: ClickHouseStore, clickhouse_shards: ClickHouseCluster
) -> None:
    """A node's system.parts lists only its shard's parts, and `events` is a Distributed table:
    expiry finds the months through it and drops them ON CLUSTER from every local table."""
    old_month = NOW.replace(day=1) - dt.timedelta(days=40)
    records = [dataclasses.replace(event(install(n)), time=old_month) for n in range(12)]
    records += [event(install(n)) for n in range(12)]
    assert cluster_store.write(records).result(timeout=60) == ()
    database = cluster_store.address.database
    assert all(count_on(node, f"SELECT count(*) FROM {database}.events_local") for node in clickhouse_shards.nodes)
    cut = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert cluster_store.expire_events(cut) == 12
    assert (
        sum(count_on(node, f"SELECT count(*) FROM {database}.events_local") for node in clickhouse_shards.nodes) == 12
    )
    assert cluster_store.expire_events(cut) == 0


def test_collectors_naming_different_nodes_share_one_install_key_fingerprint(
    clickhouse_shards: ClickHouseCluster,
) -> None:
    """The fingerprint table was made on the node a collector named only, so on a cluster a
    collector with another secrets.json, naming another node, was not refused."""
    url = clickhouse_shards.database()
    first = ClickHouseStore(url)
    other = ClickHouseStore(clickhouse_shards.url(1, parse_url(url).database))
    try:
        first.check_secrets("fingerprint-a", "DIR/secrets.json")
        with pytest.raises(UsageError, match="another install key"):
            other.check_secrets("fingerprint-b", "OTHER/secrets.json")
        other.check_secrets("fingerprint-a", "DIR/secrets.json")  # the same key, through node 2: fine
    finally:
        first.close()
        other.close()
