"""Where the CPU goes while `footfall serve` takes native batches at its peak (issue 9).

    .venv/bin/python benchmarks/profile_serve.py [--workers 1] [--seconds 15]

bench_collector.py gives the rates; this gives the reasons, without a sampling profiler: for
`--seconds` of wrk (bench_collector's script: 2 threads, 64 connections, batches of 100 events,
gzip) it reads from /proc the CPU time (user + system) of every thread of every process of the
serve, and of wrk, and prints it per event acknowledged:

- each process's event-loop thread (its main thread: HTTP, routing, the middleware, awaiting
  the log), and its other threads together (the thread pool's pipeline runs, the log's writer
  and fsyncs, and on the owner the loader with DuckDB's own threads);
- wrk itself, which shares the 2 cores;
- how the established connections spread over the serve's processes (sampled mid-run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_collector import APP, EVENTS_PER_BATCH, TID, clean_env, footfall_command, process, write_scripts
from common import free_port, process_tree, wait_for

TICKS_S = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of `pid`, by thread id."""
    times = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICKS_S  # utime, stime
    return times


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_S


def connections_by_pid(port: int) -> dict[int, int]:
    """Established connections accepted on `port`, by the pid holding them (ss -p)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    counts: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ffprofile-"))
    scripts = write_scripts(work)
    data = work / "data"
    done = subprocess.run(
        footfall_command("app", "add", APP, "--ga-tid", TID, "--data", str(data)),
        capture_output=True,
        env=clean_env(),
    )
    if done.returncode:
        print(done.stderr.decode(), file=sys.stderr)
        return 1
    port = free_port()
    serve = footfall_command("serve", "--data", str(data), "--port", str(port), "--workers", str(args.workers))
    with process(serve, work / "serve.log") as root:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)  # the workers start after the owner answers
        pids = process_tree(root.pid)
        before = {pid: thread_cpu_s(pid) for pid in pids}
        spread: dict[int, int] = {}

        def sample_spread() -> None:
            time.sleep(args.seconds / 2)
            spread.update(connections_by_pid(port))

        sampler = threading.Thread(target=sample_spread)
        sampler.start()
        started = time.monotonic()
        wrk = subprocess.Popen(
            [
                "wrk",
                "-t2",
                "-c64",
                f"-d{round(args.seconds)}s",
                "-s",
                str(scripts["native"]),
                f"http://127.0.0.1:{port}/v1/batch",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wrk_cpu = 0.0
        while wrk.poll() is None:
            try:
                wrk_cpu = process_cpu_s(wrk.pid)  # the last reading before it exits
            except OSError:
                break
            time.sleep(0.2)
        out = wrk.communicate()[0]
        elapsed = time.monotonic() - started
        after = {pid: thread_cpu_s(pid) for pid in pids}
        sampler.join()
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    events = (requests - int(non_2xx.group(1) if non_2xx else 0)) * EVENTS_PER_BATCH

    def per_event_us(seconds: float) -> str:
        return f"{seconds * 1e6 / events:6.1f} µs/event ({seconds / elapsed:4.0%} of a core)"

    print(
        f"--workers {args.workers}: {events / elapsed:,.0f} events/s acknowledged over {elapsed:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )
    total = 0.0
    for pid in pids:
        loop = after[pid].get(pid, 0.0) - before[pid].get(pid, 0.0)
        rest = sum(after[pid].values()) - sum(before[pid].values()) - loop
        total += loop + rest
        role = "owner " if pid == root.pid else "worker"
        print(
            f"  {role} {pid}: event loop {per_event_us(loop)}; other threads {per_event_us(rest)}; connections {spread.get(pid, 0)}"
        )
    print(f"  serve, all processes: {per_event_us(total)}")
    print(f"  wrk:                  {per_event_us(wrk_cpu)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
