"""The `footfall` command: help everywhere, clean errors, and the data while serving."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from footfall.server.cli import build_parser, main
from footfall.server.terminal import sparkline
from tests.conftest import LiveServer, footfall_command

COMMANDS = [["serve"], ["app"], ["app", "add"], ["app", "list"], ["report"], ["demo"]]


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
    assert "events command, launch" in from_code.stdout
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
