"""Counters, gauges and one histogram, written in the Prometheus text format.

Labels are protocols, reasons and app ids: never an address, an id or a value.
"""

from __future__ import annotations

import bisect
import math
import sys
import threading
from collections.abc import Callable

COMMIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Labels = tuple[tuple[str, str], ...]
MAX_COUNTER = sys.float_info.max  # a counter saturates here instead of overflowing to inf


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._help: dict[str, str] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._histogram_counts = [0] * (len(COMMIT_BUCKETS_S) + 1)
        self._histogram_sum = 0.0

    def count(self, name: str, help_text: str, amount: float = 1, **labels: str) -> None:
        amount = _finite(amount)
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._help[name] = help_text
            series = self._counters.setdefault(name, {})
            series[key] = min(series.get(key, 0) + amount, MAX_COUNTER)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._help[name] = help_text
        self._gauges[name] = read

    def observe_commit(self, seconds: float) -> None:
        with self._lock:
            self._histogram_counts[bisect.bisect_left(COMMIT_BUCKETS_S, seconds)] += 1
            self._histogram_sum += seconds

    def snapshot(self) -> tuple[dict[str, tuple[str, dict[Labels, float]]], list[int], float]:
        """(every counter's help and series, the histogram's bucket counts, its sum): what an
        ingest worker reports to the owner as differences from its last report."""
        with self._lock:
            counters = {name: (self._help[name], dict(series)) for name, series in self._counters.items()}
            return counters, list(self._histogram_counts), self._histogram_sum

    def add_histogram(self, counts: list[int], total: float) -> None:
        """Add another process's commit-latency observations (bucket by bucket)."""
        if len(counts) != len(self._histogram_counts):
            return
        with self._lock:
            for index, count in enumerate(counts):
                self._histogram_counts[index] += max(0, int(count))
            self._histogram_sum += _finite(total)

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._counters):
                lines += [f"# HELP {name} {self._help[name]}", f"# TYPE {name} counter"]
                for labels, amount in sorted(self._counters[name].items()):
                    lines.append(f"{name}{_labels(labels)} {_number(amount)}")
            counts, total = list(self._histogram_counts), self._histogram_sum
        for name in sorted(self._gauges):
            lines += [
                f"# HELP {name} {self._help[name]}",
                f"# TYPE {name} gauge",
                f"{name} {_number(self._gauges[name]())}",
            ]
        histogram = "footfall_commit_seconds"
        lines += [
            f"# HELP {histogram} Time from a request's events reaching the store to their commit.",
            f"# TYPE {histogram} histogram",
        ]
        running = 0
        for bound, count in zip((*COMMIT_BUCKETS_S, float("inf")), counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'{histogram}_bucket{{le="{le}"}} {running}')
        lines += [f"{histogram}_sum {_number(total)}", f"{histogram}_count {running}"]
        return "\n".join(lines) + "\n"


def _finite(amount: float) -> float:
    """A counter increment as a float that arithmetic and rendering can always handle.

    An int too large for a float (a client's 400-digit number) becomes the largest
    float, NaN becomes 0, and negative amounts (a counter never falls) become 0.
    """
    try:
        value = float(amount)
    except (OverflowError, ValueError, TypeError):
        return MAX_COUNTER
    if math.isnan(value) or value < 0:
        return 0.0
    return min(value, MAX_COUNTER)


def _number(value: float) -> str:
    """A sample value in the Prometheus text format: exact for whole numbers up to 2**53."""
    try:
        value = float(value)
    except (OverflowError, ValueError, TypeError):
        return "+Inf"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + ",".join(escaped) + "}"
