"""Starting Debian's `clickhouse-server` on loopback, without pytest: the part of the test fixture
(tests/clickhouse.py) that the store benchmark (benchmarks/bench_stores.py) shares.

Every path the server uses is in the config written here (a temporary folder): it never reads
/etc/clickhouse-server or writes /var.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

BINARIES = ("/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse")
STARTUP_TIMEOUT_S = 60.0  # measured: about 0.2 s on this machine; generous for a loaded CI runner
STOP_TIMEOUT_S = 30.0

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{folder}/server.log</log>
    <errorlog>{folder}/server.err.log</errorlog>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{folder}/data/</path>
  <tmp_path>{folder}/tmp/</tmp_path>
  <user_files_path>{folder}/user_files/</user_files_path>
  <format_schema_path>{folder}/format_schemas/</format_schema_path>
  <users_config>{folder}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
{extra}
</yandex>
"""
USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def binary() -> list[str] | None:
    """The command that runs the server, or None when ClickHouse is not installed."""
    for path in BINARIES:
        if os.access(path, os.X_OK):
            return [path] if path.endswith("-server") else [path, "server"]
    found = shutil.which("clickhouse-server")
    return [found] if found else None


def write_config(folder: Path, extra: str = "", tcp_port: int | None = None) -> tuple[int, int]:
    """The config and users files of a server in `folder`, on free ports: (HTTP port, TCP port).
    `extra` is more config (a cluster's remote_servers, macros, zookeeper), `tcp_port` the native
    port when that config already names it."""
    folder.mkdir(parents=True, exist_ok=True)
    http_port, tcp_port = free_port(), tcp_port or free_port()
    (folder / "config.xml").write_text(
        CONFIG.format(folder=folder, http_port=http_port, tcp_port=tcp_port, extra=extra)
    )
    (folder / "users.xml").write_text(USERS)
    return http_port, tcp_port


def launch(command: list[str], folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*command, f"--config-file={folder / 'config.xml'}"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(process: subprocess.Popen[bytes], folder: Path, http_port: int) -> float:
    """Seconds until the server answered /ping; RuntimeError (with its log) when it exits or hangs."""
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if process.poll() is not None:
            errors = folder / "server.err.log"
            log = errors.read_text(errors="replace") if errors.exists() else ""
            raise RuntimeError(f"clickhouse-server exited with {process.returncode}:\n{log[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ping", timeout=1) as answer:
                if answer.read() == b"Ok.\n":
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"clickhouse-server did not answer within {STARTUP_TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
