"""Run the collector and dashboard on a real server (Uvicorn), on one data directory.

The socket is bound before Uvicorn starts, so `--port 0` works and DIR/server.json
names the real port before the first request can arrive. Access logs are off:
they would record client IPs, which Footfall never keeps. Uvicorn's own
proxy-header handling is off too: it would trust X-Forwarded-For from loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable

import uvicorn

from footfall.server.datadir import DataDir
from footfall.server.errors import UsageError
from footfall.server.logs import configure_logging
from footfall.server.settings import Settings
from footfall.server.spool import SpoolReplayer
from footfall.server.stores.duckdb import DuckDBStore
from footfall.server.web import create_app

GRACEFUL_SHUTDOWN_S = 10


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


def public_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = "[::1]" if shown == "::" else (f"[{shown}]" if ":" in shown else shown)
    return f"http://{shown}:{port}"


def login_link(url: str, code: str) -> str:
    return f"{url}/login?code={code}"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Uvicorn drains requests on SIGTERM, then raises the signal again; exiting
    # through SystemExit here lets `run_server` close the store and tidy up.
    raise SystemExit(0)


def run_server(settings: Settings, announce: Callable[[str, str], None]) -> None:
    """Serve until interrupted; `announce(url, login_url)` is called once listening."""
    datadir = DataDir(settings.data)
    datadir.create()
    datadir.secrets()  # made on first start, before anything can ask for them
    store = DuckDBStore(datadir.database)
    sock = None
    try:
        sock = bind(settings.host, settings.port)
        url = public_url(settings.host, sock.getsockname()[1])
        configure_logging()
        app = create_app(settings, store)
        replayer = SpoolReplayer(app.state.context.spool, store)
        replayer.start()
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # only --trusted-proxies says whose X-Forwarded-For counts
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        server = uvicorn.Server(config)
        datadir.write_server_file(os.getpid(), url)
        # A one-time code, not the admin token: the printed link may land in logs and history.
        announce(url, login_link(url, app.state.context.accounts.create_login_code()))
        sys.stdout.flush()
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            server.run(sockets=[sock])
        finally:
            replayer.stop()
    finally:
        datadir.remove_server_file(os.getpid())
        if sock is not None:
            sock.close()
        store.close()
