"""The dashboard's overview page over 10 million events on the embedded store.

    .venv/bin/python benchmarks/bench_reports.py [--events 10000000]

Fills a DuckDB file with synthetic events in one SQL statement (90 days, 100,000
installs, 5 versions, 20 countries, CI and local runs, commands with options), then
starts `footfall serve` on it and times GET /apps/<app> (the overview tab, last 30
days) over HTTP, against GET /healthz on the same server as the baseline. Also times
each report of the overview tab in-process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

APP = "big-tool"

FILL = """
INSERT INTO events
SELECT * EXCLUDE (i), ('0x' || substr(install, 1, 16))::UBIGINT, ('0x' || substr(session, 1, 16))::UBIGINT,
       i % 3 = 0 AS run_start FROM (SELECT i,
    now()::TIMESTAMP - to_seconds(CAST(floor(random() * 90 * 86400) AS BIGINT)) AS time,
    now()::TIMESTAMP AS received,
    '{app}' AS app,
    ['1.0.0', '1.1.0', '1.2.0', '2.0.0', '2.1.0'][1 + (i % 5)] AS app_version,
    CASE WHEN i % 20 = 0 THEN 'error' ELSE 'command' END AS name,
    md5(CAST(i % 100000 AS VARCHAR))[1:32] AS install,
    md5(CAST(i // 3 AS VARCHAR))[1:32] AS session,
    ['linux', 'macos', 'windows'][1 + (i % 3)] AS os, '6.1' AS os_version, 'x86_64' AS arch,
    'cpython' AS runtime, ['3.10', '3.11', '3.12'][1 + (i % 3)] AS runtime_version,
    CASE WHEN i % 4 = 0 THEN 'github-actions' ELSE '' END AS ci,
    CASE WHEN i % 7 = 0 THEN 'docker' ELSE '' END AS container,
    ['US','DE','IN','GB','FR','BR','CN','JP','CA','NL','PL','ES','IT','SE','AU','KR','CH','UA','MX','NG'][1 + (i % 20)],
    '{{"command":"' || ['build', 'check', 'run', 'serve'][1 + (i % 4)] || '","options":["--fast"],"outcome":"ok"}}',
    'native' AS source
FROM range({events}) AS t(i)
ORDER BY time)  -- events arrive roughly in time order, as the collector appends them
"""


def timed_get(url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate (default 10,000,000)")
    parser.add_argument("--runs", type=int, default=7, help="timed page loads (default 7)")
    args = parser.parse_args()

    from footfall.server.edge.dashboard import TABS
    from footfall.server.query.filters import Filters
    from footfall.server.query.reports import run_report
    from footfall.server.stores.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        store = DuckDBStore(data / "footfall.duckdb")
        store.add_app(APP)
        started = time.perf_counter()
        store._act(lambda con: con.execute(FILL.format(app=APP, events=args.events)))
        fill = time.perf_counter() - started
        filters = Filters.from_params({"days": "30"})
        in_process = {}
        for name in TABS["overview"]:
            run_report(store, name, APP, filters)  # warm
            started = time.perf_counter()
            run_report(store, name, APP, filters)
            in_process[name] = time.perf_counter() - started
        store.close()

        server = subprocess.Popen(
            [sys.executable, "-m", "footfall.cli", "serve", "--data", str(data), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not (data / "server.json").exists():
                time.sleep(0.1)
            url = json.loads((data / "server.json").read_text())["url"]
            token = json.loads((data / "secrets.json").read_text())["admin_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(100):
                try:
                    timed_get(url + "/healthz", {})
                    break
                except OSError:
                    time.sleep(0.1)
            timed_get(f"{url}/apps/{APP}", headers)  # warm
            pages = [timed_get(f"{url}/apps/{APP}", headers) for _ in range(args.runs)]
            health = [timed_get(url + "/healthz", {}) for _ in range(args.runs)]
        finally:
            server.terminate()
            server.wait(timeout=30)

    page, baseline = statistics.median(pages), statistics.median(health)
    print(f"{args.events:,} events generated in {fill:.1f} s; overview tab, last 30 days\n")
    print("| measure | median | best |")
    print("|---|---|---|")
    print(f"| GET /apps/{APP} (overview page) | {page * 1000:.0f} ms | {min(pages) * 1000:.0f} ms |")
    print(f"| GET /healthz (baseline, same server) | {baseline * 1000:.1f} ms | {min(health) * 1000:.1f} ms |")
    print(
        f"\nratio page/baseline: {page / baseline:,.0f}; goal: the page under 1 s -> {'met' if page < 1 else 'NOT met'}"
    )
    print("in-process, per report: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in in_process.items()))


if __name__ == "__main__":
    main()
