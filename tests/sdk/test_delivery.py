"""Transport, retries, the spool, and the bounded exit, against real loopback servers."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from footfall.batch import format_time
from footfall.spool import MAX_FILES, Spool
from footfall.transport import HttpTransport, parse_retry_after
from tests.conftest import run_host, sdk_env, seed_notice_shown

BATCH = {
    "app": "t",
    "context": {},
    "dropped": 0,
    "events": [{"name": "a", "time": "x", "props": {}}],
}


@pytest.mark.parametrize(
    ("mode", "delivered", "retryable"),
    [
        ("ok", True, False),
        ("error", False, True),
        ([503], False, True),
        ([429], False, True),
        ([408], False, True),
        ([400], False, False),
        ([422], False, False),
        ("garbage", False, True),
    ],
)
def test_http_transport_outcomes(collector_stub: Any, mode: Any, delivered: bool, retryable: bool) -> None:
    result = HttpTransport(collector_stub(mode).url).send(BATCH)
    assert (result.delivered, result.retryable) == (delivered, retryable)


def test_http_transport_sends_gzip_json_to_v1_batch(collector_stub: Any) -> None:
    stub = collector_stub()
    assert HttpTransport(stub.url).send(BATCH).delivered
    path, _, headers = stub.requests[0]
    assert path == "/v1/batch" and headers["Content-Encoding"] == "gzip"
    assert stub.events == BATCH["events"]


def test_refused_and_hanging_collectors_fail_fast(collector_stub: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = HttpTransport(f"http://127.0.0.1:{port}").send(BATCH)
    assert refused.retryable and not refused.delivered
    started = time.monotonic()
    hung = HttpTransport(collector_stub("hang").url, timeout=0.5).send(BATCH)
    assert hung.retryable and time.monotonic() - started < 2.0


def test_https_verifies_certificates(collector_stub: Any) -> None:
    stub = collector_stub()  # speaks plain HTTP: a TLS handshake with it fails cleanly
    result = HttpTransport(stub.url.replace("http://", "https://"), timeout=2).send(BATCH)
    assert not result.delivered and result.retryable


def test_retry_after_is_parsed_and_capped() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("100000") == 60.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def test_time_format_is_iso_utc_with_milliseconds() -> None:
    assert format_time(0.5) == "1970-01-01T00:00:00.500Z"
    assert format_time(1764325502.12) == "2025-11-28T10:25:02.120Z"


def host_script(url: str, events: int, flush: bool = False) -> str:
    return textwrap.dedent(f"""
        import footfall
        c = footfall.init(app="spool-tool", endpoint={url!r})
        for i in range({events}):
            c.track("command", command="build")
        {"print('delivered' if c.flush(10) else 'undelivered')" if flush else ""}
    """)


def test_retries_honour_retry_after_then_deliver(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub([503, 429], retry_after="0.3")
    seed_notice_shown(tmp_path, "spool-tool")
    started = time.monotonic()
    result, _ = run_host(host_script(stub.url, 1, flush=True), sdk_env(tmp_path))
    assert result.stdout == "delivered\n", result.stderr
    assert len(stub.requests) == 3, "two refusals, then the batch is taken"
    assert time.monotonic() - started >= 0.6


def test_a_final_rejection_is_not_retried_or_spooled(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub([400])
    seed_notice_shown(tmp_path, "spool-tool")
    result, _ = run_host(host_script(stub.url, 1, flush=True), sdk_env(tmp_path))
    assert result.stdout == "undelivered\n"
    assert len(stub.requests) == 1
    assert not (tmp_path / "footfall" / "spool-tool.spool").exists()


@pytest.mark.parametrize("mode", ["hang", "refused", "error"])
def test_what_exit_cannot_deliver_is_spooled_and_sent_by_a_later_run(
    tmp_path: Path, collector_stub: Any, mode: str
) -> None:
    seed_notice_shown(tmp_path, "spool-tool")
    if mode == "refused":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    else:
        url = collector_stub(mode).url
    result, elapsed = run_host(host_script(url, 300), sdk_env(tmp_path))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert elapsed < 3.0, f"exit took {elapsed:.2f}s"
    spool = Spool(str(tmp_path / "footfall" / "spool-tool.spool"))
    assert len(spool) >= 1

    good = collector_stub()
    later, _ = run_host(host_script(good.url, 1, flush=True), sdk_env(tmp_path))
    assert later.stdout == "delivered\n"
    assert len(good.events) == 301, "every event tracked by the first run arrives with the second"
    assert len(spool) == 0


def test_spool_caps_files_and_claims(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s"))
    for index in range(MAX_FILES + 20):
        assert spool.save({"n": index})
    assert len(spool) == MAX_FILES
    seen: list[int] = []
    assert spool.replay(lambda batch: seen.append(batch["n"]) is None) == MAX_FILES
    assert seen == list(range(20, MAX_FILES + 20)), "oldest first, the oldest 20 evicted"


def test_spool_replay_stops_at_the_first_failure_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s"))
    for index in range(3):
        spool.save({"n": index})
    assert spool.replay(lambda batch: batch["n"] < 1) == 1
    assert len(spool) == 2
    names = sorted(os.listdir(tmp_path / "s"))
    assert all(".claimed-" not in name for name in names), "a failed claim is put back"


def test_spool_drops_old_batches(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s"))
    spool.save({"n": 1})
    (old,) = os.listdir(tmp_path / "s")
    eight_days = time.time() - 8 * 24 * 3600
    os.utime(tmp_path / "s" / old, (eight_days, eight_days))
    assert spool.replay(lambda batch: True) == 0
    assert len(spool) == 0


def test_spool_never_raises_on_a_bad_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    spool = Spool(str(blocker / "spool"))
    assert spool.save({"n": 1}) is False
    assert spool.replay(lambda batch: True) == 0
    assert len(spool) == 0


def test_a_second_process_does_not_send_a_claimed_batch(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s"))
    spool.save({"n": 1})
    (name,) = os.listdir(tmp_path / "s")
    os.rename(tmp_path / "s" / name, tmp_path / "s" / f"{name}.claimed-999999")
    assert spool.replay(lambda batch: True) == 0
    assert json.loads((tmp_path / "s" / f"{name}.claimed-999999").read_text()) == {"n": 1}


def test_https_refuses_a_certificate_it_cannot_verify(tmp_path: Path) -> None:
    """A real TLS server with a self-signed certificate: the SDK must not deliver to it."""
    import http.server
    import ssl
    import subprocess
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.path)
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = HttpTransport(f"https://127.0.0.1:{server.server_address[1]}", timeout=5).send(BATCH)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.delivered and result.retryable
    assert received == [], "nothing may be sent over a connection that was not verified"
