"""New-user trial: `analytics off` sent an event, under a brand-new install id that it had
just promised to delete; `status`, `preview` and `forget` sent events too. Managing
analytics is not using the tool: the analytics command itself is never recorded."""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_host, sdk_env, seed_notice_shown

TOOL = textwrap.dedent(
    """
    import argparse, sys
    import footfall
    from footfall.integrations import argparse as ff_argparse

    analytics = footfall.init(app="quiet-tool", endpoint={endpoint!r})
    parser = argparse.ArgumentParser(prog="quiet-tool")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("build")
    ff_argparse.add_analytics_command(sub, analytics)
    with ff_argparse.track_command(analytics, parser, sys.argv[1:]) as args:
        code = args.func(args) if hasattr(args, "func") else 0
    analytics.flush(5)
    sys.exit(code)
    """
)


def run_tool(home: Path, endpoint: str, *argv: str) -> None:
    script = TOOL.format(endpoint=endpoint).replace("sys.argv[1:]", repr(list(argv)))
    result, _ = run_host(script, sdk_env(home))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("action", ["off", "status", "preview", "forget", "on"])
def test_the_analytics_command_sends_no_event(tmp_path: Path, collector_stub: Any, action: str) -> None:
    stub = collector_stub(mode="ok")
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    run_tool(home, stub.url, "build")  # a normal command is recorded: the tool is on
    assert [e["props"]["command"] for e in stub.events] == ["build"]
    run_tool(home, stub.url, "analytics", action)
    assert [e["props"]["command"] for e in stub.events] == ["build"], stub.events


def test_analytics_off_leaves_no_install_id_and_nothing_to_send_later(tmp_path: Path, collector_stub: Any) -> None:
    down = collector_stub(mode="error")  # the first command's batch is spooled, with the id
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    run_tool(home, down.url, "build")
    spool = home / "footfall" / "quiet-tool.spool"
    assert any(spool.glob("batch-*")), "the batch waits in the spool"
    run_tool(home, down.url, "analytics", "off")
    state = json.loads((home / "footfall" / "quiet-tool.json").read_text())
    assert state["enabled"] is False and "install_id" not in state
    assert not any(spool.glob("batch-*")), "nothing that carries the deleted id is kept"
    up = collector_stub(mode="ok")
    run_tool(home, up.url, "build")
    assert up.events == []


# Review: `track(...); set_enabled(False); flush()` sent the queued events under a brand-new
# install id, made in the worker while it built the batch context after the old id was
# deleted; at exit, or with the collector down, they were spooled with that id too.
OFF_WHILE_QUEUED = textwrap.dedent(
    """
    import threading
    import footfall

    building = threading.Event()
    go_on = threading.Event()

    def hold(event):  # runs in the worker, while it builds the first batch
        building.set()
        go_on.wait(10)
        return event

    client = footfall.init(app="quiet-tool", endpoint={endpoint!r}, before_send=hold)
    client.track("startup")
    assert building.wait(10), "the worker never started building"
    client.track("queued")  # waits in the queue behind the batch being built
    assert client.set_enabled(False)
    go_on.set()
    {ending}
    """
)


@pytest.mark.parametrize("mode", ["ok", "error"])
@pytest.mark.parametrize("ending", ["client.flush(10)", "pass  # exit at once"])
def test_events_queued_before_off_are_never_sent_nor_kept(
    tmp_path: Path, collector_stub: Any, mode: str, ending: str
) -> None:
    stub = collector_stub(mode=mode)
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    result, _ = run_host(OFF_WHILE_QUEUED.format(endpoint=stub.url, ending=ending), sdk_env(home))
    assert result.returncode == 0, result.stderr
    assert stub.requests == [], "nothing is sent once the user turned analytics off"
    state = json.loads((home / "footfall" / "quiet-tool.json").read_text())
    assert state["enabled"] is False and "install_id" not in state, state
    spool = home / "footfall" / "quiet-tool.spool"
    assert not (spool.exists() and any(spool.iterdir())), "nothing is spooled for a later run"
    later = collector_stub(mode="ok")
    run_tool(home, later.url, "build")
    assert later.requests == []
    assert "install_id" not in json.loads((home / "footfall" / "quiet-tool.json").read_text())


def test_preview_while_off_makes_no_install_id(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub(mode="ok")
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    run_tool(home, stub.url, "analytics", "off")
    state_file = home / "footfall" / "quiet-tool.json"
    assert "install_id" not in json.loads(state_file.read_text())
    script = TOOL.format(endpoint=stub.url).replace("sys.argv[1:]", repr(["analytics", "preview"]))
    result, _ = run_host(script, sdk_env(home))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout[result.stdout.index("{") :])
    assert shown["context"]["install"] is None, "the preview shows no id: none would be sent"
    state = json.loads(state_file.read_text())
    assert state["enabled"] is False and "install_id" not in state, state
    assert stub.requests == []


# Issue 8: `analytics off` on a fresh install (no id yet) sends nothing, makes no id and
# leaves none on disk; it is the very first thing a careful user runs.
def test_analytics_off_first_thing_makes_no_id_and_sends_nothing(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub(mode="ok")
    home = tmp_path / "config"
    run_tool(home, stub.url, "analytics", "off")  # the notice run, too
    run_tool(home, stub.url, "build")
    run_tool(home, stub.url, "analytics", "status")
    state = json.loads((home / "footfall" / "quiet-tool.json").read_text())
    assert state["enabled"] is False and "install_id" not in state, state
    assert stub.requests == []
    assert not (home / "footfall" / "quiet-tool.spool").exists()


def sent_installs(stub: Any) -> list[str | None]:
    return [
        json.loads(gzip.decompress(body))["context"]["install"]
        for path, body, _ in stub.requests
        if path == "/v1/batch"
    ]


OPT_OUT_VARIABLES = [{"DO_NOT_TRACK": "1"}, {"QUIET_NO_ANALYTICS": "1"}]
TOOL_WITH_VARIABLE = TOOL.replace("endpoint={endpoint!r})", "endpoint={endpoint!r}, opt_out_env='QUIET_NO_ANALYTICS')")


def run_tool_env(home: Path, endpoint: str, variables: dict[str, str], *argv: str) -> str:
    script = TOOL_WITH_VARIABLE.format(endpoint=endpoint).replace("sys.argv[1:]", repr(list(argv)))
    result, _ = run_host(script, sdk_env(home, **variables))
    assert result.returncode == 0, result.stderr
    assert "QUIET_NO_ANALYTICS" in TOOL_WITH_VARIABLE
    return result.stdout


@pytest.mark.parametrize("variables", OPT_OUT_VARIABLES)
def test_an_opt_out_variable_makes_no_id_whatever_runs(
    tmp_path: Path, collector_stub: Any, variables: dict[str, str]
) -> None:
    # Issue 8: while an opt-out variable is set nothing is sent and no id is made, not by a
    # command, `analytics preview`, `status`, `on` or `forget`.
    stub = collector_stub(mode="ok")
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    for argv in (["build"], ["analytics", "preview"], ["analytics", "status"], ["analytics", "forget"], ["build"]):
        run_tool_env(home, stub.url, variables, *argv)
        state = json.loads((home / "footfall" / "quiet-tool.json").read_text())
        assert "install_id" not in state, (argv, state)
    assert stub.requests == []
    assert not (home / "footfall" / "quiet-tool.spool").exists()


@pytest.mark.parametrize("variables", OPT_OUT_VARIABLES)
def test_an_opt_out_variable_keeps_an_existing_id_so_installs_are_not_inflated(
    tmp_path: Path, collector_stub: Any, variables: dict[str, str]
) -> None:
    # Issue 8: the variables deleted the install id, so the next run without them made a new
    # one and the same machine counted as two installs. The id stays on the machine, unsent.
    stub = collector_stub(mode="ok")
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    run_tool_env(home, stub.url, {}, "build")
    state_file = home / "footfall" / "quiet-tool.json"
    first = json.loads(state_file.read_text())["install_id"]
    assert sent_installs(stub) == [first]
    for _ in range(2):
        run_tool_env(home, stub.url, variables, "build")
    assert len(stub.requests) == 1, "nothing is sent while the variable is set"
    assert json.loads(state_file.read_text())["install_id"] == first
    run_tool_env(home, stub.url, {}, "build")
    assert sent_installs(stub) == [first, first], "one machine, one install"


def test_forget_while_a_variable_is_set_asks_the_collector_and_makes_no_new_id(
    tmp_path: Path, collector_stub: Any
) -> None:
    # The one request made while an opt-out variable is set is the one the user asks for by
    # name: deleting the install's events. It carries no usage, and no new id is made.
    stub = collector_stub(mode="ok")
    home = tmp_path / "config"
    seed_notice_shown(home, "quiet-tool")
    run_tool_env(home, stub.url, {}, "build")
    state_file = home / "footfall" / "quiet-tool.json"
    old = json.loads(state_file.read_text())["install_id"]
    out = run_tool_env(home, stub.url, {"DO_NOT_TRACK": "1"}, "analytics", "forget")
    assert "The collector will delete every event of this install" in out
    assert [path for path, _, _ in stub.requests] == ["/v1/batch", "/v1/forget"]
    assert json.loads(gzip.decompress(stub.requests[1][1])) == {"app": "quiet-tool", "install": old}
    assert "install_id" not in json.loads(state_file.read_text())
