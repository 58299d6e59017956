"""The stores benchmark (benchmarks/bench_stores.py) compares like with like: its two generating
statements, one per engine, give the same events, so every report answers the same on both; and
what describes the machine is fixed per install, as in real data."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from footfall.server.query.filters import Filters
from footfall.server.query.reports import REPORTS, run_report
from footfall.server.stores.clickhouse import ClickHouseStore
from footfall.server.stores.duckdb import DuckDBStore
from tests.clickhouse import ClickHouseServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_stores

EVENTS = 3 * bench_stores.INSTALLS  # each install has three events, on three rows far apart


def test_both_engines_generate_the_same_events_and_an_install_is_one_machine(
    clickhouse_server: ClickHouseServer, tmp_path: Path
) -> None:
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    bench_stores.fill("DuckDB", tmp_path / "duckdb", "", 0, EVENTS, now)
    url = clickhouse_server.database()
    bench_stores.fill("ClickHouse", tmp_path / "clickhouse", url, clickhouse_server.http_port, EVENTS, now)
    duck = DuckDBStore(tmp_path / "duckdb" / "footfall.duckdb")
    house = ClickHouseStore(url)
    try:
        filters = Filters.from_params({}, 90)
        for name in REPORTS:
            answers = [run_report(store, name, bench_stores.APP, filters).as_json(bench_stores.APP, filters)
                       for store in (duck, house)]  # fmt: skip
            assert answers[0] == answers[1], name
        overview = run_report(duck, "overview", bench_stores.APP, filters).rows
        assert overview[0][1] > EVENTS // 2  # most of the 90 days' events are in the range
        for store in (duck, house):
            ((machines,),) = store.query(
                "SELECT max(n) FROM (SELECT install, count(*) AS n FROM (SELECT DISTINCT install, os, runtime_version,"
                " ci, container, country FROM events) AS machines GROUP BY install) AS per_install"
            ).rows
            assert machines == 1
    finally:
        duck.close()
        house.close()
