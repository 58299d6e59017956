"""The collector against the Python floor, side by side in one run, loaded by wrk (issue 9).

    .venv/bin/python benchmarks/bench_collector.py [--workers 1,2] [--seconds 10]    # or: make bench

Needs Debian's wrk and nginx (`make bench` installs them). For each worker count N:

- the Python floor (benchmarks/floor_app.py: read, gunzip and json.loads a native batch; read and
  parse a GA form) on Uvicorn with Footfall's settings and N workers, against `footfall serve`
  (`--workers N` when N > 1) on a temp data directory with the defaults a user gets: nothing is
  turned off, rate limits included;
- peak rates with wrk (2 threads, 64 connections, `--seconds` each): native batches of 100 events,
  gzip, `POST /v1/batch`; GA v1 single hits, form `POST /collect`. Every answer must be 2xx;
- acknowledgement latency (p99, wrk --latency) with each connection paced by Lua's `delay()` to
  half of Footfall's native peak (fewer connections at low rates, so no pause reaches the
  keep-alive timeout); the paced rate reached is printed beside it;
- acknowledged -> visible: during 6 x `--seconds` of native peak load, a probe sends one-event
  batches to a second app and polls the API's overview report (admin token) until each is counted;
- the resident memory of every process of the serve (walking /proc), sampled each second over that
  same load: the maximum, and the first 10 s against the last 10 s;
- nginx returning 204 (N worker processes), for the ratio kept from earlier runs.

Prints a markdown table with the issue's goals and whether each is met. Exits 0 when the run
worked, goals met or not; non-zero when it did not (a non-2xx answer, a server that died, a probe
that never became visible, a missing tool).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import http.client
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common import free_port, tree_rss_mib, wait_for

HERE = Path(__file__).resolve().parent
APP = "bench-tool"
PROBE_APP = "bench-probe"  # its own app, so the probe counts only its markers
TID = "UA-424242-1"
EVENTS_PER_BATCH = 100
THREADS = 2
CONNECTIONS = 64
WARM_UP_S = 2
MAX_MEAN_DELAY_S = 1.5  # a paced connection's mean pause; the longest is twice that, under the keep-alive
RSS_EDGE_S = 10  # the first and the last this many seconds are compared for growth
RSS_GROWTH_ALLOWED = 0.10  # "not growing": the last 10 s average within 10 % of the first 10 s
PROBE_PAUSE_S = 0.25  # between markers
PROBE_POLL_S = 0.05  # each poll runs a report, which is load too: 50 ms is fine against a 2 s goal
PROBE_GIVE_UP_S = 30.0  # a marker not counted by then is lost: the run fails
GOAL_NATIVE_RATIO, GOAL_NATIVE_EVENTS_S, GOAL_GA_RATIO = 0.4, 100_000, 0.5  # at --workers 2
GOAL_ACK_P99_MS, GOAL_VISIBLE_P99_S, GOAL_RSS_MIB = 25.0, 2.0, 400.0
# Footfall's own Uvicorn settings (src/footfall/server/operator/serving.py, server_config) at defaults.
UVICORN_FLAGS = [
    "--http=httptools",
    "--log-level=warning",
    "--no-access-log",
    "--no-proxy-headers",
    "--no-server-header",
    "--timeout-keep-alive=5",
    "--limit-concurrency=1000",
    "--backlog=2048",
]
NGINX_CONF = """
daemon off; worker_processes {workers}; pid {prefix}/nginx.pid; error_log {prefix}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {prefix}/nginx-body;
  server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }} }}
"""
LUA = """
wrk.method = "POST"
local f = io.open("{body}", "rb"); wrk.body = f:read("*all"); f:close()
wrk.headers["Content-Type"] = "{content_type}"
{extra}
"""


class BenchFailed(Exception):
    """The run itself failed (not a goal missed): the benchmark exits non-zero."""


@dataclasses.dataclass
class Load:
    requests_s: float
    p50_ms: float
    p99_ms: float


@dataclasses.dataclass
class Column:
    """The figures of one worker count."""

    workers: int
    skipped: str = ""
    native: dict[str, float] = dataclasses.field(default_factory=dict)  # server -> events/s
    ga: dict[str, float] = dataclasses.field(default_factory=dict)  # server -> hits/s
    paced_events_s: float = 0.0
    ack_p50_ms: float = 0.0
    ack_p99_ms: float = 0.0
    visible_s: list[float] = dataclasses.field(default_factory=list)
    rss_mib: list[float] = dataclasses.field(default_factory=list)
    sustained_events_s: float = 0.0


# -- payloads and wrk ---------------------------------------------------------------------


def native_body(app: str, events: int) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    batch = {
        "app": app,
        "context": {
            "install": "0f8fad5bd9cb469fa16570867728950e",
            "session": "6ba7b8109dad11d180b400c04fd430c8",
            "app_version": "1.4.0",
            "platform": {"os": "linux", "os_version": "6.1", "arch": "x86_64", "runtime": "cpython"},
            "environment": {"ci": "", "container": ""},
        },
        "events": [
            {
                "name": "command",
                "time": (now - dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                "props": {"command": "build", "options": ["--fast"], "jobs": i % 8},
            }
            for i in range(events)
        ],
    }
    return gzip.compress(json.dumps(batch).encode())


GA_HIT = f"v=1&tid={TID}&cid=35009a79-1a05-49d7&t=event&ec=cli&ea=run&el=build&ev=3".encode()


def write_scripts(work: Path) -> dict[str, Path]:
    (work / "native.bin").write_bytes(native_body(APP, EVENTS_PER_BATCH))
    (work / "hit.txt").write_bytes(GA_HIT)
    scripts = {"native": work / "native.lua", "ga": work / "ga.lua"}
    gzip_header = 'wrk.headers["Content-Encoding"] = "gzip"'
    scripts["native"].write_text(
        LUA.format(body=work / "native.bin", content_type="application/json", extra=gzip_header)
    )
    scripts["ga"].write_text(
        LUA.format(body=work / "hit.txt", content_type="application/x-www-form-urlencoded", extra="")
    )
    return scripts


def paced_script(work: Path, native: Path, delay_ms: float) -> Path:
    script = work / "paced.lua"
    # Uniform between 0 and twice the mean, so that the connections do not fire in step.
    script.write_text(native.read_text() + f"function delay() return math.random() * {2 * delay_ms:.3f} end\n")
    return script


def duration_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, script: Path, seconds: float, connections: int = CONNECTIONS) -> Load:
    """One wrk run; any non-2xx answer or socket error fails the whole benchmark, loudly."""
    command = [
        "wrk",
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout=10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise BenchFailed(f"wrk failed against {url}:\n{out}{done.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if non_2xx or errors:
        raise BenchFailed(f"{url} did not acknowledge every request (non-2xx answers or socket errors):\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50, p99 = (re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE) for p in (50, 99))
    return Load(rate, *(duration_ms(*p.groups()) if p else math.nan for p in (p50, p99)))


# -- the servers --------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment without FOOTFALL_* variables: the serve gets the defaults a user gets."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FOOTFALL_")}


def footfall_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "footfall.cli", *args]


def serve_knows_workers() -> bool:
    done = subprocess.run(footfall_command("serve", "--help"), capture_output=True, text=True, env=clean_env())
    return "--workers" in done.stdout


@contextmanager
def process(command: list[str], log: Path, cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=clean_env())
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def alive(child: subprocess.Popen[bytes], name: str, log: Path) -> None:
    if child.poll() is not None:
        raise BenchFailed(f"{name} exited with {child.returncode}:\n{log.read_text()[-3000:]}")


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_footfall_stores(port: int, native: bytes) -> None:
    """One batch and one hit by hand, so a load of silently rejected events cannot pass for a fast one."""
    status, answer = request(
        port, "POST", "/v1/batch", native, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    if status != 202 or json.loads(answer).get("accepted") != EVENTS_PER_BATCH:
        raise BenchFailed(f"the benchmark's batch is not accepted whole: {status} {answer[:500]!r}")
    status, answer = request(port, "POST", "/debug/collect", GA_HIT)
    parsed = json.loads(answer)["hitParsingResult"]
    if status != 200 or not parsed or not (parsed[0].get("footfall") or {}).get("stored"):
        raise BenchFailed(f"the benchmark's GA hit would not be stored: {answer[:500]!r}")


# -- the probes during sustained load ------------------------------------------------------


def probe_visibility(port: int, token: str, stop: threading.Event, delays: list[float], failure: list[str]) -> None:
    """Send one-event batches to PROBE_APP, each acknowledged, then poll the overview report
    until the events counted reach the markers sent; record each delay."""
    marker = native_body(PROBE_APP, 1)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    auth = {"Authorization": f"Bearer {token}"}
    sent = 0
    try:
        while not stop.is_set():
            status, answer = request(port, "POST", "/v1/batch", marker, headers)
            if status != 202 or json.loads(answer).get("accepted") != 1:
                raise BenchFailed(f"a marker was not acknowledged: {status} {answer[:300]!r}")
            acknowledged = time.monotonic()
            sent += 1
            while True:
                status, answer = request(port, "GET", f"/api/v1/apps/{PROBE_APP}/reports/overview?days=2", headers=auth)
                if status != 200:
                    raise BenchFailed(f"the overview report answered {status}: {answer[:300]!r}")
                rows = json.loads(answer)["rows"]
                if next(int(row["value"]) for row in rows if row["measure"] == "events") >= sent:
                    delays.append(time.monotonic() - acknowledged)
                    break
                if time.monotonic() - acknowledged > PROBE_GIVE_UP_S:
                    raise BenchFailed(f"marker {sent} was acknowledged but not counted after {PROBE_GIVE_UP_S:g} s")
                time.sleep(PROBE_POLL_S)
            stop.wait(PROBE_PAUSE_S)
    except (BenchFailed, OSError, ValueError, KeyError, StopIteration) as exc:
        failure.append(f"visibility probe: {exc!r}")


def sample_rss(root: int, stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(1.0):
        samples.append(tree_rss_mib(root))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


# -- one worker count ------------------------------------------------------------------------


def measure(workers: int, seconds: float, work: Path, scripts: dict[str, Path]) -> Column:
    column = Column(workers)
    data = work / f"data-{workers}"
    for command in (("app", "add", APP, "--ga-tid", TID), ("app", "add", PROBE_APP)):
        done = subprocess.run(
            footfall_command(*command, "--data", str(data)), capture_output=True, text=True, env=clean_env()
        )
        if done.returncode != 0:
            raise BenchFailed(f"footfall {' '.join(command)} failed: {done.stderr}")
    ports = {"floor": free_port(), "footfall": free_port(), "nginx": free_port()}
    (work / "nginx.conf").write_text(NGINX_CONF.format(prefix=work, port=ports["nginx"], workers=workers))
    floor = [
        sys.executable,
        "-m",
        "uvicorn",
        "floor_app:app",
        f"--port={ports['floor']}",
        f"--workers={workers}",
        *UVICORN_FLAGS,
    ]
    serve = footfall_command("serve", "--data", str(data), "--port", str(ports["footfall"]))
    if workers > 1:
        serve += ["--workers", str(workers)]
    logs = {name: work / f"{name}-{workers}.log" for name in ports}
    with ExitStack() as stack:
        children = {
            "floor": stack.enter_context(process(floor, logs["floor"], cwd=HERE)),
            "footfall": stack.enter_context(process(serve, logs["footfall"])),
            "nginx": stack.enter_context(
                process(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)], logs["nginx"])
            ),
        }
        for name, port in ports.items():
            wait_for(f"http://127.0.0.1:{port}/healthz" if name == "footfall" else f"http://127.0.0.1:{port}/")
            alive(children[name], name, logs[name])
        check_footfall_stores(ports["footfall"], (work / "native.bin").read_bytes())

        def url(name: str, protocol: str) -> str:
            return f"http://127.0.0.1:{ports[name]}" + ("/v1/batch" if protocol == "native" else "/collect")

        for name in ("floor", "footfall"):
            wrk(url(name, "native"), scripts["native"], WARM_UP_S)
        for protocol, rates, per_request in (("native", column.native, EVENTS_PER_BATCH), ("ga", column.ga, 1)):
            for name in ("floor", "footfall", "nginx"):
                rates[name] = wrk(url(name, protocol), scripts[protocol], seconds).requests_s * per_request
                alive(children[name], name, logs[name])
            print(
                f"  workers {workers}, {protocol}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()),
                flush=True,
            )

        paced_requests_s = column.native["footfall"] / EVENTS_PER_BATCH / 2
        # Fewer connections when the rate is low, so no pause reaches the 5 s keep-alive timeout.
        connections = min(CONNECTIONS, max(THREADS, math.ceil(paced_requests_s * MAX_MEAN_DELAY_S)))
        script = paced_script(work, scripts["native"], connections * 1000 / paced_requests_s)
        paced = wrk(url("footfall", "native"), script, seconds, connections)
        column.paced_events_s = paced.requests_s * EVENTS_PER_BATCH
        column.ack_p50_ms, column.ack_p99_ms = paced.p50_ms, paced.p99_ms
        print(
            f"  workers {workers}, paced: {column.paced_events_s:,.0f} events/s, p99 {column.ack_p99_ms:.1f} ms",
            flush=True,
        )

        token = json.loads((data / "secrets.json").read_text())["admin_token"]
        stop, failure = threading.Event(), []
        helpers = [
            threading.Thread(target=probe_visibility, args=(ports["footfall"], token, stop, column.visible_s, failure)),
            threading.Thread(target=sample_rss, args=(children["footfall"].pid, stop, column.rss_mib)),
        ]
        for helper in helpers:
            helper.start()
        try:
            sustained = wrk(url("footfall", "native"), scripts["native"], 6 * seconds)
        finally:
            stop.set()
            for helper in helpers:
                helper.join(PROBE_GIVE_UP_S + 30)
        alive(children["footfall"], "footfall", logs["footfall"])
        if failure:
            raise BenchFailed(failure[0])
        if not column.visible_s or not column.rss_mib:
            raise BenchFailed("no visibility or memory sample was taken during the sustained load")
        column.sustained_events_s = sustained.requests_s * EVENTS_PER_BATCH
    return column


# -- the table -------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


ROWS = (
    ("native floor (read, gunzip, json.loads)", ""),
    ("native Footfall, acknowledged", f"≥ {GOAL_NATIVE_EVENTS_S:,} events/s at --workers 2"),
    ("native ratio to the floor", f"≥ {GOAL_NATIVE_RATIO} at --workers 2"),
    ("GA v1 floor (read, parse_qsl)", ""),
    ("GA v1 Footfall, acknowledged", ""),
    ("GA v1 ratio to the floor", f"≥ {GOAL_GA_RATIO} at --workers 2"),
    ("acknowledgement p99 at half the native peak (paced rate)", f"≤ {GOAL_ACK_P99_MS:g} ms"),
    ("acknowledged → visible in the report, p99", f"≤ {GOAL_VISIBLE_P99_S:g} s"),
    ("collector RSS, all processes, under the sustained native load", f"≤ {GOAL_RSS_MIB:g} MiB, not growing"),
    ("nginx 204: Footfall's ratio, native and GA v1", "(for the record)"),
)


def cells(c: Column) -> list[str]:
    """One column of the table, in the order of ROWS."""
    if c.skipped:
        return [c.skipped] + ["—"] * (len(ROWS) - 1)

    def at_two(text: str, met: bool) -> str:  # the throughput goals are set for --workers 2
        return f"{text}, {verdict(met)}" if c.workers >= 2 else text

    native_ratio, ga_ratio = c.native["footfall"] / c.native["floor"], c.ga["footfall"] / c.ga["floor"]
    visible_p99 = percentile(c.visible_s, 0.99)
    edge = max(1, min(RSS_EDGE_S, len(c.rss_mib) // 3))  # fewer than 10 s each in a short run
    rss_first, rss_last = statistics.fmean(c.rss_mib[:edge]), statistics.fmean(c.rss_mib[-edge:])
    rss_met = max(c.rss_mib) <= GOAL_RSS_MIB and rss_last <= rss_first * (1 + RSS_GROWTH_ALLOWED)
    return [
        f"{c.native['floor']:,.0f} events/s",
        at_two(f"{c.native['footfall']:,.0f} events/s", c.native["footfall"] >= GOAL_NATIVE_EVENTS_S),
        at_two(f"{native_ratio:.2f}", native_ratio >= GOAL_NATIVE_RATIO),
        f"{c.ga['floor']:,.0f} hits/s",
        f"{c.ga['footfall']:,.0f} hits/s",
        at_two(f"{ga_ratio:.2f}", ga_ratio >= GOAL_GA_RATIO),
        f"{c.ack_p99_ms:.1f} ms (p50 {c.ack_p50_ms:.1f} ms; {c.paced_events_s:,.0f} events/s), "
        f"{verdict(c.ack_p99_ms <= GOAL_ACK_P99_MS)}",
        f"{visible_p99:.2f} s (max {max(c.visible_s):.2f} s, {len(c.visible_s)} marker{'' if len(c.visible_s) == 1 else 's'}), "
        f"{verdict(visible_p99 <= GOAL_VISIBLE_P99_S)}",
        f"max {max(c.rss_mib):.0f} MiB; first {edge} s {rss_first:.0f} → last {edge} s {rss_last:.0f} MiB "
        f"(at {c.sustained_events_s:,.0f} events/s), {verdict(rss_met)}",
        f"{c.native['footfall'] / c.native['nginx']:.3f}, {c.ga['footfall'] / c.ga['nginx']:.3f}",
    ]


def table(columns: list[Column]) -> str:
    lines = [
        "| measure | goal | " + " | ".join(f"--workers {c.workers}" for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    by_column = [cells(c) for c in columns]
    for index, (measure, goal) in enumerate(ROWS):
        lines.append(f"| {measure} | {goal} | " + " | ".join(column[index] for column in by_column) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated (default 1,2)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=10,
        help="seconds per peak measurement; the sustained load is 6 times this (default 10)",
    )
    args = parser.parse_args()
    try:
        counts = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--workers {args.workers!r}: give worker counts such as 1,2")
    if not counts or min(counts) < 1 or args.seconds < 1:
        parser.error("--workers needs counts of 1 or more and --seconds at least 1")
    missing = [
        tool for tool in ("wrk", "nginx") if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if missing:
        print(
            f"bench_collector: {' and '.join(missing)} missing: apt-get install wrk nginx-light (or run `make bench`)",
            file=sys.stderr,
        )
        return 2
    knows_workers = serve_knows_workers()
    columns: list[Column] = []
    work = Path(tempfile.mkdtemp(prefix="ffbench-"))
    os.environ["PATH"] = f"/usr/sbin:{os.environ.get('PATH', '')}"  # Debian's nginx
    try:
        scripts = write_scripts(work)
        for workers in counts:
            if workers > 1 and not knows_workers:
                print(
                    f"  workers {workers}: skipped: `footfall serve` has no --workers option on this code yet",
                    flush=True,
                )
                columns.append(Column(workers, skipped="skipped: `footfall serve` has no `--workers` yet"))
                continue
            columns.append(measure(workers, args.seconds, work, scripts))
    except BenchFailed as exc:
        print(f"bench_collector: the run failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if all(c.skipped for c in columns):
        print("bench_collector: nothing was measured", file=sys.stderr)
        return 1
    print(
        f"\nCollector benchmark, {dt.date.today().isoformat()}, {os.cpu_count()} cores, loopback; wrk -t{THREADS} -c{CONNECTIONS},"
        f" {args.seconds:g} s per peak, {6 * args.seconds:g} s sustained; native: {EVENTS_PER_BATCH} events per gzip batch;"
        " GA v1: one form hit per request\n"
    )
    print(table(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
