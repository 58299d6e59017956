"""ClickHouse clusters for tests: Debian's `clickhouse-server` (18.16) and `zookeeper`, on loopback.

- `zookeeper` (session): one ZooKeeper (Debian's jar, run with java), its own temporary data
  directory and loopback port. ClickHouse needs it for `ON CLUSTER` DDL (the distributed DDL
  queue) and for `ReplicatedMergeTree`.
- `clickhouse_shards` (session): two servers, cluster `footfall_shards` of two shards of one
  replica each (macros `shard` 01 and 02).
- `clickhouse_replicas` (session): two servers, cluster `footfall_replicas` of one shard with
  two replicas (`internal_replication`: a Distributed insert goes to one replica, and the
  replicas copy it between themselves).

Each server has its own ports, data directory and config (`remote_servers`, `macros`,
`zookeeper`, `distributed_ddl`), written by `tests.clickhouse.start`. Everything skips with the
reason when a binary is missing, and fails instead under CI=true (`make system-deps`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clickhouse import ClickHouseServer, require_binary, start
from tests.clickhouse_process import free_port

# Debian's ZooKeeper (its manifest names its dependencies) and a logger for its log file
ZOOKEEPER_JARS = (Path("/usr/share/java/zookeeper.jar"), Path("/usr/share/java/slf4j-simple.jar"))
ZOOKEEPER_STARTUP_TIMEOUT_S = 60.0  # measured: about 1 s here (a JVM); generous for a loaded runner
ZOOKEEPER_STOP_TIMEOUT_S = 15.0
SHARDS_CLUSTER = "footfall_shards"
REPLICAS_CLUSTER = "footfall_replicas"


def require_zookeeper() -> list[str]:
    java = shutil.which("java")
    if java is None or not ZOOKEEPER_JARS[0].exists():
        if os.environ.get("CI") == "true":
            pytest.fail("zookeeper is required under CI: make system-deps installs it with apt-get")
        pytest.skip("zookeeper (and java) are not installed (apt-get install zookeeper)")
    return [java]


def zookeeper_ok(port: int) -> bool:
    """Whether ZooKeeper opens a session: its `ruok` answers before it serves sessions, and a
    ClickHouse 18.16 refused its first handshake can crash, so the fixture waits for a real one (the
    connect request of ZooKeeper's protocol: version, last zxid, timeout in ms, session id,
    password)."""
    request = struct.pack(">iqiqi16s", 0, 0, 6000, 0, 16, bytes(16))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(struct.pack(">i", len(request)) + request)
            return len(connection.recv(64)) >= 4  # a connect response; a server not serving closes
    except OSError:
        return False


@dataclasses.dataclass
class ZooKeeper:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    startup_s: float

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=ZOOKEEPER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_zookeeper(folder: Path) -> ZooKeeper:
    (java,) = require_zookeeper()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    started = time.monotonic()
    log = (folder / "zookeeper.log").open("wb")
    process = subprocess.Popen(
        [
            java,
            "-Xmx256m",
            "-Dzookeeper.admin.enableServer=false",  # no admin HTTP server on port 8080
            "-cp",
            ":".join(str(jar) for jar in ZOOKEEPER_JARS if jar.exists()),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(port),
            str(folder / "data"),
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    keeper = ZooKeeper(folder, port, process, 0.0)
    while time.monotonic() - started < ZOOKEEPER_STARTUP_TIMEOUT_S:
        if process.poll() is not None:
            pytest.fail(f"zookeeper exited with {process.returncode}: {(folder / 'zookeeper.log').read_text()[-2000:]}")
        if zookeeper_ok(port):
            keeper.startup_s = time.monotonic() - started
            return keeper
        time.sleep(0.1)
    keeper.stop()
    pytest.fail(f"zookeeper did not answer within {ZOOKEEPER_STARTUP_TIMEOUT_S} s")


def cluster_config(name: str, shards: list[list[int]], keeper: int, shard: int, replica: str) -> str:
    """The config one node of a cluster adds: the cluster (its nodes' native ports), the
    ZooKeeper, the distributed DDL queue, this node's macros and the port its replicas fetch
    parts from."""
    replicated = "true" if len(shards[0]) > 1 else "false"  # true: each shard's replicas copy its inserts
    layout = "".join(
        f"<shard><internal_replication>{replicated}</internal_replication>"
        + "".join(f"<replica><host>127.0.0.1</host><port>{port}</port></replica>" for port in replicas)
        + "</shard>"
        for replicas in shards
    )
    return f"""
  <remote_servers><{name}>{layout}</{name}></remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>{keeper}</port></node></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/{name}</path></distributed_ddl>
  <macros><shard>{shard:02d}</shard><replica>{replica}</replica></macros>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{free_port()}</interserver_http_port>"""


@dataclasses.dataclass
class ClickHouseCluster:
    name: str
    nodes: list[ClickHouseServer]  # in config order: shard by shard, replica by replica
    startup_s: float  # all its servers, one after another
    configs: list[tuple[str, int]]  # each node's cluster config and native port, to restart it
    _databases: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def database(self) -> str:
        """A new database on every node; the cluster store URL through the first node."""
        name = f"test_{self.name}_{os.getpid()}_{next(self._databases)}"
        for node in self.nodes:
            node.execute(f"CREATE DATABASE {name}")
        return f"clickhouse://127.0.0.1:{self.nodes[0].http_port}/{name}?cluster={self.name}"

    def url(self, node: int, database: str) -> str:
        """The store URL of `database` (a cluster URL) through another node."""
        return f"clickhouse://127.0.0.1:{self.nodes[node].http_port}/{database}?cluster={self.name}"

    def kill(self, node: int) -> None:
        """`kill -9` of one node: no shutdown, no flush."""
        self.nodes[node].process.kill()
        self.nodes[node].process.wait()

    def restart(self, node: int) -> ClickHouseServer:
        """A killed node again, on its data directory and native port (a new HTTP port)."""
        extra, tcp_port = self.configs[node]
        self.nodes[node] = start(self.nodes[node].folder, extra, tcp_port=tcp_port)
        return self.nodes[node]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(folder: Path, name: str, shards: int, replicas: int, keeper: ZooKeeper) -> ClickHouseCluster:
    require_binary()
    ports = [[free_port() for _ in range(replicas)] for _ in range(shards)]
    started = time.monotonic()
    nodes: list[ClickHouseServer] = []
    configs: list[tuple[str, int]] = []
    try:
        for shard, replica in itertools.product(range(shards), range(replicas)):
            label = f"s{shard + 1}r{replica + 1}"
            configs.append((cluster_config(name, ports, keeper.port, shard + 1, label), ports[shard][replica]))
            nodes.append(start(folder / label, *configs[-1]))
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return ClickHouseCluster(name, nodes, time.monotonic() - started, configs)


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeper]:
    keeper = start_zookeeper(tmp_path_factory.mktemp("zookeeper"))
    try:
        yield keeper
    finally:
        keeper.stop()


@pytest.fixture(scope="session")
def clickhouse_shards(tmp_path_factory: pytest.TempPathFactory, zookeeper: ZooKeeper) -> Iterator[ClickHouseCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("shards"), SHARDS_CLUSTER, 2, 1, zookeeper)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def clickhouse_replicas(tmp_path_factory: pytest.TempPathFactory, zookeeper: ZooKeeper) -> Iterator[ClickHouseCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("replicas"), REPLICAS_CLUSTER, 1, 2, zookeeper)
    try:
        yield cluster
    finally:
        cluster.stop()
