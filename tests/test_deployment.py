"""Deployment: online backup and restore for real, and every file docs/deployment.md ships checked."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from footfall.server.query.reports import REPORTS
from tests.conftest import REPO, LiveServer, footfall_command, load_golden, start_server, wait_until, with_fresh_times

BACKED_UP_APP = "golden-tool"  # its events are all acknowledged before the backup starts
BUSY_APP = "busy-tool"  # its events keep arriving while the backup runs


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(footfall_command(*args), capture_output=True, text=True, timeout=120, input=stdin)


def post_batch(url: str, batch: Any) -> int:
    request = urllib.request.Request(
        url + "/v1/batch", data=json.dumps(batch).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def batch_of(app: str, index: int) -> Any:
    """A golden batch from one of a few installs, each run its own session, with varied commands."""
    batch = with_fresh_times(copy.deepcopy(load_golden("batch-command.json")))
    batch["app"] = app
    batch["context"]["install"] = uuid.UUID(int=index % 7 + 1).hex
    batch["context"]["session"] = uuid.UUID(int=1000 + index).hex
    batch["context"]["app_version"] = f"1.{index % 3}.0"
    batch["events"][1]["props"]["command"] = ("build", "test", "lint")[index % 3]
    batch["events"][1]["props"]["outcome"] = "ok" if index % 4 else "error"
    return batch


def api(url: str, token: str, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def every_report(url: str, token: str, app: str) -> dict[str, tuple[int, Any]]:
    today = dt.datetime.now(dt.timezone.utc).date()
    span = f"start={(today - dt.timedelta(days=30)).isoformat()}&end={(today + dt.timedelta(days=1)).isoformat()}"
    return {name: api(url, token, f"/api/v1/apps/{app}/reports/{name}?{span}") for name in REPORTS}


def test_backup_while_serving_then_restore_gives_every_report_back(live_server: LiveServer, tmp_path: Path) -> None:
    data = str(live_server.data)
    for app in (BACKED_UP_APP, BUSY_APP):
        assert run("app", "add", app, "--data", data).returncode == 0
    added = run(
        "user",
        "add",
        "ann@example.org",
        "--role",
        "admin",
        "--password-stdin",
        "--data",
        data,
        stdin="a long password\n",
    )
    assert added.returncode == 0, added.stderr
    api_token = run("token", "create", "ann@example.org", "--data", data).stdout.splitlines()[-1]
    for index in range(40):
        assert post_batch(live_server.url, batch_of(BACKED_UP_APP, index)) == 202
    before = every_report(live_server.url, live_server.token, BACKED_UP_APP)
    assert before["overview"][0] == 200 and before["overview"][1]["rows"], before["overview"]
    assert all(status == 200 for status, _ in before.values()), {k: v for k, v in before.items() if v[0] != 200}

    # Another app's events keep arriving while the backup runs, acknowledged one batch at a time.
    acknowledged: list[float] = []
    stop = threading.Event()

    def keep_sending() -> None:
        index = 0
        while not stop.is_set():
            if post_batch(live_server.url, batch_of(BUSY_APP, index)) == 202:
                acknowledged.append(dt.datetime.now().timestamp())
            index += 1

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        while len(acknowledged) < 5:  # the sender is under way before the backup starts
            stop.wait(0.05)
        backup_started = dt.datetime.now().timestamp()
        backed_up = run("backup", str(tmp_path / "backup"), "--data", data)
        backup_done = dt.datetime.now().timestamp()
        stop.wait(0.3)
    finally:
        stop.set()
        sender.join(60)
    assert backed_up.returncode == 0, backed_up.stderr
    assert live_server.process.poll() is None, "the server kept serving"
    backup = tmp_path / "backup"
    assert sorted(p.name for p in backup.iterdir()) >= ["accounts.sqlite", "footfall-backup.json", "footfall.duckdb"]
    assert (backup.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o077) == 0 for p in backup.rglob("*")), "the backup holds secrets: private"
    assert json.loads((backup / "footfall-backup.json").read_text())["format"] == 1

    restored_data = tmp_path / "restored"
    restored = run("restore", str(backup), "--data", str(restored_data))
    assert restored.returncode == 0, restored.stderr
    second = start_server(restored_data, tmp_path / "restored.log")
    try:
        after = every_report(second.url, second.token, BACKED_UP_APP)
        busy = api(second.url, second.token, f"/api/v1/apps/{BUSY_APP}/summary?days=2")
        still_admin = api(second.url, api_token, "/api/v1/apps")  # the accounts came back too
    finally:
        second.stop()
    assert second.token == live_server.token, "the secrets came back: same admin token, same install hashes"
    assert after == before, [name for name in REPORTS if after[name] != before[name]]
    assert still_admin[0] == 200 and {a["name"] for a in still_admin[1]["apps"]} == {BACKED_UP_APP, BUSY_APP}
    # Events acknowledged before the backup began are in it; those acknowledged during it may be.
    busy_events = busy[1]["events"]
    before_backup = sum(1 for t in acknowledged if t < backup_started)
    assert before_backup * 2 <= busy_events <= len(acknowledged) * 2, (before_backup, busy_events, len(acknowledged))
    assert backup_done > backup_started


def test_backup_and_restore_without_a_server_and_their_refusals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("app", "add", "offline-tool", "--data", str(data)).returncode == 0
    server = start_server(data, tmp_path / "first.log")
    try:
        for index in range(5):
            assert post_batch(server.url, batch_of("offline-tool", index)) == 202
        before = every_report(server.url, server.token, "offline-tool")
    finally:
        server.stop()

    nothing = run("backup", str(tmp_path / "none"), "--data", str(tmp_path / "empty"))
    assert nothing.returncode == 2 and "no Footfall data" in nothing.stderr
    made = run("backup", str(tmp_path / "copy"), "--data", str(data))
    assert made.returncode == 0, made.stderr
    again = run("backup", str(tmp_path / "copy"), "--data", str(data))
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("an operator's file")
    refused = run("restore", str(tmp_path / "copy"), "--data", str(occupied))
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "footfall.duckdb").write_bytes(b"")
    refused = run("restore", str(unfinished), "--data", str(tmp_path / "fresh"))
    assert refused.returncode == 2 and "not a finished Footfall backup" in refused.stderr

    empty_target = tmp_path / "mounted"
    empty_target.mkdir()  # an empty folder, such as a fresh volume, is fine
    assert run("restore", str(tmp_path / "copy"), "--data", str(empty_target)).returncode == 0
    server = start_server(empty_target, tmp_path / "second.log")
    try:
        assert every_report(server.url, server.token, "offline-tool") == before
    finally:
        server.stop()


# -- the files docs/deployment.md ships -----------------------------------------------------------
#
# Each check runs on the shipped file and on a copy broken on purpose: a check that cannot fail is
# no check. A missing tool skips here and fails under CI=true (`make system-deps` installs nginx and
# Caddy; hadolint and check-jsonschema come with the test extra).

DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=f"{VENV_BIN}:/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed (make system-deps, or the test extra)")
        pytest.skip(f"{name} is not installed")
    return found


def checked(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def check_unit(text: str, work: Path) -> None:
    """`systemd-analyze verify` with no complaint about the unit, and an exposure level of at most 2.0 (`--threshold` counts tenths)."""
    # verify needs ExecStart's program to exist: the venv's own `footfall` stands in for /opt/footfall's.
    program = VENV_BIN / "footfall"
    assert program.exists() and "ExecStart=/opt/footfall/bin/footfall " in text
    unit = work / "footfall.service"
    unit.write_text(text.replace("/opt/footfall/bin/footfall", str(program)))
    analyze = tool("systemd-analyze")
    verified = checked([analyze, "verify", str(unit)])
    complaints = [line for line in (verified.stdout + verified.stderr).splitlines() if unit.name in line]
    assert verified.returncode == 0 and not complaints, verified.stdout + verified.stderr
    exposure = checked([analyze, "security", "--offline=true", "--threshold=20", str(unit)])
    assert exposure.returncode == 0, exposure.stdout[-400:]
    for promised in ("User=footfall", "StateDirectory=footfall", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert f"\n{promised}\n" in text, promised


def check_compose(text: str, work: Path) -> None:
    """The Compose specification's JSON schema (vendored in check-jsonschema), and what the doc promises."""
    import yaml

    compose = work / "compose.yaml"
    compose.write_text(text)
    schema = checked([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)])
    assert schema.returncode == 0, schema.stdout + schema.stderr
    service = yaml.safe_load(text)["services"]["footfall"]
    assert "footfall-data:/data" in service["volumes"]
    assert "ports" not in service, "only the proxy is published"
    assert not service.get("privileged") and "user" not in service, "the image's own unprivileged uid"


def check_dockerfile(text: str, work: Path) -> None:
    """hadolint, at its strictest default (any rule, info included, fails), and a non-root user."""
    dockerfile = work / "Dockerfile"
    dockerfile.write_text(text)
    linted = checked([tool("hadolint"), "--no-color", str(dockerfile)])
    assert linted.returncode == 0, linted.stdout + linted.stderr
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users


def check_caddyfile(text: str, work: Path) -> None:
    """`caddy adapt` parses it; the adapted JSON proxies the public name to footfall serve."""
    caddyfile = work / "Caddyfile"
    caddyfile.write_text(text)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "XDG_DATA_HOME": str(work)}
    adapted = checked([tool("caddy"), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"], env=env)
    assert adapted.returncode == 0, adapted.stderr
    (server,) = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    (route,) = server["routes"]
    assert route["match"] == [{"host": ["footfall.example.org"]}]
    handlers = json.dumps(route["handle"])
    assert '"handler": "reverse_proxy"' in handlers and '"dial": "127.0.0.1:8000"' in handlers
    assert "logs" not in server, "no access log: Footfall keeps no client addresses"
    assert '"path": ["/metrics"]' in handlers and '"status_code": 404' in handlers, "/metrics stays internal"


def check_nginx(text: str, work: Path) -> None:
    """`nginx -t` on the snippet inside a minimal nginx.conf, with a throwaway certificate in place of
    certbot's; and the headers the doc promises."""
    key, cert = work / "key.pem", work / "cert.pem"
    made = checked(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=footfall.example.org", "-keyout", str(key), "-out", str(cert)),
        ]
    )
    assert made.returncode == 0, made.stderr
    letsencrypt = "/etc/letsencrypt/live/footfall.example.org/"
    snippet = work / "footfall.conf"
    snippet.write_text(
        text.replace(letsencrypt + "fullchain.pem", str(cert)).replace(letsencrypt + "privkey.pem", str(key))
    )
    main = work / "nginx.conf"
    main.write_text(f"pid {work}/nginx.pid;\nevents {{}}\nhttp {{\n    include {snippet};\n}}\n")
    tested = checked([tool("nginx"), "-t", "-q", "-e", "stderr", "-p", str(work), "-c", str(main)])
    assert tested.returncode == 0, tested.stderr
    for promised in (
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "access_log off;",
        "proxy_pass http://footfall;",
    ):
        assert promised in text, promised


SHIPPED = {
    "unit": (DEPLOY / "footfall.service", check_unit, ("ProtectSystem=strict", "ProtectSytem=strict")),
    "compose": (REPO / "compose.yaml", check_compose, ("    expose:", "    exposes:")),
    "Dockerfile": (REPO / "Dockerfile", check_dockerfile, ("FROM python:3.12-slim\n", "FROM python:latest\n")),
    "docker-locust Dockerfile": (
        REPO / "examples" / "docker-locust" / "Dockerfile",
        check_dockerfile,
        ("USER 10001:10001", "USER root"),
    ),
    "Caddyfile": (DEPLOY / "Caddyfile", check_caddyfile, ("reverse_proxy {", "reverse_prox {")),
    "nginx": (DEPLOY / "nginx.conf", check_nginx, ("proxy_pass http://footfall;", "proxy_pas http://footfall;")),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_file_passes_its_check(name: str, tmp_path: Path) -> None:
    path, check, _ = SHIPPED[name]
    check(path.read_text(encoding="utf-8"), tmp_path)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_check_fails_on_a_broken_file(name: str, tmp_path: Path) -> None:
    path, check, (good, bad) = SHIPPED[name]
    text = path.read_text(encoding="utf-8")
    assert good in text
    with pytest.raises(AssertionError):
        check(text.replace(good, bad, 1), tmp_path)


def test_the_deployment_guide_names_real_settings_and_every_shipped_file() -> None:
    from footfall.server.settings import SETTINGS

    guide = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    known = {s.env for s in SETTINGS} | {s.flag for s in SETTINGS} | {"FOOTFALL_DATA"}
    # Read by the Caddyfile and compose.yaml, and by the docker-locust launcher, not by the server.
    proxy_only = {"FOOTFALL_DOMAIN", "FOOTFALL_UPSTREAM", "FOOTFALL_ENDPOINT"}
    texts = [guide, *(path.read_text(encoding="utf-8") for path, _, _ in SHIPPED.values())]
    named = {m for text in texts for m in re.findall(r"FOOTFALL_[A-Z_]+[A-Z]", text)}
    assert named - known - proxy_only == set(), "a setting that does not exist"
    flags = set(re.findall(r"(?<![\w-])--(?:[a-z]+-)*[a-z]+", guide))
    serve_flags = {s.flag for s in SETTINGS}
    assert {"--trusted-proxies", "--public-url"} <= flags
    assert not {f for f in flags if f.startswith(("--public-", "--trusted-", "--max-")) and f not in serve_flags}
    for path, _, _ in SHIPPED.values():
        assert str(path.relative_to(REPO)) in guide, f"docs/deployment.md does not mention {path.relative_to(REPO)}"


def test_a_unit_without_its_hardening_fails_the_exposure_check(tmp_path: Path) -> None:
    text = (DEPLOY / "footfall.service").read_text(encoding="utf-8")
    start, end = text.index("# Hardening"), text.index("[Install]")
    weak = text[:start] + "NoNewPrivileges=yes\nProtectSystem=strict\n\n" + text[end:]
    with pytest.raises(AssertionError, match="exposure level"):
        check_unit(weak, tmp_path)


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_backup_and_restore_have_help(command: str) -> None:
    helped = run(command, "--help")
    assert helped.returncode == 0 and helped.stdout.startswith(f"usage: footfall {command}")
    assert "--data" in helped.stdout
    missing = run(command)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_restoring_a_backup_from_an_older_version_migrates_it_and_keeps_its_events(tmp_path: Path) -> None:
    import duckdb

    from footfall.server.stores.duckdb import MIGRATIONS

    old = tmp_path / "old-backup"
    old.mkdir()
    con = duckdb.connect(str(old / "footfall.duckdb"))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
    for version, statements in MIGRATIONS[:4]:  # a store from before the app time zones (migration 5)
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_migrations VALUES (?)", [version])
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    con.execute("INSERT INTO apps VALUES ('old-tool', ?)", [now])
    row = [now, now, "old-tool", "0.9", "start", "ab" * 32, "cd" * 32, "linux", "6", "x86_64", "cpython", "3.11"]
    con.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', 'DE', '{}', 'native', ?, ?, true)",
        [*row, int("ab" * 8, 16), int("cd" * 8, 16)],
    )
    con.close()
    (old / "secrets.json").write_text(json.dumps({"install_key": "00" * 32, "admin_token": "old-token"}))
    (old / "footfall-backup.json").write_text(json.dumps({"format": 1, "footfall_version": "0.0.9"}))

    data = tmp_path / "data"
    restored = run("restore", str(old), "--data", str(data))
    assert restored.returncode == 0, restored.stderr
    versions = duckdb.connect(str(data / "footfall.duckdb"), read_only=True)
    try:
        assert [v for (v,) in versions.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()] == [
            v for v, _ in MIGRATIONS
        ]
    finally:
        versions.close()
    server = start_server(data, tmp_path / "server.log")
    try:
        status, apps = api(server.url, "old-token", "/api/v1/apps")
        status_summary, summary = api(server.url, "old-token", "/api/v1/apps/old-tool/summary?days=2")
    finally:
        server.stop()
    assert status == 200 and [(a["name"], a["timezone"]) for a in apps["apps"]] == [("old-tool", "UTC")]
    assert status_summary == 200 and summary["events"] == 1, summary


def test_events_waiting_in_the_log_are_backed_up_and_stored_after_the_restore(tmp_path: Path) -> None:
    from footfall.server.ingest.segments import encode
    from footfall.server.stores.base import EventRecord

    data = tmp_path / "data"
    assert run("app", "add", "spooled-tool", "--data", str(data)).returncode == 0
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    record = EventRecord(
        now, now, "spooled-tool", "1.0", "start", "ab" * 32, "cd" * 32, "linux", "6", "x86_64", "cpython", "3.12",
        "", "", "DE", "{}", "native",
    )  # fmt: skip
    # Acknowledged into the log while the store was down, and the server stopped before a load.
    (data / "log" / "00000000000000000001-00-0000test.seg").write_bytes(encode(record) * 2)
    made = run("backup", str(tmp_path / "copy"), "--data", str(data))
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "copy" / "footfall-backup.json").read_text())["files"]["log"] == 1
    assert run("restore", str(tmp_path / "copy"), "--data", str(tmp_path / "restored")).returncode == 0
    server = start_server(tmp_path / "restored", tmp_path / "server.log")
    try:
        wait_until(
            lambda: api(server.url, server.token, "/api/v1/apps/spooled-tool/summary?days=2")[1]["events"] == 2,
            30,
            "the restored log to be loaded",
        )
    finally:
        server.stop()
