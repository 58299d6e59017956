"""Per-event CPU of the ingest path, in process: where each microsecond of an event goes.

    PYTHONPATH=src .venv/bin/python benchmarks/profile_ingest.py [--batches 300] [--hits 3000]

(PYTHONPATH picks the code measured: another checkout's src gives its numbers, with this script.)

Runs what the collector runs for a request, without HTTP and without the fsync: for a
native batch (the shape of bench_ingest.py: 100 events, gzip) the body is decompressed,
parsed, decoded and validated, each event goes through the ingest pipeline (checks,
keyed hashes, record building, the cardinality guard) and the records are encoded as
log lines; a GA v1 hit and a GA4 request (one event each) likewise.

Two passes per protocol, each the best of REPEATS:
- events/s: the plain code, timed as a whole;
- per stage: the same work with `time.perf_counter` around the functions named in
  STAGES (exclusive time: a stage's inner stages are not counted twice). The wrappers'
  own cost (the timed pass's total minus the plain one's) is shared equally among the
  timed calls and taken from the stages that made them, so the stages add up to the
  plain pass's microseconds per event. A stage is only as exact as that sharing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import APP, make_body

from footfall.server.datadir import DataDir
from footfall.server.edge.app import build_context
from footfall.server.edge.context import ServerContext
from footfall.server.ingest import segments
from footfall.server.ingest.pipeline import utc_now
from footfall.server.ingest.protocols import ga4, ga_v1
from footfall.server.operations import secret_hash
from footfall.server.settings import Settings
from footfall.server.stores.duckdb import DuckDBStore

REPEATS = 5  # best of: a stall of the shared machine is not the code's time
TID = "UA-12345-1"
MEASUREMENT_ID = "G-PROFILE1"
GA4_SECRET = "profile-secret"

# (module, attribute, stage). Missing attributes are skipped, so the one table serves the code
# before and after a change; a method is named "Class.method".
STAGES = (
    ("footfall.server.ingest.protocols.framing", "decompress", "gunzip"),
    ("footfall.server.ingest.protocols.framing", "parse_json", "JSON parse"),
    ("footfall.server.ingest.protocols.native", "decode_batch", "decode/validate"),
    ("footfall.server.ingest.protocols.native", "decode_body", "parse+decode/validate"),
    ("footfall.server.ingest.protocols.native", "to_incoming", "decode/validate"),
    ("footfall.server.ingest.protocols.ga_v1", "parse_hit", "decode/validate"),
    ("footfall.server.ingest.protocols.ga_v1", "to_incoming", "decode/validate"),
    ("footfall.server.ingest.protocols.ga4", "parse_request", "parse+decode/validate"),
    ("footfall.server.ingest.protocols.ga4", "to_incoming", "decode/validate"),
    ("footfall.server.ingest.pipeline", "Ingestor.record", "record building"),
    ("footfall.server.ingest.pipeline", "Ingestor.record_batch", "record building"),
    ("footfall.server.ingest.pipeline", "Ingestor._schema", "schema lookup"),
    ("footfall.server.ingest.pipeline", "refusal_of", "checks"),
    ("footfall.server.ingest.pipeline", "text_problem", "checks"),
    ("footfall.server.ingest.pipeline", "value_problem", "checks"),
    ("footfall.server.ingest.pipeline", "keyed_hash", "hashing"),
    ("footfall.server.ingest.pipeline", "kept_props", "checks"),
    ("footfall.server.ingest.pipeline", "name_refusal", "checks"),
    ("footfall.server.ingest.pipeline", "props_text", "props JSON"),
    ("footfall.server.ingest.cardinality", "CardinalityGuard.fold", "cardinality guard"),
    ("footfall.server.ingest.segments", "encode", "encoding"),
    ("footfall.server.ingest.segments", "encode_lines", "encoding"),
    ("footfall.server.ingest.segments", "LineTemplate.line", "encoding"),
)
STAGE_ORDER = (
    "gunzip",
    "JSON parse",
    "decode/validate",
    "parse+decode/validate",
    "schema lookup",
    "checks",
    "hashing",
    "props JSON",
    "record building",
    "cardinality guard",
    "encoding",
    "route (rest)",
)


class StageClock:
    """Exclusive time per stage: a timed call's time minus that of the timed calls inside it.

    Each timed call also costs its caller the wrapper's own work; `calls_charged` counts, per
    stage, the timed calls made from inside it ("route (rest)" for the top level), so that
    `corrected` can take that cost back out.
    """

    REST = "route (rest)"

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls_charged: dict[str, int] = {}
        self._open: list[tuple[str, list[float]]] = []  # per open call: its stage, its timed callees' time

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            parent = self._open[-1][0] if self._open else self.REST
            self.calls_charged[parent] = self.calls_charged.get(parent, 0) + 1
            inner = [0.0]
            self._open.append((stage, inner))
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self._open.pop()
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - inner[0]
                if self._open:
                    self._open[-1][1][0] += elapsed

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap every function in STAGES wherever it was imported (modules under footfall.server)."""
        undo: list[tuple[Any, str, Any]] = []
        wrapped: dict[int, Callable[..., Any]] = {}
        for module_name, attribute, stage in STAGES:
            owner: Any = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            original = getattr(owner, name, None) if owner is not None else None
            if original is None:
                continue
            timed = self.wrap(stage, original)
            wrapped[id(original)] = timed
            undo.append((owner, name, original))
            setattr(owner, name, timed)
        # Functions imported by name elsewhere (`from ... import decompress`) are wrapped there too.
        for module in [m for n, m in list(sys.modules.items()) if n.startswith("footfall.server") and m]:
            for name, value in list(vars(module).items()):
                if id(value) in wrapped and getattr(module, name) is value:
                    undo.append((module, name, value))
                    setattr(module, name, wrapped[id(value)])
        try:
            yield
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)


def native_route(ctx: ServerContext) -> Callable[[bytes], int]:
    """The route's own `native_records` (decode, checks, records), then the log's encoding."""
    from footfall.server.edge import collection

    (route,) = [r for r in collection.collection_routes(ctx) if getattr(r, "path", "") == "/v1/batch"]
    endpoint = route.endpoint
    cells = dict(zip(endpoint.__code__.co_freevars, endpoint.__closure__ or (), strict=True))
    records_of = cells["native_records"].cell_contents

    def run(body: bytes) -> int:
        answer = records_of(body, "gzip", "")
        if hasattr(answer, "lines"):  # a RecordedBatch: already the log's bytes
            return len(answer.lines)
        _, records = answer
        return len(encoded_lines(records))

    return run


def encoded_lines(records: list[Any]) -> bytes:
    """The bytes the log writer would append for `records`."""
    encode_lines = getattr(segments, "encode_lines", None)
    if encode_lines is not None:
        return bytes(encode_lines(records))
    return b"".join(segments.encode(record) for record in records)


def best_rate(run: Callable[[], int], rounds: int) -> float:
    """Events per second, the best of REPEATS runs of `rounds` calls."""
    best = 0.0
    for _ in range(REPEATS):
        started = time.perf_counter()
        events = sum(run() for _ in range(rounds))
        best = max(best, events / (time.perf_counter() - started))
    return best


def per_stage(run: Callable[[], int], rounds: int, untimed_us: float) -> dict[str, float]:
    """Microseconds per event in each stage (the best of REPEATS by total).

    The wrappers' own cost is taken out: the timed total minus `untimed_us` (the same work
    without wrappers), shared equally among the timed calls and charged to their callers.
    """
    best: tuple[float, StageClock, int] | None = None
    for _ in range(REPEATS):
        clock = StageClock()
        with clock.installed():
            started = time.perf_counter()
            events = sum(run() for _ in range(rounds))
            total = time.perf_counter() - started
        if best is None or total < best[0]:
            best = (total, clock, events)
    assert best is not None
    total, clock, events = best
    stages = {stage: seconds * 1e6 / events for stage, seconds in clock.seconds.items()}
    stages[StageClock.REST] = total * 1e6 / events - sum(stages.values())
    calls = sum(clock.calls_charged.values()) / events
    wrapper_us = max(total * 1e6 / events - untimed_us, 0.0) / calls if calls else 0.0
    for stage, charged in clock.calls_charged.items():
        stages[stage] = max(stages[stage] - wrapper_us * charged / events, 0.0)
    return stages


def ga_v1_hit() -> str:
    return urlencode(
        {
            "v": "1",
            "tid": TID,
            "cid": "35009a79-1a05-49d7-b876-2b884d0f825b",
            "t": "event",
            "ec": "command",
            "ea": "build",
            "el": "fast",
            "ev": "3",
            "av": "1.4.0",
            "ua": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
        }
    )


def ga4_body() -> bytes:
    return json.dumps(
        {
            "client_id": "1234567890.1764300000",
            "events": [{"name": "level_up", "params": {"level": 3, "character": "wizard"}}],
        }
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300, help="native batches per run (default 300)")
    parser.add_argument("--hits", type=int, default=3000, help="GA v1 hits and GA4 requests per run (default 3000)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data=Path(data), rate_per_client=0, rate_per_app=0, bytes_per_app=0)  # as bench_ingest.py
        DataDir(settings.data).secrets()
        store = DuckDBStore(settings.data / "footfall.duckdb")
        store.add_app(APP)
        store.add_app("ga-tool")
        store.add_key("ga-tool", "ga-tid", TID, "")
        store.add_key("ga-tool", "ga4", MEASUREMENT_ID, secret_hash(GA4_SECRET))
        ctx = build_context(settings, store)
        try:
            body = make_body(100)
            native_run = native_route(ctx)
            hit = ga_v1_hit()
            ga4_bytes = ga4_body()

            def native_once() -> int:
                native_run(body)
                return 100

            def ga_v1_once() -> int:
                parsed = ga_v1.parse_hit(hit)
                incoming = ga_v1.to_incoming(parsed, "ga-tool", utc_now(), "", "127.0.0.1", lambda ip, anon: "")
                record, _, _ = ctx.ingestor.record(incoming)
                assert record is not None
                return len(encoded_lines([record])) and 1

            def ga4_once() -> int:
                parsed = ga4.parse_request(ga4_bytes, firebase=False, received=utc_now())
                incoming = ga4.to_incoming(parsed, parsed.events[0], "ga-tool", "", "")
                record, _, _ = ctx.ingestor.record(incoming)
                assert record is not None
                return len(encoded_lines([record])) and 1

            print(f"ingest CPU per event, in process (no HTTP, no fsync), best of {REPEATS}")
            for label, run, rounds in (
                (f"native, {args.batches} batches x 100 events, gzip", native_once, args.batches),
                (f"GA v1, {args.hits} single hits", ga_v1_once, args.hits),
                (f"GA4, {args.hits} requests of one event", ga4_once, args.hits),
            ):
                run()  # warm the caches, as a running collector has them
                rate = best_rate(run, rounds)
                stages = per_stage(run, rounds, 1e6 / rate)
                print(f"\n{label}: {rate:,.0f} events/s ({1e6 / rate:.1f} us/event)")
                for stage in STAGE_ORDER:
                    if stage in stages:
                        print(f"  {stage:<24}{stages[stage]:>8.2f} us/event")
        finally:
            ctx.log.close()
            store.close()


if __name__ == "__main__":
    main()
