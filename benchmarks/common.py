"""Helpers the benchmarks share: free ports, waiting for a server, resident memory."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 30) -> None:
    """Return once `url` answers at all (any HTTP status counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (Uvicorn's workers, a supervisor's children), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_rss_mib(root: int) -> float:
    """Resident memory of `root` and all its descendants; a process that just ended counts 0."""
    total = 0.0
    for pid in process_tree(root):
        try:
            rss = rss_mib(pid)
        except OSError:
            continue
        if rss == rss:  # not NaN: a zombie has no VmRSS
            total += rss
    return total
