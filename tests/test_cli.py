"""The `footfall` command: help everywhere, clean errors, and the data while serving."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from footfall.server.operator.cli import build_parser, main
from footfall.server.operator.terminal import sparkline
from tests.conftest import LiveServer, footfall_command, start_server

COMMANDS = [
    ["serve"],
    ["app"],
    ["app", "add"],
    ["app", "list"],
    ["app", "remove"],
    ["report"],
    ["demo"],
    ["user", "list"],
    ["user", "remove"],
    ["user", "passwd"],
    ["user", "remove-role"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    ["admin", "rotate"],
    ["admin", "login-link"],
    ["audit"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: footfall " + " ".join(command))
    if command[-1] not in ("app",):
        assert "--data" in out or command == ["app"]


def test_disclose_has_help_and_clean_errors(tmp_path: Path) -> None:
    helped = run("disclose", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: footfall disclose")
    assert "disclose" in run("--help").stdout
    missing = run("disclose", f"{tmp_path}/nothing.py:OPTIONS")
    assert missing.returncode == 1 and missing.stderr.startswith("footfall: error:")
    assert "Traceback" not in missing.stderr


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(footfall_command(*args), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report"], "the following arguments are required: name"),
        (["report", "ghost"], "no app named 'ghost'"),
        (["report", "ghost", "--days", "zero"], "invalid int value"),
        (["app", "add", "Has Spaces"], "is not a valid app id"),
        (["frobnicate"], "invalid choice"),
        (["demo", "--scale", "-1"], "--scale above 0"),
        (["report", "ghost", "--bogus"], "unrecognized arguments: --bogus\n(see `footfall report --help`)"),
        (["expire", "--older-than", "99999999999"], "at most 36,500 days"),
        (["serve", "--retention-days", "99999999999"], "at most 36,500 days"),
        (["migrate"], "footfall migrate needs --to"),
    ],
)
def test_bad_input_is_one_clean_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, "--data", str(tmp_path / "d")) if args[0] != "frobnicate" else run(*args)
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_app_add_list_and_report_without_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "d")
    assert main(["app", "add", "tool", "--data", data]) == 0
    assert main(["app", "add", "tool", "--data", data]) == 0
    assert main(["app", "list", "--format", "json", "--data", data]) == 0
    assert main(["report", "tool", "--format", "json", "--days", "7", "--data", data]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["App tool registered.", "App tool is already registered."]
    assert [a["name"] for a in json.loads(lines[2])["apps"]] == ["tool"]
    report = json.loads(lines[3])
    assert (report["events"], report["installs"], len(report["per_day"])) == (0, 0, 7)


def test_demo_loads_realistic_data_with_a_progress_bar(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    result = run("demo", "--data", data, "--scale", "0.05", "--days", "30")
    assert result.returncode == 0, result.stderr
    assert "Generating demo data" in result.stderr and "90/90" in result.stderr
    listed = json.loads(run("app", "list", "--format", "json", "--data", data).stdout)
    assert len(listed["apps"]) >= 3
    versions = set()
    for app in listed["apps"]:
        report = json.loads(run("report", app["name"], "--format", "json", "--data", data).stdout)
        assert report["events"] > 100 and report["installs"] > 10
        versions.add(app["name"])
    table = run("report", "mdlint", "--data", data)
    assert "events per day" in table.stdout and "command" in table.stdout


def test_app_and_report_work_while_the_server_runs(live_server: LiveServer) -> None:
    data = str(live_server.data)
    added = run("app", "add", "late-tool", "--data", data)
    assert added.returncode == 0, added.stderr
    assert "registered" in added.stdout
    listed = json.loads(run("app", "list", "--format", "json", "--data", data).stdout)
    assert [a["name"] for a in listed["apps"]] == ["late-tool"]
    report = run("report", "late-tool", "--format", "json", "--data", data)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["events"] == 0
    demo = run("demo", "--data", data)
    assert demo.returncode == 2 and "stop it before loading demo data" in demo.stderr


def test_a_stale_server_file_is_ignored(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "server.json").write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:9"}))
    result = run("app", "add", "tool", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert not (data / "server.json").exists()


def test_sparkline() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 5, 10]) == "▁▄█"


def test_app_keys_and_schema_from_the_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    added = run(
        "app",
        "add",
        "keyed",
        "--ga-tid",
        "UA-555-1",
        "--ga-tid",
        "UA-555-2",
        "--ga4-measurement-id",
        "G-KEYED123",
        "--ga4-api-secret",
        "secret-one",
        "--data",
        data,
    )
    assert added.returncode == 0, added.stderr
    (app,) = json.loads(run("app", "list", "--format", "json", "--data", data).stdout)["apps"]
    assert app["keys"] == [
        {"kind": "ga-tid", "key": "UA-555-1"},
        {"kind": "ga-tid", "key": "UA-555-2"},
        {"kind": "ga4", "key": "G-KEYED123"},
    ]
    assert "secret-one" not in run("app", "list", "--data", data).stdout
    example = Path(__file__).resolve().parents[1] / "examples" / "docker-locust" / "launcher.py"
    run("app", "add", "docker-locust", "--data", data)
    from_code = run("app", "schema", "docker-locust", "--from", f"{example}:ANALYTICS", "--data", data)
    assert from_code.returncode == 0, from_code.stderr
    assert "events launch" in from_code.stdout  # the launcher declares no `command` event (issue 8)
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"events": {"start": {"mode": {"type": "enum", "values": ["a"]}}}}))
    assert run("app", "schema", "keyed", "--file", str(schema_file), "--data", data).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["app", "add", "k", "--ga-tid", "G-NOTUA"], "is not a GA tracking id"),
        (
            ["app", "add", "k", "--ga4-measurement-id", "G-ABCDE1"],
            "give one --ga4-api-secret for each id",
        ),
        (
            ["app", "add", "k", "--ga4-measurement-id", "UA-1-1", "--ga4-api-secret", "12345678"],
            "is not a GA4 measurement id",
        ),
        (["app", "schema", "k"], "one of the arguments --file --from is required"),
        (
            ["app", "schema", "nobody", "--file", "/nonexistent.json"],
            "cannot read /nonexistent.json",
        ),
    ],
)
def test_app_key_and_schema_mistakes_are_clean(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, "--data", str(tmp_path / "d"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_keys_and_schemas_through_a_running_server(live_server: LiveServer, tmp_path: Path) -> None:
    data = str(live_server.data)
    assert run("app", "add", "remote", "--ga-tid", "UA-321-1", "--data", data).returncode == 0
    schema_file = tmp_path / "schema.json"
    schema_file.write_text('{"events": {"start": {}}}')
    assert run("app", "schema", "remote", "--file", str(schema_file), "--data", data).returncode == 0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = run("app", "schema", "remote", "--file", str(broken), "--data", data)
    assert result.returncode == 2 and "not valid JSON" in result.stderr
    (app,) = json.loads(run("app", "list", "--format", "json", "--data", data).stdout)["apps"]
    assert app["schema"] is True and app["keys"] == [{"kind": "ga-tid", "key": "UA-321-1"}]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    data = str(tmp_path_factory.mktemp("reports") / "d")
    assert run("demo", "--data", data, "--scale", "0.03", "--days", "30").returncode == 0
    return data


def test_every_named_report_in_every_format(demo_data: str) -> None:
    from footfall.server.query.reports import REPORTS

    combined = json.loads(run("report", "mdlint", "--report", "all", "--format", "json", "--data", demo_data).stdout)
    assert [r["report"] for r in combined["reports"]] == list(REPORTS)
    overview = json.loads(
        run("report", "mdlint", "--report", "overview", "--days", "7", "--format", "json", "--data", demo_data).stdout
    )
    assert overview["rows"][0]["measure"] == "events" and overview["rows"][0]["value"] > 0
    table = run("report", "mdlint", "--report", "timeseries", "--data", demo_data)
    assert table.returncode == 0 and "events per day" in table.stdout and "▁" not in table.stderr
    csv = run("report", "mdlint", "--report", "environments", "--ci", "exclude", "--format", "csv", "--data", demo_data)
    lines = csv.stdout.splitlines()
    assert lines[0] == "environment,installs,events" and not any(line.startswith("ci:") for line in lines)
    only_ci = run(
        "report", "mdlint", "--report", "environments", "--ci", "only", "--format", "csv", "--data", demo_data
    )
    assert all(line.startswith("ci:") for line in only_ci.stdout.splitlines()[1:])


def test_a_report_name_may_follow_the_options(demo_data: str) -> None:
    """As people type it: `footfall report mdlint --days 7 versions` (before: 'unrecognized arguments')."""
    after = run("report", "mdlint", "--data", demo_data, "--days", "7", "versions", "--format", "json")
    before = run("report", "mdlint", "versions", "--days", "7", "--format", "json", "--data", demo_data)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout) and json.loads(after.stdout)["report"] == "versions"
    wrong = run("report", "mdlint", "--data", demo_data, "versionz")
    assert wrong.returncode == 2 and "no report named 'versionz'" in wrong.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "nonsense"], "invalid choice"),
        (["--report", "all", "--format", "csv"], "CSV holds one report at a time"),
        (["--report", "overview", "--country", "Germany"], "two-letter code"),
        (["--report", "overview", "--start", "yesterday"], "must be a date"),
        (["--report", "overview", "--start", "2026-12-01", "--end", "2026-11-01"], "start must not be after end"),
    ],
)
def test_report_mistakes_are_clean(demo_data: str, args: list[str], message: str) -> None:
    result = run("report", "mdlint", *args, "--data", demo_data)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_users_tokens_and_roles(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert run("app", "add", "tool", "--data", data).returncode == 0
    add = subprocess.run(
        footfall_command(
            "user", "add", "ann@example.org", "--role", "viewer", "--app", "tool", "--password-stdin", "--data", data
        ),
        input="long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0 and "Added ann@example.org: viewer of tool." in add.stdout
    token = run("token", "create", "ann@example.org", "--data", data)
    assert token.returncode == 0 and token.stdout.splitlines()[-1].startswith("ff_")
    assert token.stdout.splitlines()[-1].encode() not in (tmp_path / "d" / "accounts.sqlite").read_bytes()
    for args, message in (
        (["user", "add", "ann@example.org", "--role", "viewer"], "with --app NAME"),
        (["user", "add", "ann@example.org", "--role", "admin", "--app", "tool"], "leave out --app"),
        (["user", "add", "not-an-email", "--role", "admin"], "is not an email address"),
        (["user", "add", "bob@example.org", "--role", "admin"], "use --password-stdin"),
        (["token", "create", "nobody@example.org"], "no account"),
        (["user", "add", "ann@example.org", "--role", "viewer", "--app", "nosuch"], "no app named 'nosuch'"),
        (["token", "create", "ann@example.org", "--expires-days", "0"], "1 to 3660 days"),
        (["token", "revoke", "000000000000"], "no token with the id"),
        (["user", "remove", "nobody@example.org"], "no account"),
        (["user", "remove-role", "ann@example.org", "--app", "other"], "has no role on 'other'"),
        (["audit", "--limit", "0"], "--limit must be"),
    ):
        result = run(*args, "--data", data)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    short = subprocess.run(
        footfall_command("user", "add", "bob@example.org", "--role", "admin", "--password-stdin", "--data", data),
        input="short\n",
        capture_output=True,
        text=True,
    )
    assert short.returncode == 2 and "at least 10 characters" in short.stderr


def test_publish_and_the_public_switch(demo_data: str, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = run("publish", "mdlint", "--out", str(out), "--data", demo_data)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "mdlint.json").read_text())
    assert [w["days"] for w in data["windows"]] == [30, 90, 365]
    assert data["privacy"]["epsilon"] == pytest.approx(1.0) and data["privacy"]["delta"] <= 1e-6
    for window in data["windows"]:
        for rows in window["items"].values():
            assert all(row["installs"] >= window["noise"]["threshold_installs"] for row in rows)
    assert "<html" in (out / "mdlint.html").read_text()
    stored = Path(demo_data) / "public" / "mdlint" / f"{data['release']}.json"
    assert json.loads(stored.read_text()) == data, "publish exports the stored snapshot"
    assert run("app", "public", "mdlint", "on", "--data", demo_data).returncode == 0
    missing = run("app", "public", "ghost", "on", "--data", demo_data)
    assert missing.returncode == 1 and "no app named 'ghost'" in missing.stderr


def test_reports_and_accounts_while_the_server_runs(live_server: LiveServer, tmp_path: Path) -> None:
    data = str(live_server.data)
    assert run("app", "add", "served", "--data", data).returncode == 0
    report = run("report", "served", "--report", "overview", "--format", "json", "--data", data)
    assert report.returncode == 0 and json.loads(report.stdout)["report"] == "overview"
    assert run("publish", "served", "--out", str(tmp_path / "site"), "--data", data).returncode == 0
    add = subprocess.run(
        footfall_command(
            "user", "add", "ann@example.org", "--role", "owner", "--app", "served", "--password-stdin", "--data", data
        ),
        input="long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    token = run("token", "create", "ann@example.org", "--data", data).stdout.splitlines()[-1]
    import httpx

    answer = httpx.get(
        f"{live_server.url}/api/v1/apps/served/reports/overview", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, "an account added while the server runs can read at once"


def test_unknown_apps_are_refused_before_a_password_is_read(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    added = subprocess.run(
        footfall_command(
            "user", "add", "ann@example.org", "--role", "owner", "--app", "nosuch", "--password-stdin", "--data", data
        ),
        input="long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 2 and "no app named 'nosuch'" in added.stderr and "Traceback" not in added.stderr
    assert "ann@example.org" not in run("user", "list", "--data", data).stdout, "nothing was created"


def test_the_access_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert run("app", "add", "tool", "--data", data).returncode == 0
    for email in ("ann@example.org", "bob@example.org"):
        added = subprocess.run(
            footfall_command(
                "user", "add", email, "--role", "viewer", "--app", "tool", "--password-stdin", "--data", data
            ),
            input="long enough password\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
    created = run("token", "create", "ann@example.org", "--name", "ci", "--expires-days", "7", "--data", data)
    assert created.returncode == 0 and "valid for 7 days" in created.stdout
    secret = created.stdout.splitlines()[-1]
    forever = run("token", "create", "bob@example.org", "--no-expiry", "--data", data)
    assert forever.returncode == 0 and "until revoked" in forever.stdout
    listed = json.loads(run("token", "list", "--format", "json", "--data", data).stdout)["tokens"]
    assert [(t["email"], t["name"], t["expires"] is None) for t in listed] == [
        ("ann@example.org", "ci", False),
        ("bob@example.org", "", True),
    ]
    table = run("token", "list", "ann@example.org", "--data", data).stdout
    assert listed[0]["id"] in table and secret not in table and "bob@" not in table
    assert run("token", "revoke", listed[0]["id"], "--data", data).returncode == 0
    assert [
        t["email"] for t in json.loads(run("token", "list", "--format", "json", "--data", data).stdout)["tokens"]
    ] == ["bob@example.org"]
    users = json.loads(run("user", "list", "--format", "json", "--data", data).stdout)["users"]
    assert [(u["email"], u["roles"]) for u in users] == [
        ("ann@example.org", {"tool": "viewer"}),
        ("bob@example.org", {"tool": "viewer"}),
    ]
    assert run("user", "remove-role", "ann@example.org", "--app", "tool", "--data", data).returncode == 0
    assert run("user", "remove", "bob@example.org", "--data", data).returncode == 0
    users = json.loads(run("user", "list", "--format", "json", "--data", data).stdout)["users"]
    assert [(u["email"], u["roles"]) for u in users] == [("ann@example.org", {})]
    assert json.loads(run("token", "list", "--format", "json", "--data", data).stdout)["tokens"] == []
    audit = [json.loads(line) for line in run("audit", "--json", "--limit", "4", "--data", data).stdout.splitlines()]
    assert [e["action"] for e in audit] == ["user_remove", "role_remove", "token_revoke", "token_create"]
    assert all(e["actor"] == "local-admin" and e["time"] for e in audit)


def test_the_audit_log_prints_hostile_text_inert(tmp_path: Path) -> None:
    from footfall.server.auth.accounts import AccountStore

    (tmp_path / "d").mkdir()
    store = AccountStore(tmp_path / "d" / "accounts.sqlite")
    try:
        store.audit("\x1b]8;;http://evil\x07[bold]x[/bold]@example.org", "login_failed")
    finally:
        store.close()
    shown = run("audit", "--data", str(tmp_path / "d"))
    assert shown.returncode == 0 and "login_failed" in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout, "control characters are escaped"
    assert "\\x1b]8;;http://evil\\x07" in shown.stdout and "[/bold]" in shown.stdout, "shown, not interpreted"


def test_app_remove_asks_first(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert run("app", "add", "tool", "--data", data).returncode == 0
    refused = subprocess.run(
        footfall_command("app", "remove", "tool", "--data", data), input="tool\n", capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--yes" in refused.stderr, "no terminal: only --yes removes"
    assert "tool" in run("app", "list", "--data", data).stdout
    assert run("app", "remove", "ghost", "--yes", "--data", data).returncode == 1
    removed = run("app", "remove", "tool", "--yes", "--data", data)
    assert removed.returncode == 0 and "Removed tool" in removed.stdout
    assert json.loads(run("app", "list", "--format", "json", "--data", data).stdout)["apps"] == []


def test_app_remove_through_a_running_server(live_server: LiveServer) -> None:
    data = str(live_server.data)
    assert run("app", "add", "doomed", "--data", data).returncode == 0
    removed = run("app", "remove", "doomed", "--yes", "--data", data)
    assert removed.returncode == 0, removed.stderr
    import httpx

    apps = httpx.get(live_server.url + "/api/v1/apps", headers={"Authorization": f"Bearer {live_server.token}"})
    assert "doomed" not in [a["name"] for a in apps.json()["apps"]]
    actions = [json.loads(line) for line in run("audit", "--json", "--data", data).stdout.splitlines()]
    assert {"action": "app_remove", "app": "doomed"}.items() <= actions[0].items()


def test_printed_login_links_use_the_public_url(tmp_path: Path) -> None:
    """Seen (review 13): the serve banner and `admin login-link` printed http://127.0.0.1:...
    even with --public-url, a link that works only on the server's own machine."""
    data = tmp_path / "data"
    server = start_server(data, tmp_path / "server.log", env={"FOOTFALL_PUBLIC_URL": "https://x.example/"})
    try:
        banner = server.log.read_text()
        assert "Open the dashboard: https://x.example/login?code=" in banner, banner
        link = run("admin", "login-link", "--data", str(data))
        assert link.returncode == 0, link.stderr
        assert link.stdout.splitlines()[-1].startswith("https://x.example/login?code=")
        listed = run("app", "list", "--data", str(data))  # the CLI still talks to the server on loopback
        assert listed.returncode == 0, listed.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("setting", ["forget-per-minute", "logins-per-minute"])
def test_zero_does_not_silently_turn_a_rate_limit_off(tmp_path: Path, setting: str) -> None:
    """Seen (review 10): `--forget-per-minute 0` and `--logins-per-minute 0` turned the limits off."""
    for flag, env in ([f"--{setting}", "0"], {}), ([], {f"FOOTFALL_{setting.replace('-', '_').upper()}": "0"}):
        refused = subprocess.run(
            footfall_command("serve", "--data", str(tmp_path / "d"), "--port", "0", *flag),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
        assert refused.returncode in (1, 2)
        assert f"--{setting} must be above 0" in refused.stderr and "Traceback" not in refused.stderr


def test_zero_stays_allowed_where_the_help_says_what_it_does(tmp_path: Path) -> None:
    from footfall.server.settings import SETTINGS, resolve_settings

    documented = [s.name for s in SETTINGS if s.type in (int, float) and s.zero_allowed]
    assert all("; 0" in next(s.help for s in SETTINGS if s.name == name) for name in documented)  # says what 0 does
    assert {"port", "rate_per_client", "max_distinct_values", "keep_alive_s"} <= set(documented)
    assert not {"forget_per_minute", "logins_per_minute"} & set(documented)
    settings = resolve_settings(tmp_path, dict.fromkeys(documented, 0))
    assert all(getattr(settings, name) == 0 for name in documented)
