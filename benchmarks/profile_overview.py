"""Where the dashboard's overview tab spends its time, on DuckDB and on ClickHouse (issue 13).

    .venv/bin/python benchmarks/profile_overview.py [--events 1000000] [--work DIR] [--runs 5] [--tab overview]

Generates `--events` rows in each engine with bench_stores' statements (kept in `--work` and reused
by the next run when given), then, in this process (no HTTP, no barrier), warm, the median of
`--runs` of: every SQL statement the tab's reports send (each report's statements in order), each
report whole, the version list the page's filter shows, and the page's rendering (Jinja2 and the
charts) from the reports. So the tab's time splits into SQL per statement and Python.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import bench_stores  # noqa: E402


class Recorder:
    """Wraps a store's `query`: each statement's text and parameters, in order."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.inner = store.query
        self.calls: list[tuple[str, Any]] = []
        store.query = self.query

    def query(self, sql: str, params: Any = None) -> Any:
        self.calls.append((sql, params))
        return self.inner(sql, params)


def median_of(runs: int, action: Callable[[], Any]) -> float:
    action()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def profile(name: str, store: Any, tab: str, runs: int) -> None:
    from footfall.server.edge import dashboard
    from footfall.server.query.filters import Filters
    from footfall.server.query.reports import app_versions, run_report

    filters = Filters.from_params({}, 30, timezone=store.timezone(bench_stores.APP))
    recorder = Recorder(store)
    print(f"\n## {name}, tab {tab}")
    total = 0.0
    versions_s = median_of(runs, lambda: app_versions(store, bench_stores.APP, limit=dashboard.MAX_VERSION_CHOICES))
    print(f"{versions_s * 1000:8.1f} ms  app_versions (the version filter's choices)")
    total += versions_s
    reports = []
    for report in dashboard.TABS[tab]:
        whole = median_of(runs, lambda r=report: run_report(store, r, bench_stores.APP, filters))
        total += whole
        print(f"{whole * 1000:8.1f} ms  report {report}")
        recorder.calls.clear()
        run_report(store, report, bench_stores.APP, filters)
        for sql, params in list(recorder.calls):
            seconds = median_of(runs, lambda s=sql, p=params: recorder.inner(s, p))
            print(f"    {seconds * 1000:8.1f} ms  {' '.join(sql.split())[:160]}")
        reports.append(run_report(store, report, bench_stores.APP, filters))
    versions = app_versions(store, bench_stores.APP, limit=dashboard.MAX_VERSION_CHOICES)
    render_s = median_of(
        runs,
        lambda: dashboard.app_page(
            bench_stores.APP, tab, filters, reports, versions, [bench_stores.APP], "", "", True, False
        ),
    )
    total += render_s
    print(f"{render_s * 1000:8.1f} ms  rendering (Jinja2, charts)")
    print(f"{total * 1000:8.1f} ms  in all (reports whole + versions + rendering)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", help="a folder to keep the generated data in, reused by the next run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tab", default="overview", help="a tab of named reports only (not properties, versions)")
    parser.add_argument("--engines", default="DuckDB,ClickHouse")
    args = parser.parse_args()
    from footfall.server.stores.clickhouse import ClickHouseStore
    from footfall.server.stores.duckdb import DuckDBStore

    engines = args.engines.split(",")
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="footfall-profile-") as temporary:
        work = Path(args.work) if args.work else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        with bench_stores.clickhouse(work / "clickhouse") as port:
            database = f"profile_{args.events}"
            url = bench_stores.create_database(port, database)
            duck_data = work / f"duckdb-{args.events}"
            if "DuckDB" in engines and not (duck_data / "footfall.duckdb").exists():
                seconds = bench_stores.fill("DuckDB", duck_data, "", port, args.events, now)
                print(f"DuckDB: {args.events:,} events generated in {seconds:.0f} s", file=sys.stderr)
            if "ClickHouse" in engines and not int(
                bench_stores.clickhouse_run(port, f"EXISTS TABLE {database}.events")
            ):
                seconds = bench_stores.fill("ClickHouse", work / "ch", url, port, args.events, now)
                print(f"ClickHouse: {args.events:,} events generated in {seconds:.0f} s", file=sys.stderr)
            if "DuckDB" in engines:
                duck = DuckDBStore(duck_data / "footfall.duckdb")
                try:
                    profile("DuckDB", duck, args.tab, args.runs)
                finally:
                    duck.close()
            if "ClickHouse" in engines:
                house = ClickHouseStore(url)
                try:
                    profile("ClickHouse 18.16", house, args.tab, args.runs)
                finally:
                    house.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
