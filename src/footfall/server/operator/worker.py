"""`footfall serve --workers N`: the ingest workers, and the owner's supervision of them.

The owner (the process `footfall serve` starts) owns the DuckDB file, runs the loader
and serves everything, on the TCP port and on DIR/run/owner.sock. It starts N-1 ingest
workers (`Supervisor`), each `python -m footfall.server.operator.worker`, which inherit
the listening TCP socket, so the kernel spreads connections across all N processes.

A worker (`main`) takes the ingest endpoints itself, appending to its own log segments
(`<created>-<worker>-<nonce>`), and forwards every other request to the owner
(edge/forwarding.py). It holds DIR/run/worker-NN.lock while it writes. It reads the
owner's end of a pipe: a byte `s` asks it to seal its open segment now (for a report
that must see every acknowledged event); the end of the pipe means the owner is gone,
and the worker stops, so a `kill -9` of the owner leaves no process serving.

The owner restarts a worker that dies, once it has sealed that worker's open segment
(`recover_worker`), so the events it acknowledged load; and stops them all on shutdown,
before its own log is closed, so their last segments load too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from footfall.server.datadir import DataDir
from footfall.server.edge.context import ServerContext
from footfall.server.edge.internal import is_internal
from footfall.server.errors import StoreUnavailable
from footfall.server.ingest.log import hold_worker_lock, recover_worker
from footfall.server.settings import Settings

log = logging.getLogger("footfall.server")
SEAL_REQUEST = b"s"
OWNER_WAIT_S = 30.0  # a worker waits this long for the owner's socket at start
LOCK_WAIT_S = 15.0  # ... and for its lock, which a previous worker of its number may still hold
STOP_WAIT_S = 15.0  # the owner waits this long for its workers to drain and stop, then kills them
ORPHAN_EXIT_S = 3.0  # a worker whose owner died stops serving at once and exits within this
RESTART_BACKOFF_S = (0.2, 1.0, 5.0)  # a worker that keeps dying is restarted less and less often
MONITOR_INTERVAL_S = 0.2
INGEST_PATHS = frozenset(
    {"/v1/batch", "/collect", "/batch", "/debug/collect", "/mp/collect", "/debug/mp/collect", "/healthz"}
    | {"/api/v2/write", "/write"}  # InfluxDB line protocol (edge.influx)
)


# -- the owner's side ------------------------------------------------------------------


@dataclasses.dataclass
class _Child:
    number: int
    process: subprocess.Popen[bytes]
    pipe: int  # the write end of the owner's pipe: seal requests; closed (EOF) when the owner goes
    started: float
    restarts: int = 0


class Supervisor:
    """Starts, restarts and stops the ingest workers 1..N-1 of one owner."""

    def __init__(self, settings: Settings, listening: socket.socket) -> None:
        self.settings = settings
        self.listening = listening
        self.folder = DataDir(settings.data).log
        self.children: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for number in range(1, self.settings.workers):
            self.children[number] = self._spawn(number, 0)
        self._thread = threading.Thread(target=self._monitor, name="footfall-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, number: int, restarts: int) -> _Child:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # a seal request never blocks a report query
        document = {**dataclasses.asdict(self.settings), "data": str(self.settings.data)}
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "footfall.server.operator.worker",
                    "--worker",
                    str(number),
                    "--listen-fd",
                    str(self.listening.fileno()),
                    "--owner-fd",
                    str(read_end),
                    "--settings",
                    json.dumps(document),
                ],
                pass_fds=(self.listening.fileno(), read_end),
                # Its own process group: a Ctrl-C in the terminal reaches the owner only, which then
                # stops the workers in order (a worker stopped first would be restarted meanwhile).
                process_group=0,
            )
        finally:
            os.close(read_end)
        return _Child(number, process, write_end, time.monotonic(), restarts)

    def live(self) -> frozenset[int]:
        """The workers running now (whose open segments a read waits for)."""
        with self._lock:
            return frozenset(number for number, child in self.children.items() if child.process.poll() is None)

    def request_seals(self) -> None:
        """Ask every worker to seal its open segment now (see `IngestLog.seal_everywhere`).

        Under the lock, which every close of a pipe also takes: a closed pipe's number may
        be reused at once by another file, which must never receive this byte.
        """
        with self._lock:
            for child in self.children.values():
                with contextlib.suppress(OSError):  # full (a request is pending anyway) or the worker is gone
                    os.write(child.pipe, SEAL_REQUEST)

    def _monitor(self) -> None:
        while not self._stopping.wait(MONITOR_INTERVAL_S):
            for number, child in list(self.children.items()):
                if child.process.poll() is None or self._stopping.is_set():
                    continue
                log.warning("an ingest worker died; restarting it", extra={"worker": number})
                quick = time.monotonic() - child.started < 10
                restarts = child.restarts + 1 if quick else 0
                # Its acknowledged events are in its open segment: sealed now, so they load.
                if not recover_worker(self.folder, number, LOCK_WAIT_S):
                    log.warning("a dead worker's lock is still held", extra={"worker": number})
                if self._stopping.wait(RESTART_BACKOFF_S[min(restarts, len(RESTART_BACKOFF_S) - 1)]):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        replacement = self._spawn(number, restarts)
                    except (OSError, ValueError) as exc:  # the listening socket closed: shutting down
                        log.warning("an ingest worker could not be restarted: %s", exc, extra={"worker": number})
                        return
                    os.close(child.pipe)
                    self.children[number] = replacement

    def stop(self) -> None:
        """Stop every worker (they drain their requests and seal their segments), then return."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        children = list(self.children.values())
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for child in children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        with self._lock:
            for child in children:
                os.close(child.pipe)
            self.children = {}
        for child in children:
            recover_worker(self.folder, child.number, LOCK_WAIT_S)  # a worker that was killed: its segment


# -- the worker's side -----------------------------------------------------------------


def worker_app(settings: Settings, number: int, address: str) -> _Dispatcher:
    """The ingest worker's app: the ingest endpoints here, everything else forwarded to the owner."""
    from footfall.server.edge.app import EXCEPTION_HANDLERS, build_context, middleware
    from footfall.server.edge.collection import collection_routes
    from footfall.server.edge.forwarding import OwnerClient, OwnerView, Reporter, forward
    from footfall.server.edge.influx import influx_routes
    from footfall.server.edge.openapi import HEALTHZ, DocumentedRoute

    client = OwnerClient(address)
    view = OwnerView(client)
    deadline = time.monotonic() + OWNER_WAIT_S
    while True:  # the owner starts its socket's server just after starting the workers
        try:
            view.refresh()
            break
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    ctx = build_context(settings, view, worker=number)
    view.on_removed = ctx.ingestor.forget_app
    reporter = Reporter(client, ctx.metrics, ctx.log)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes: list[Route] = [DocumentedRoute("/healthz", healthz, {"GET": HEALTHZ})]
    routes += [route for route in [*collection_routes(ctx), *influx_routes(ctx)] if route.path in INGEST_PATHS]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        view.start()
        reporter.start()
        ctx.log.start()  # a worker's log counts the folder for backpressure in its own thread
        try:
            yield
        finally:
            view.close()
            ctx.log.close()  # seals the open segment: the owner loads it
            reporter.close()

    ingest = Starlette(
        routes=routes, lifespan=lifespan, middleware=middleware(settings), exception_handlers=EXCEPTION_HANDLERS
    )
    ingest.state.context = ctx

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        # The owner's internal routes answer on its socket, where this worker's requests arrive: a
        # client's request for one is never relayed there, but answered 404 by the ingest app.
        if scope["type"] != "http" or path in INGEST_PATHS or is_internal(path):
            await ingest(scope, receive, send)
        else:
            await forward(scope, receive, send, address)

    return _Dispatcher(dispatch, ctx)


class _Dispatcher:
    """An ASGI app that hands each request to `dispatch`, with a `state.context` like the owner's app."""

    def __init__(self, dispatch: ASGIApp, context: ServerContext) -> None:
        self._dispatch = dispatch
        self.state = types.SimpleNamespace(context=context)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._dispatch(scope, receive, send)


def _watch_owner(pipe: int, server: uvicorn.Server, seal: Callable[[], None]) -> None:
    """Seal on request; on the pipe's end (the owner is gone), stop serving and exit."""
    while True:
        try:
            data = os.read(pipe, 4096)
        except OSError:
            data = b""
        if not data:
            server.should_exit = True
            timer = threading.Timer(ORPHAN_EXIT_S, os._exit, args=(0,))
            timer.daemon = True
            timer.start()
            return
        with contextlib.suppress(Exception):  # a failed seal is retried by the next request or rotation
            seal()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="footfall-worker", description="An ingest worker of footfall serve.")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--owner-fd", type=int, required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args(argv)
    from footfall.server.edge.internal import socket_address
    from footfall.server.logs import configure_logging
    from footfall.server.operator.serving import server_config

    document = json.loads(args.settings)
    settings = Settings(**{**document, "data": Path(document["data"])})
    datadir = DataDir(settings.data)
    os.umask(0o077)
    configure_logging()
    lock = hold_worker_lock(datadir.log, args.worker, LOCK_WAIT_S)
    if lock is None:
        log.error("another process holds this worker's lock", extra={"worker": args.worker})
        return 1
    sock = socket.socket(fileno=args.listen_fd)
    app = worker_app(settings, args.worker, socket_address(datadir.run))
    server = uvicorn.Server(server_config(app, settings))
    writer = app.state.context.log.writer

    def seal() -> None:
        if writer.pending():
            writer.seal()

    threading.Thread(target=_watch_owner, args=(args.owner_fd, server, seal), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # uvicorn's handler takes over while serving
    server.run(sockets=[sock])
    os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
