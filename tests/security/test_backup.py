"""Red-team regressions for online backups (issue 12): `POST /api/v1/backup` makes the server write
its secrets, password hashes and every event to a path on its machine. Only the local admin token
may ask (whoever can read DIR/secrets.json can copy the folder anyway): not an instance admin's API
token, not the local admin's dashboard session, and never over an existing path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, footfall_command


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(footfall_command(*args), capture_output=True, text=True, timeout=120, input=stdin)


def post_backup(url: str, token: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/api/v1/backup",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_only_the_local_admin_token_may_back_up(live_server: LiveServer, tmp_path: Path) -> None:
    data = str(live_server.data)
    added = run(
        "user",
        "add",
        "root@example.org",
        "--role",
        "admin",
        "--password-stdin",
        "--data",
        data,
        stdin="a long password\n",
    )
    assert added.returncode == 0, added.stderr
    api_token = run("token", "create", "root@example.org", "--data", data).stdout.splitlines()[-1]
    target = tmp_path / "stolen"

    status, body = post_backup(live_server.url, api_token, {"destination": str(target)})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = post_backup(live_server.url, "not-a-token", {"destination": str(target)})
    assert status == 401
    with httpx.Client() as browser:  # the local admin, logged in to the dashboard by a one-time link
        link = run("admin", "login-link", "--data", data).stdout.splitlines()[-1]
        assert browser.get(link).status_code == 303
        page = browser.get(live_server.url + "/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        answer = browser.post(
            live_server.url + "/api/v1/backup", json={"destination": str(target)}, headers={"X-CSRF-Token": csrf}
        )
        assert answer.status_code == 403, answer.text
    assert not target.exists(), "no one but the holder of the local admin token makes the server write its secrets"


def test_a_backup_never_writes_over_anything(live_server: LiveServer, tmp_path: Path) -> None:
    token = live_server.token
    status, body = post_backup(live_server.url, token, {"destination": "relative/path"})
    assert status == 400 and "absolute" in body["error"]["message"]
    status, body = post_backup(live_server.url, token, {"destination": str(tmp_path / "no" / "such" / "parent")})
    assert status == 400
    status, body = post_backup(live_server.url, token, {"nothing": 1})
    assert status == 400 and body["error"]["code"] == "invalid_request"
    status, body = post_backup(live_server.url, token, {"destination": str(tmp_path) + "/x\x00y"})
    assert status == 400

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("an operator's file")
    link = tmp_path / "link"
    link.symlink_to(existing)
    for taken in (existing, link, existing / "keep.txt"):
        status, body = post_backup(live_server.url, token, {"destination": str(taken)})
        assert status == 400 and "already exists" in body["error"]["message"], taken
    assert os.listdir(existing) == ["keep.txt"] and (existing / "keep.txt").read_text() == "an operator's file"

    target = tmp_path / "backup"
    status, body = post_backup(live_server.url, token, {"destination": str(target)})
    assert status == 201 and body["destination"] == str(target)
    assert (target.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o077) == 0 for p in target.rglob("*"))
    audit = [json.loads(line) for line in run("audit", "--json", "--data", str(live_server.data)).stdout.splitlines()]
    assert any(entry["action"] == "backup" and entry["detail"] == str(target) for entry in audit)


def test_a_backup_inside_the_data_directory_is_refused(tmp_path: Path) -> None:
    """Review: a destination under the data directory copied itself level after level (a
    RecursionError, hundreds of store copies left behind, loads held all along)."""
    from footfall.server.backups import write_backup
    from footfall.server.errors import UsageError
    from footfall.server.stores.duckdb import DuckDBStore

    data = tmp_path / "data"
    (data / "log").mkdir(parents=True)
    store = DuckDBStore(data / "footfall.duckdb")
    try:
        for inside in (data / "log" / "bk", data / "bk"):
            with pytest.raises(UsageError, match="outside the data directory"):
                write_backup(store, data, inside)
            assert not inside.exists()
        with pytest.raises(UsageError, match="outside the data directory"):
            write_backup(store, data, tmp_path)  # nor a copy that would hold the data directory itself
    finally:
        store.close()
