"""A store URL carries a password: no message ever shows it, and a URL that reaches something
other than ClickHouse's HTTP interface is a clear error, never a traceback.

Found by the new-user trial of 2026-12-02: a mistyped scheme echoed the whole URL (password
included) into the terminal and the journal; a web server on the store's port (answering 200
with HTML) ended `footfall report` in a JSONDecodeError traceback.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from footfall.server.stores.clickhouse import ClickHouseStore
from tests.clickhouse import ClickHouseServer, start
from tests.conftest import GOLDEN_APP, footfall_command

PASSWORD = "s3cret-Pw-42"


def footfall(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(footfall_command(*args), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "url",
    [
        f"clickhous://footfall:{PASSWORD}@127.0.0.1:8123/footfall",  # a typo in the scheme
        f"clickhouse://footfall:{PASSWORD}@127.0.0.1:99999/footfall",  # a port out of range
        f"clickhouse://footfall:{PASSWORD}@127.0.0.1:8123/footfall?cluster",  # options without =
        f"clickhouse://footfall:a//{PASSWORD}@127.0.0.1:99999/footfall",  # '//' inside the password
    ],
)
def test_a_malformed_store_url_is_refused_without_its_password(tmp_path: Path, url: str) -> None:
    for answer in (
        footfall("report", "mytool", "--store", url, "--data", str(tmp_path)),
        footfall("migrate", "--from", str(tmp_path), "--to", url),
    ):
        assert answer.returncode == 2, answer.stderr
        assert PASSWORD not in answer.stderr + answer.stdout and "footfall:***@" in answer.stderr, answer.stderr
        assert "Traceback" not in answer.stderr


class NotClickHouse(http.server.BaseHTTPRequestHandler):
    """Some other web server on the port the store URL names."""

    status = 200

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(self.status)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=[200, 404])
def other_server(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (NotClickHouse,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"clickhouse://127.0.0.1:{server.server_address[1]}/footfall"
    finally:
        server.shutdown()
        server.server_close()


def test_a_store_url_that_reaches_another_web_server_is_a_clear_error(tmp_path: Path, other_server: str) -> None:
    answer = footfall("report", "mytool", "--store", other_server, "--data", str(tmp_path))
    assert answer.returncode == 1, answer.stderr
    assert "not as ClickHouse's HTTP interface does" in answer.stderr and "Traceback" not in answer.stderr


def test_a_missing_database_names_the_statement_that_makes_it(
    tmp_path: Path, clickhouse_server: ClickHouseServer
) -> None:
    url = f"clickhouse://127.0.0.1:{clickhouse_server.http_port}/no_such_db"
    answer = footfall("report", "mytool", "--store", url, "--data", str(tmp_path))
    assert answer.returncode == 1, answer.stderr
    assert 'CREATE DATABASE no_such_db"' in answer.stderr and "Traceback" not in answer.stderr


def test_a_dashboard_page_while_clickhouse_is_down_is_a_page_without_the_store_address(
    tmp_path: Path, app_server_factory: Any
) -> None:
    """Before: the browser got raw JSON naming the store's host and port. The detail goes to the
    server's log; the API answers the same code with the same plain message."""
    server_folder = tmp_path / "clickhouse"
    server_folder.mkdir()
    clickhouse = start(server_folder)
    url = clickhouse.database()
    store = ClickHouseStore(url)
    server = app_server_factory(store=store)
    port = str(clickhouse.http_port)
    clickhouse.stop()
    token = {"Authorization": f"Bearer {server.token}"}
    page = httpx.get(f"{server.url}/apps/{GOLDEN_APP}", headers={**token, "Accept": "text/html"}, timeout=60)
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html"), page.text
    assert "not answering" in page.text and port not in page.text
    api = httpx.get(f"{server.url}/api/v1/apps/{GOLDEN_APP}/reports/overview", headers=token, timeout=60)
    assert api.status_code == 503 and api.json()["error"]["code"] == "store_unavailable"
    assert port not in api.text


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://footfall:{PASSWORD}@127.0.0.1:1/accounts",  # nothing listens
        f"postgresql://footfall:{PASSWORD}@[::1/accounts",  # libpq quotes the malformed URI
        "postgresql://footfall:s3cret%zzPw@127.0.0.1:1/accounts",  # libpq quotes the bad token
    ],
)
def test_an_accounts_url_never_shows_its_password(tmp_path: Path, url: str) -> None:
    answer = footfall("user", "list", "--accounts", url, "--data", str(tmp_path))
    assert answer.returncode != 0 and "accounts database" in answer.stderr, answer.stderr
    assert PASSWORD not in answer.stderr and "s3cret" not in answer.stderr, answer.stderr
    assert "Traceback" not in answer.stderr
