"""Run the collector and dashboard on a real server (Uvicorn), on one data directory.

The socket is bound before Uvicorn starts, so `--port 0` works and DIR/server.json
names the real port before the first request can arrive. Access logs are off:
they would record client IPs, which Footfall never keeps. Uvicorn's own
proxy-header handling is off too: it would trust X-Forwarded-For from loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from footfall.server.datadir import DataDir
from footfall.server.edge.app import create_app
from footfall.server.edge.internal import bind_owner_socket, owner_socket_app, socket_address
from footfall.server.errors import UsageError
from footfall.server.logs import configure_logging
from footfall.server.operator.worker import Supervisor
from footfall.server.settings import Settings, absolute_url, listening_url
from footfall.server.stores import open_store

GRACEFUL_SHUTDOWN_S = 10


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol, closing a connection whose request headers do not
    arrive in time.

    Uvicorn times out idle keep-alive connections but not a request that is being sent
    slowly: a client could open hundreds of connections and trickle a header byte now and
    then (slowloris), holding them for ever. A timer is armed when a connection opens and
    when a request begins, and disarmed when that request's headers are complete; if it
    fires first, the connection is closed. The body has its own limit (`read_timeout_s`).
    """

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        if self.header_timeout_s > 0 and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # a keep-alive connection's next request

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def server_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """Uvicorn's configuration with Footfall's connection limits: header and keep-alive
    timeouts, and a cap on connections beyond which requests are answered 503."""
    return uvicorn.Config(
        app,
        http=functools.partial(HeaderTimeoutProtocol, header_timeout_s=settings.header_timeout_s),  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # only --trusted-proxies says whose X-Forwarded-For counts
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=max(1, math.ceil(settings.keep_alive_s)) if settings.keep_alive_s else 0,
        limit_concurrency=settings.max_connections or None,
    )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Uvicorn drains requests on SIGTERM, then raises the signal again; exiting
    # through SystemExit here lets `run_server` close the store and tidy up.
    raise SystemExit(0)


class _SocketServer(uvicorn.Server):
    """The owner's server on its Unix socket: it runs beside the TCP one, which alone handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_with_workers(settings: Settings, app: Starlette, server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve as the owner of `settings.workers - 1` ingest workers (operator/worker.py): the same app
    on the TCP port and on DIR/run/owner.sock, where the workers forward what they do not handle."""
    datadir = DataDir(settings.data)
    ctx = app.state.context
    unix_sock = bind_owner_socket(datadir.run)
    config = server_config(owner_socket_app(app, ctx), settings)
    config.lifespan = "off"  # the TCP server's lifespan starts and stops the log, once
    unix_server = _SocketServer(config)
    supervisor = Supervisor(settings, sock)
    ctx.log.request_seals = supervisor.request_seals
    ctx.log.live_workers = supervisor.live
    ctx.on_shutdown.append(supervisor.stop)  # before the log closes: their last segments load

    async def serve() -> None:
        unix_task = asyncio.create_task(unix_server.serve(sockets=[unix_sock]))
        supervisor.start()
        try:
            await server.serve(sockets=[sock])
        finally:
            unix_server.should_exit = True
            await unix_task

    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(serve())
    finally:
        unix_sock.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_address(datadir.run))


def run_server(settings: Settings, announce: Callable[[str, str], None]) -> None:
    """Serve until interrupted; `announce(url, login_url)` is called once listening."""
    datadir = DataDir(settings.data)
    datadir.create()
    secrets = datadir.secrets()  # made on first start, before anything can ask for them
    store = open_store(settings.store, datadir.database)
    sock = None
    try:
        # Collectors sharing a store must hash installs alike: a different key refuses to start.
        store.check_secrets(secrets.fingerprint, str(datadir.secrets_file))
        sock = bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        url = listening_url(settings.host, port)
        configure_logging()
        app = create_app(settings, store)
        server = uvicorn.Server(server_config(app, settings))
        # The CLI talks to the server at the address it listens on; links it prints use the public one.
        datadir.write_server_file(os.getpid(), url, settings.public_url)
        # A one-time code, not the admin token: the printed link may land in logs and history.
        code = app.state.context.accounts.create_login_code()
        announce(url, absolute_url(settings, f"/login?code={code}", port))
        sys.stdout.flush()
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        if settings.workers == 1:
            server.run(sockets=[sock])  # its lifespan starts and stops the ingest log
        else:
            serve_with_workers(settings, app, server, sock)
    finally:
        datadir.remove_server_file(os.getpid())
        if sock is not None:
            sock.close()
        store.close()
