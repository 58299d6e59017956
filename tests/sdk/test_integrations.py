"""argparse, click and typer: command path, option names (never values), duration, outcome."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from click.testing import CliRunner
from typer.testing import CliRunner as TyperRunner

import footfall
from footfall.integrations import argparse as ff_argparse
from footfall.integrations import click as ff_click
from footfall.integrations import typer as ff_typer
from tests.conftest import LiveServer, footfall_command, run_host, sdk_env, seed_notice_shown
from tests.sdk.test_client import sdk_client

SECRET = "s3cret-value-never-sent"


def commands(transport: footfall.MemoryTransport) -> list[dict[str, Any]]:
    assert SECRET not in json.dumps(transport.batches)
    return [e["props"] for e in transport.events if e["name"] == "command"]


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(prog="gitlike")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="cmd")
    remote = sub.add_parser("remote").add_subparsers(dest="remote_cmd")
    add = remote.add_parser("add")
    add.add_argument("name")
    add.add_argument("-f", "--fetch", action="store_true")
    add.add_argument("--tags", default="")
    build = sub.add_parser("build")
    build.add_argument("-j", "--jobs", type=int)
    return parser, sub


def test_argparse_records_path_and_option_names(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, app="gitlike")
    parser, _ = build_parser()
    with ff_argparse.track_command(client, parser, ["-vv", "remote", "add", "-f", f"--tags={SECRET}", SECRET]) as args:
        assert args.name == SECRET
    with (
        pytest.raises(ZeroDivisionError),
        ff_argparse.track_command(client, parser, ["build", "-j4"]),
    ):
        raise ZeroDivisionError(SECRET)
    assert client.flush(5)
    assert commands(transport) == [
        {
            "command": "remote add",
            "options": ["--fetch", "--tags", "--verbose"],
            "duration": "<1s",
            "outcome": "ok",
        },
        {
            "command": "build",
            "options": ["--jobs"],
            "duration": "<1s",
            "outcome": "ZeroDivisionError",
        },
    ]


def test_argparse_analytics_command(tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    client, _ = sdk_client(tmp_path, app="gitlike")
    parser, sub = build_parser()
    ff_argparse.add_analytics_command(sub, client)
    args = parser.parse_args(["analytics", "status"])
    assert args.func(args) == 0
    assert "are on in this run" in capsys.readouterr().out
    args = parser.parse_args(["analytics", "off"])
    assert args.func(args) == 0
    saved = json.loads((tmp_path / "gitlike.json").read_text())
    assert saved["enabled"] is False and "install_id" not in saved
    with pytest.raises(SystemExit):
        parser.parse_args(["analytics", "maybe"])


def make_click_app(client: Any) -> click.Group:
    @click.group()
    @click.option("--config", default="x")
    def cli(config: str) -> None:
        pass

    @cli.command()
    @click.option("--users", "-u", type=int)
    @click.option("--headless/--web", default=False)
    @click.argument("target")
    def run(users: int, headless: bool, target: str) -> None:
        if target == "boom":
            raise KeyError(SECRET)

    cli.add_command(ff_click.analytics_command(client))
    return ff_click.instrument(cli, client)  # type: ignore[return-value]


def test_click_records_path_and_option_names(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, app="clicky")
    cli = make_click_app(client)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", SECRET, "run", "-u", "5", "--headless", SECRET]).exit_code == 0
    assert runner.invoke(cli, ["run", "boom"]).exit_code == 1
    assert client.flush(5)
    assert commands(transport) == [
        {
            "command": "run",
            "options": ["--config", "--headless", "--users"],
            "duration": "<1s",
            "outcome": "ok",
        },
        {"command": "run", "options": [], "duration": "<1s", "outcome": "KeyError"},
    ]


def test_click_analytics_command(tmp_path: Path, clean_env: None) -> None:
    client, _ = sdk_client(tmp_path, app="clicky")
    result = CliRunner().invoke(make_click_app(client), ["analytics", "preview"])
    assert result.exit_code == 0
    preview = json.loads(result.output)
    assert preview["app"] == "clicky" and preview["events"][0]["props"]["command"] == "analytics preview"
    assert CliRunner().invoke(make_click_app(client), ["analytics", "sideways"]).exit_code == 2


def test_typer_records_path_and_option_names(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, app="typed")
    app = typer.Typer()
    images = typer.Typer()

    @app.command()
    def render(zoom: int = typer.Option(1, "--zoom", "-z"), bbox: str = "") -> None:
        pass

    @images.command("prune")
    def prune(force: bool = typer.Option(False, "--force")) -> None:
        raise RuntimeError(SECRET)

    app.add_typer(images, name="images")
    ff_typer.add_analytics_command(app, client)
    ff_typer.instrument(app, client)
    runner = TyperRunner()
    assert runner.invoke(app, ["render", "-z", "12", "--bbox", SECRET]).exit_code == 0
    assert runner.invoke(app, ["images", "prune", "--force"]).exit_code == 1
    status = runner.invoke(app, ["analytics", "status"])
    assert status.exit_code == 0 and "Decided by: default" in status.output
    assert client.flush(5)
    recorded = commands(transport)
    assert recorded[:2] == [
        {"command": "render", "options": ["--bbox", "--zoom"], "duration": "<1s", "outcome": "ok"},
        {
            "command": "images prune",
            "options": ["--force"],
            "duration": "<1s",
            "outcome": "RuntimeError",
        },
    ]
    assert len(recorded) == 2  # managing analytics is not using the tool: `analytics status` is not recorded


def test_forget_deletes_on_the_collector_and_starts_a_new_id(tmp_path: Path, live_server: LiveServer) -> None:
    subprocess.run(
        footfall_command("app", "add", "forgetful", "--data", str(live_server.data)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    seed_notice_shown(tmp_path, "forgetful")
    script = f"""
import sys, footfall
from footfall.commands import run_analytics_command
c = footfall.init(app="forgetful", endpoint={live_server.url!r})
if sys.argv[1:] == ["send"]:
    for _ in range(7):
        c.track("command", command="build")
    c.flush(10)
else:
    raise SystemExit(run_analytics_command(c, "forget"))
"""
    env = sdk_env(tmp_path)
    send = script.replace("sys.argv[1:]", '["send"]')
    assert run_host(send, env)[0].returncode == 0
    state = tmp_path / "footfall" / "forgetful.json"
    before = json.loads(state.read_text())["install_id"]
    result, _ = run_host(script, env)
    assert result.returncode == 0, result.stderr
    assert "The collector will delete every event of this install" in result.stdout
    after = json.loads(state.read_text())["install_id"]
    assert after != before
    assert run_host(send, env)[0].returncode == 0
    live_server.stop()

    from footfall.server.ingest.pipeline import keyed_hash
    from footfall.server.stores.duckdb import DuckDBStore

    key = bytes.fromhex(json.loads((live_server.data / "secrets.json").read_text())["install_key"])
    store = DuckDBStore(live_server.data / "footfall.duckdb")
    try:
        rows = store.query("SELECT install, count(*) FROM events WHERE app = 'forgetful' GROUP BY install").rows
    finally:
        store.close()
    assert rows == [(keyed_hash(key, "install", "forgetful", after), 7)], "only the second run's events are left"


def test_forget_without_a_collector_starts_a_new_id_and_keeps_the_request(tmp_path: Path, clean_env: None) -> None:
    (tmp_path / "t.json").write_text(json.dumps({"notice_version": 1, "install_id": "a" * 32}))
    client = footfall.init(app="t", endpoint="http://127.0.0.1:9", state_dir=tmp_path)
    from footfall.commands import run_analytics_command

    output: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            output.append(text)

    assert run_analytics_command(client, "forget", out=Out()) == 0  # type: ignore[arg-type]
    assert "could not be reached" in "".join(output) and "saved" in "".join(output)
    assert json.loads((tmp_path / "t.json").read_text())["install_id"] != "a" * 32
    (waiting,) = (tmp_path / "t.spool").glob("forget-*.json")
    assert json.loads(waiting.read_text()) == {"app": "t", "install": "a" * 32}


# Issue 8: a command that failed with a non-zero exit code was recorded as "ok" (an argparse
# `func` returning 1, a usage error) or as a bare "exit"; the outcome is now "exit:<code>".
def test_argparse_records_the_real_exit_code(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, app="gitlike")
    parser, sub = build_parser()
    ff_argparse.add_analytics_command(sub, client)
    sub.choices["build"].set_defaults(func=lambda args: 1 if args.jobs == 1 else 0)
    with ff_argparse.track_command(client, parser, ["build", "-j", "1"]) as args:
        assert args.func(args) == 1, "the function's own return value is handed back"
    with ff_argparse.track_command(client, parser, ["build", "-j", "2"]) as args:
        args.func(args)
    with pytest.raises(SystemExit) as usage, ff_argparse.track_command(client, parser, ["build", "--jobs", SECRET]):
        pass
    assert usage.value.code == 2
    with pytest.raises(SystemExit), ff_argparse.track_command(client, parser, ["build"]):
        raise SystemExit(3)
    with pytest.raises(SystemExit), ff_argparse.track_command(client, parser, ["build"]):
        raise SystemExit(SECRET)  # Python prints the message and exits with 1
    with pytest.raises(SystemExit), ff_argparse.track_command(client, parser, ["--help"]):
        pass
    with pytest.raises(SystemExit), ff_argparse.track_command(client, parser, ["analytics", "of"]):
        pass  # a typo while managing analytics is not recorded either
    assert client.flush(5)
    assert [(e["command"], e["options"], e["outcome"]) for e in commands(transport)] == [
        ("build", ["--jobs"], "exit:1"),
        ("build", ["--jobs"], "ok"),
        ("build", ["--jobs"], "exit:2"),
        ("build", [], "exit:3"),
        ("build", [], "exit:1"),
    ]


def test_click_records_the_real_exit_code(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, app="clicky")

    @click.group()
    def cli() -> None:
        pass

    @cli.command()
    @click.option("--level", type=int, default=0)
    @click.pass_context
    def check(ctx: click.Context, level: int) -> None:
        if level == 3:
            ctx.exit(3)
        if level == 2:
            raise click.UsageError(SECRET)
        if level == 1:
            ctx.exit(0)

    cli.add_command(ff_click.analytics_command(client))
    ff_click.instrument(cli, client)
    runner = CliRunner()
    expected_codes = {"3": 3, "2": 2, "1": 0, SECRET: 2}
    for level, code in expected_codes.items():
        assert runner.invoke(cli, ["check", "--level", level]).exit_code == code
    assert runner.invoke(cli, ["analytics", "of"]).exit_code == 2
    assert client.flush(5)
    assert [(e["command"], e["options"], e["outcome"]) for e in commands(transport)] == [
        ("check", ["--level"], "exit:3"),
        ("check", ["--level"], "UsageError"),
        ("check", ["--level"], "ok"),
        ("check", ["--level"], "BadParameter"),  # refused before its callback ran: click exits with 2
    ]


def test_typer_records_the_real_exit_code(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, app="typed")
    app = typer.Typer()

    @app.command()
    def check(level: int = 0) -> None:
        if level:
            raise typer.Exit(code=level)

    @app.command()
    def other() -> None:
        raise typer.Abort()

    ff_typer.instrument(app, client)
    runner = TyperRunner()
    assert runner.invoke(app, ["check", "--level", "1"]).exit_code == 1
    assert runner.invoke(app, ["check"]).exit_code == 0
    assert runner.invoke(app, ["other"]).exit_code == 1
    assert client.flush(5)
    assert [(e["command"], e["outcome"]) for e in commands(transport)] == [
        ("check", "exit:1"),
        ("check", "ok"),
        ("other", "Abort"),
    ]
