"""DuckDB against ClickHouse (one node, and two shards), side by side in one run (issue 13).

    .venv/bin/python benchmarks/bench_stores.py [--quick] [--sizes 1000000,10000000] [--runs 3]
        [--tabs overview] [--no-ingestion] [--no-cluster] [--minutes 75]

Starts its own clickhouse-server (Debian's, on loopback, in a temp folder: tests/clickhouse_process.py,
shared with the test fixture), then:

- **Ingestion.** `footfall serve` on an empty store, loaded by wrk with native batches of 100
  events (bench_collector's payload) for `--seconds`: acknowledged events/s (every answer must be
  2xx), then how long until the store holds every acknowledged event (the loader catching up),
  as the events/s that reached the store. For DuckDB, ClickHouse on one node, and a cluster of
  two shards (a ZooKeeper and two servers started by tests/clickhouse_cluster.py's helpers) fed
  by two collectors at once, one wrk on each.
- **Dashboard tabs.** The same N events generated in each engine by one SQL statement (DuckDB's
  range(), ClickHouse's numbers(): the same values, row for row; 90 days, 100,000 installs, each
  one machine), then `footfall serve` on it and every tab's page (GET /apps/APP?tab=T, last 30
  days, the admin token), warm: one load, then the median of `--runs`. For each size in
  `--sizes`, and the growth of each tab's time from the smallest size to the largest.

One progress line per step on stderr (minutes, load average); the run stops itself after
`--minutes`. Prints markdown tables (docs/benchmarks.md, "Stores"). The goal: the overview tab
<= 0.3 s warm at 10M events on both engines. `--quick` runs 1M only. Exits non-zero when the run
did not work (a tool missing, a server that died, a non-2xx answer, the deadline), goals met or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/clickhouse_process.py: the server's config, shared with the fixture

from bench_collector import APP as INGEST_APP  # noqa: E402
from bench_collector import (  # noqa: E402
    EVENTS_PER_BATCH,
    BenchFailed,
    Load,
    clean_env,
    footfall_command,
    write_scripts,
    wrk,
)
from common import wait_for  # noqa: E402

from tests import clickhouse_process  # noqa: E402

APP = "big-tool"
DAYS = 90
INSTALLS = 100_000
OVERVIEW_GOAL_S = 0.3
CLUSTER = "ClickHouse, 2 shards, 2 collectors"  # ingestion only: its reports equal one node's (tests)
DRAIN_TIMEOUT_S = 600.0  # the loader catching up after the load: generous on a shared 2-core machine
PAGE_TIMEOUT_S = 120.0
SECOND_STEP = 7919  # a prime: row i's age is (i * 7919) mod 90 days in seconds, spread evenly
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0")
OSES = ("linux", "macos", "windows")
RUNTIMES = ("3.10", "3.11", "3.12")
COUNTRIES = ("US", "DE", "IN", "GB", "FR", "BR", "CN", "JP", "CA", "NL", "PL", "ES", "IT", "SE", "AU", "KR", "CH")
COMMANDS = ("build", "check", "run", "serve")


def _array(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# The same rows in both engines: every value a function of the row number i and of one fixed `now`.
# What describes the machine (OS, runtime, CI, container, country) is a function of the install
# alone, as in real data: an install is one machine. (Before 2026-12-02 it followed i, so every
# install showed up in all 17 countries and 3 OSes, 17 times the distinct pairs a real store has.)
MACHINE = f"(i % {INSTALLS})"  # the install's number
DUCKDB_FILL = f"""
INSERT INTO events
SELECT * EXCLUDE (i), ('0x' || substr(install, 1, 16))::UBIGINT, ('0x' || substr(session, 1, 16))::UBIGINT,
       i % 3 = 0 AS run_start FROM (SELECT i,
    TIMESTAMP '{{now}}' - to_seconds((i * {SECOND_STEP}) % {DAYS * 86400}) AS time,
    TIMESTAMP '{{now}}' - to_seconds((i * {SECOND_STEP}) % {DAYS * 86400}) AS received,
    '{APP}' AS app,
    {_array(VERSIONS)}[1 + (i % {len(VERSIONS)})] AS app_version,
    CASE WHEN i % 20 = 0 THEN 'error' ELSE 'command' END AS name,
    md5(CAST(i % {INSTALLS} AS VARCHAR)) AS install,
    md5(CAST(i // 3 AS VARCHAR)) AS session,
    {_array(OSES)}[1 + ({MACHINE} % {len(OSES)})] AS os, '6.1' AS os_version, 'x86_64' AS arch,
    'cpython' AS runtime, {_array(RUNTIMES)}[1 + ({MACHINE} % {len(RUNTIMES)})] AS runtime_version,
    CASE WHEN {MACHINE} % 4 = 0 THEN 'github-actions' ELSE '' END AS ci,
    CASE WHEN {MACHINE} % 7 = 0 THEN 'docker' ELSE '' END AS container,
    {_array(COUNTRIES)}[1 + ({MACHINE} % {len(COUNTRIES)})] AS country,
    '{{{{"command":"' || {_array(COMMANDS)}[1 + (i % {len(COMMANDS)})] || '","options":["--fast"],"outcome":"ok"}}}}'
        AS props,
    'native' AS source
FROM range({{events}}) AS t(i)
ORDER BY time)  -- events arrive roughly in time order, as the collector appends them
"""
CLICKHOUSE_FILL = f"""
INSERT INTO events (time, received, app, app_version, name, install, session, os, os_version, arch, runtime,
    runtime_version, ci, container, country, props, source, install_key, session_key, run_start)
SELECT time, time, '{APP}', {_array(VERSIONS)}[1 + (i % {len(VERSIONS)})],
    if(i % 20 = 0, 'error', 'command'), install, session,
    {_array(OSES)}[1 + ({MACHINE} % {len(OSES)})], '6.1', 'x86_64', 'cpython',
    {_array(RUNTIMES)}[1 + ({MACHINE} % {len(RUNTIMES)})],
    if({MACHINE} % 4 = 0, 'github-actions', ''), if({MACHINE} % 7 = 0, 'docker', ''),
    {_array(COUNTRIES)}[1 + ({MACHINE} % {len(COUNTRIES)})],
    concat('{{{{"command":"', {_array(COMMANDS)}[1 + (i % {len(COMMANDS)})], '","options":["--fast"],"outcome":"ok"}}}}'),
    'native', reinterpretAsUInt64(reverse(unhex(substring(install, 1, 16)))),
    reinterpretAsUInt64(reverse(unhex(substring(session, 1, 16)))), i % 3 = 0
FROM (SELECT number AS i, toDateTime('{{now}}', 'UTC') - ((i * {SECOND_STEP}) % {DAYS * 86400}) AS time,
    lower(hex(MD5(toString(i % {INSTALLS})))) AS install, lower(hex(MD5(toString(intDiv(i, 3))))) AS session
    FROM system.numbers LIMIT {{events}})
"""


@dataclasses.dataclass
class Ingestion:
    acknowledged_s: float  # events/s acknowledged
    stored_s: float  # events/s that reached the store, the loader's catch-up included


@dataclasses.dataclass
class Engine:
    name: str
    fill_s: dict[int, float] = dataclasses.field(default_factory=dict)  # size -> seconds to generate
    tabs: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)  # size -> tab -> median s
    ingestion: Ingestion | None = None


# -- servers ----------------------------------------------------------------------------------


@contextmanager
def clickhouse(folder: Path) -> Iterator[int]:
    command = clickhouse_process.binary()
    if command is None:
        raise BenchFailed("clickhouse-server is not installed (make system-deps installs it)")
    port, _ = clickhouse_process.write_config(folder)
    process = clickhouse_process.launch(command, folder)
    try:
        clickhouse_process.wait_ready(process, folder, port)
        yield port
    except RuntimeError as exc:
        raise BenchFailed(str(exc)) from None
    finally:
        clickhouse_process.stop(process)


def clickhouse_run(port: int, sql: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=sql.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=3600) as answer:
        return str(answer.read().decode())


@contextmanager
def serve(data: Path, store_url: str, log: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`footfall serve` on `data` (and `store_url`): its URL and the admin token's header."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "server.json").unlink(missing_ok=True)
    store = ["--store", store_url] if store_url else []
    with log.open("wb") as out:
        child = subprocess.Popen(
            footfall_command("serve", "--data", str(data), "--port", "0", *store),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
        try:
            deadline = time.monotonic() + 60
            while not (data / "server.json").exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise BenchFailed(f"footfall serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
            url = json.loads((data / "server.json").read_text())["url"]
            wait_for(url + "/healthz")
            token = json.loads((data / "secrets.json").read_text())["admin_token"]
            yield url, {"Authorization": f"Bearer {token}"}
        finally:
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def get(url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=PAGE_TIMEOUT_S) as answer:
        body = answer.read()
        if answer.status != 200:
            raise BenchFailed(f"GET {url} answered {answer.status}")
    return time.perf_counter() - started, body


def add_app(data: Path, store_url: str, app: str) -> None:
    store = ["--store", store_url] if store_url else []
    done = subprocess.run(
        footfall_command("app", "add", app, "--data", str(data), *store),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
    )
    if done.returncode != 0:
        raise BenchFailed(f"footfall app add {app} failed: {done.stderr}")


# -- the measures -----------------------------------------------------------------------------


def ingestion(store_urls: list[str], seconds: float, work: Path) -> Ingestion:
    """Acknowledged events/s through one `footfall serve` per URL of `store_urls` ("" for DuckDB
    in the data directory), wrk loading every collector at once, and the events/s that reached
    the store. Several collectors of one store share one secrets.json, as the store requires."""
    datas = [work / f"ingest-{len(list(work.glob('ingest-*')))}-{n}" for n in range(len(store_urls))]
    scripts = write_scripts(work)
    with ExitStack() as collectors:
        served: list[tuple[str, dict[str, str]]] = []
        for n, (data, store_url) in enumerate(zip(datas, store_urls, strict=True)):
            data.mkdir(mode=0o700)
            if n:
                shutil.copy2(datas[0] / "secrets.json", data / "secrets.json")
            else:
                add_app(data, store_url, INGEST_APP)
            served.append(collectors.enter_context(serve(data, store_url, work / (data.name + ".log"))))
        loads: list[Load | BaseException] = [BenchFailed("wrk did not run")] * len(served)

        def load(n: int) -> None:
            try:
                loads[n] = wrk(served[n][0] + "/v1/batch", scripts["native"], seconds)
            except BaseException as exc:  # raised below, in the main thread
                loads[n] = exc

        threads = [threading.Thread(target=load, args=(n,)) for n in range(len(served))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates = []
        for result in loads:
            if isinstance(result, BaseException):
                raise result
            rates.append(result.requests_s * EVENTS_PER_BATCH)
        url, headers = served[0]
        summary = f"{url}/api/v1/apps/{INGEST_APP}/summary"
        acknowledged = sum(rates) * max(1, round(seconds))
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            stored = json.loads(get(summary, headers)[1])["events"]
            if stored >= acknowledged * 0.999:  # wrk's rate is rounded to two decimals
                break
            if time.monotonic() > deadline:
                raise BenchFailed(f"only {stored} of about {acknowledged:.0f} acknowledged events were stored")
            time.sleep(0.2)
        drained = time.monotonic() - (deadline - DRAIN_TIMEOUT_S)
    return Ingestion(sum(rates), acknowledged / (max(1, round(seconds)) + drained))


@contextmanager
def cluster(work: Path) -> Iterator[list[str]]:
    """Two ClickHouse shards (one replica each) and a ZooKeeper, as the cluster tests start them
    (tests/clickhouse_cluster.py): a new database's store URL through each node, with the app
    registered once."""
    from _pytest.outcomes import OutcomeException  # the helpers fail or skip as pytest does

    from footfall.server.stores.clickhouse import ClickHouseStore
    from tests import clickhouse_cluster

    try:
        keeper = clickhouse_cluster.start_zookeeper(work / "zookeeper")
    except OutcomeException as exc:
        raise BenchFailed(f"zookeeper: {exc.msg}") from None
    try:
        try:
            shards = clickhouse_cluster.start_cluster(work / "shards", "bench_shards", 2, 1, keeper)
        except OutcomeException as exc:
            raise BenchFailed(f"the cluster: {exc.msg}") from None
        try:
            url = shards.database()
            setup = ClickHouseStore(url)  # the migrations, once, before the collectors start
            setup.close()
            database = url.rsplit("/", 1)[1].split("?")[0]
            yield [shards.url(n, database) for n in range(len(shards.nodes))]
        finally:
            shards.stop()
    finally:
        keeper.stop()


def fill(engine: str, data: Path, store_url: str, ch_port: int, events: int, now: str) -> float:
    """Generate `events` rows in a fresh store; seconds it took."""
    from footfall.server.stores.clickhouse import ClickHouseStore
    from footfall.server.stores.duckdb import DuckDBStore

    data.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if engine == "DuckDB":
        duck = DuckDBStore(data / "footfall.duckdb")
        try:
            duck.add_app(APP)
            duck._act(lambda con: con.execute(DUCKDB_FILL.format(now=now, events=events)))
        finally:
            duck.close()
    else:
        house = ClickHouseStore(store_url)  # its migrations create the tables
        try:
            house.add_app(APP)
        finally:
            house.close()
        database = store_url.rsplit("/", 1)[1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{ch_port}/?database={database}",
            data=CLICKHOUSE_FILL.format(now=now, events=events).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=3600) as answer:
            answer.read()
        clickhouse_run(ch_port, f"OPTIMIZE TABLE {database}.events FINAL")  # as a store settles after loads
    return time.perf_counter() - started


def tab_times(
    data: Path, store_url: str, runs: int, log: Path, tabs: list[str], progress: Progress
) -> dict[str, float]:
    times: dict[str, float] = {}
    with serve(data, store_url, log) as (url, headers):
        for tab in tabs:
            page = f"{url}/apps/{APP}?tab={tab}"
            get(page, headers)  # warm
            times[tab] = statistics.median(get(page, headers)[0] for _ in range(runs))
            progress.step(f"  {tab}: {times[tab] * 1000:,.0f} ms")
    return times


class Progress:
    """One line per step on stderr, with the time since the start and the load average; a run
    past its deadline stops (BenchFailed) at the next step, so the whole run stays bounded."""

    def __init__(self, minutes: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + minutes * 60
        self.loads: list[float] = []

    def step(self, text: str) -> None:
        load = os.getloadavg()[0]
        self.loads.append(load)
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed / 60:5.1f} min, load {load:4.1f}] {text}", file=sys.stderr, flush=True)
        if time.monotonic() > self.deadline:
            raise BenchFailed(f"over the run's deadline ({(self.deadline - self.started) / 60:.0f} min): stopped")


# -- the tables -------------------------------------------------------------------------------


def size_label(events: int) -> str:
    return f"{events // 1_000_000}M" if events % 1_000_000 == 0 else f"{events:,}"


def tables(engines: list[Engine], sizes: list[int], loads: list[float]) -> str:
    out: list[str] = []
    loaded = [e for e in engines if e.ingestion]
    if loaded:
        out += ["| ingestion (wrk, native batches of 100) | " + " | ".join(e.name for e in loaded) + " |"]
        out += ["|---" * (len(loaded) + 1) + "|"]
        for label, field in (("acknowledged events/s", "acknowledged_s"), ("stored events/s", "stored_s")):
            cells = [f"{getattr(e.ingestion, field):,.0f}" for e in loaded]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    measured = [e for e in engines if e.tabs]
    if measured:
        header = [f"{e.name} {size_label(s)}" for s in sizes for e in measured]
        if len(sizes) > 1:
            header += [f"{e.name} x{size_label(sizes[-1])}/{size_label(sizes[0])}" for e in measured]
        out += ["| tab (warm, median) | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
        for tab in measured[0].tabs[sizes[0]]:
            cells = [f"{e.tabs[s][tab] * 1000:,.0f} ms" for s in sizes for e in measured]
            if len(sizes) > 1:
                cells += [f"{e.tabs[sizes[-1]][tab] / e.tabs[sizes[0]][tab]:.1f}" for e in measured]
            out.append(f"| {tab} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            "generated in: "
            + "; ".join(f"{e.name} {size_label(s)} {e.fill_s[s]:.0f} s" for s in sizes for e in measured)
        )
    largest = sizes[-1]
    for e in measured:
        if "overview" not in e.tabs[largest]:
            continue
        overview = e.tabs[largest]["overview"]
        met = "met" if overview <= OVERVIEW_GOAL_S else "NOT met"
        out.append(
            f"{e.name}: overview {overview * 1000:.0f} ms at {size_label(largest)}; goal <= "
            f"{OVERVIEW_GOAL_S * 1000:.0f} ms at 10M -> {met if largest >= 10_000_000 else 'not measured at 10M'}"
        )
    if loads:
        out.append(f"load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}, median "
                   f"{statistics.median(loads):.1f}")  # fmt: skip
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1M events only")
    parser.add_argument("--sizes", default="1000000,10000000", help="events per size (default 1M and 10M)")
    parser.add_argument("--runs", type=int, default=3, help="timed loads of each tab (default 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of ingestion load (default 10)")
    parser.add_argument("--no-ingestion", action="store_true", help="skip the ingestion measures")
    parser.add_argument("--no-cluster", action="store_true", help="skip the cluster's ingestion (needs zookeeper)")
    parser.add_argument("--tabs", help="only these tabs, e.g. overview,when (default: every tab)")
    parser.add_argument("--minutes", type=float, default=75.0, help="stop the run after this long (default 75)")
    args = parser.parse_args()
    from footfall.server.edge.dashboard import TABS

    tabs = args.tabs.split(",") if args.tabs else list(TABS)
    if not set(tabs) <= set(TABS):
        parser.error(f"--tabs: the tabs are {', '.join(TABS)}")
    # A stop (SIGTERM, as `timeout` sends) unwinds like Ctrl-C: the servers started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [1_000_000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    if not args.no_ingestion and shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it); run with --no-ingestion", file=sys.stderr)
        return 1
    engines = [Engine("DuckDB"), Engine("ClickHouse"), Engine(CLUSTER)]
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    progress = Progress(args.minutes)
    try:
        with tempfile.TemporaryDirectory(prefix="footfall-bench-stores-") as folder:
            work = Path(folder)
            with clickhouse(work / "clickhouse") as port:
                if not args.no_ingestion:
                    for engine in engines:
                        if engine.name == CLUSTER and args.no_cluster:
                            continue
                        progress.step(f"ingestion, {engine.name}: {args.seconds:.0f} s of wrk, then the loader")
                        if engine.name == CLUSTER:
                            with cluster(work / "cluster") as urls:
                                engine.ingestion = ingestion(urls, args.seconds, work)
                        else:
                            url = create_database(port, "ingest") if engine.name == "ClickHouse" else ""
                            engine.ingestion = ingestion([url], args.seconds, work)
                        progress.step(f"ingestion, {engine.name}: {engine.ingestion}")
                for size in sizes:
                    for engine in engines[:2]:
                        data = work / f"{engine.name}-{size}"
                        url = create_database(port, f"tabs_{size}") if engine.name == "ClickHouse" else ""
                        progress.step(f"{engine.name} {size_label(size)}: generating the events")
                        engine.fill_s[size] = fill(engine.name, data, url, port, size, now)
                        progress.step(f"{engine.name} {size_label(size)}: {engine.fill_s[size]:.0f} s; the tabs")
                        engine.tabs[size] = tab_times(data, url, args.runs, work / f"{data.name}.log", tabs, progress)
                        if engine.name == "DuckDB":
                            shutil.rmtree(data)  # the disk is shared: one size at a time
                        else:
                            clickhouse_run(port, f"DROP DATABASE {url.rsplit('/', 1)[1]}")
    except BenchFailed as exc:
        print(f"bench_stores: {exc}", file=sys.stderr)
        return 1
    progress.step("done")
    print(tables(engines, sizes, progress.loads))
    return 0


def create_database(port: int, name: str) -> str:
    clickhouse_run(port, f"CREATE DATABASE IF NOT EXISTS {name}")
    return f"clickhouse://127.0.0.1:{port}/{name}"


if __name__ == "__main__":
    sys.exit(main())
