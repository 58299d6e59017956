"""Notice, consent and opt-out: the decision layers, and whole host processes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import footfall
from footfall.consent import decide
from footfall.state import ToolState
from tests.conftest import REPO, run_host, sdk_env, seed_notice_shown


def decision(tmp_path: Path, environ: dict[str, str], saved: bool | None = None, **options: Any) -> tuple[bool, str]:
    state = ToolState(str(tmp_path), "tool")
    if saved is not None:
        state.update(enabled=saved)
    settings: dict[str, Any] = {
        "opt_out_env": "TOOL_NO_ANALYTICS",
        "enable_env": "SEND_ANONYMOUS_USAGE_INFO",
        "consent": "opt-out",
        "ci_policy": "tag",
        "ci_provider": "",
    }
    settings.update(options)
    result = decide(environ, state, **settings)
    return result.enabled, result.layer


@pytest.mark.parametrize(
    ("environ", "saved", "options", "expected"),
    [
        ({}, None, {}, (True, "default")),
        ({}, None, {"consent": "opt-in"}, (False, "default")),
        ({"TOOL_NO_ANALYTICS": "1"}, None, {}, (False, "tool variable")),
        ({"TOOL_NO_ANALYTICS": "0"}, None, {}, (True, "default")),
        ({"SEND_ANONYMOUS_USAGE_INFO": "false"}, None, {}, (False, "tool variable")),
        ({"SEND_ANONYMOUS_USAGE_INFO": "False"}, None, {}, (False, "tool variable")),
        (
            {"SEND_ANONYMOUS_USAGE_INFO": "true"},
            None,
            {"consent": "opt-in"},
            (True, "tool variable"),
        ),
        ({"SEND_ANONYMOUS_USAGE_INFO": "perhaps"}, None, {}, (False, "tool variable")),
        ({"TOOL_NO_ANALYTICS": "¯\\_(ツ)_/¯"}, None, {}, (False, "tool variable")),
        ({"DO_NOT_TRACK": "1"}, None, {}, (False, "DO_NOT_TRACK")),
        ({"DO_NOT_TRACK": "0"}, None, {}, (True, "default")),
        ({"DO_NOT_TRACK": "garbage"}, None, {}, (False, "DO_NOT_TRACK")),
        # "off" wins: no tool variable can force sending past DO_NOT_TRACK or a saved "off".
        (
            {"SEND_ANONYMOUS_USAGE_INFO": "true", "DO_NOT_TRACK": "1"},
            None,
            {},
            (False, "DO_NOT_TRACK"),
        ),
        ({"SEND_ANONYMOUS_USAGE_INFO": "true"}, False, {}, (False, "saved setting")),
        ({"FOOTFALL_SUPPRESS": "1"}, True, {}, (False, "run suppression")),
        ({}, False, {}, (False, "saved setting")),
        ({}, True, {"consent": "opt-in"}, (True, "saved setting")),
        ({}, None, {"ci_policy": "suppress", "ci_provider": "gitlab"}, (False, "CI policy")),
        ({}, None, {"ci_policy": "tag", "ci_provider": "gitlab"}, (True, "default")),
    ],
)
def test_decision_layers(
    tmp_path: Path,
    environ: dict[str, str],
    saved: bool | None,
    options: dict[str, Any],
    expected: tuple[bool, str],
) -> None:
    assert decision(tmp_path, environ, saved, **options) == expected


def test_garbage_values_are_reported_in_debug(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import footfall
        c = footfall.init(app="tool", endpoint="http://127.0.0.1:9", opt_out_env="TOOL_NO_ANALYTICS")
        print(c.enabled, c.decision.layer)
    """)
    result, _ = run_host(script, sdk_env(tmp_path, TOOL_NO_ANALYTICS="sure?", FOOTFALL_DEBUG="1"))
    assert result.stdout == "False tool variable\n"
    assert "TOOL_NO_ANALYTICS='sure?' is not a yes/no value" in result.stderr


def test_child_env_suppresses_child_processes(tmp_path: Path, clean_env: None) -> None:
    env = footfall.child_env({"PATH": "/bin"})
    assert env["FOOTFALL_SUPPRESS"] == "1" and env["PATH"] == "/bin"
    assert decision(tmp_path, env) == (False, "run suppression")


HOST = """
import footfall
analytics = footfall.init(app="notice-tool", endpoint={url!r}, {options})
analytics.track("command", command="build")
print("enabled" if analytics.enabled else "disabled")
"""


def host(url: str, **options: Any) -> str:
    rendered = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "app_version='1.0'"
    return textwrap.dedent(HOST.format(url=url, options=rendered))


def test_first_run_shows_the_notice_and_sends_nothing_the_second_sends(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    env = sdk_env(tmp_path)
    first, _ = run_host(host(stub.url, link="https://example.org/analytics"), env)
    assert first.returncode == 0 and first.stdout == "disabled\n"
    assert "notice-tool collects anonymous usage statistics" in first.stderr
    assert "Details: https://example.org/analytics" in first.stderr
    assert stub.requests == []
    state = json.loads((tmp_path / "footfall" / "notice-tool.json").read_text())
    assert state["notice_version"] == 1 and "install_id" not in state

    second, _ = run_host(host(stub.url), env)
    assert second.returncode == 0 and second.stdout == "enabled\n" and second.stderr == ""
    assert [e["name"] for e in stub.events] == ["command"]


def test_a_new_notice_version_is_shown_again(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    seed_notice_shown(tmp_path, "notice-tool", version=1)
    result, _ = run_host(
        host(stub.url, notice_version=2, notice_text="We now also count plugins."),
        sdk_env(tmp_path),
    )
    assert result.stdout == "disabled\n" and result.stderr == "We now also count plugins.\n"
    assert stub.requests == []
    again, _ = run_host(host(stub.url, notice_version=2), sdk_env(tmp_path))
    assert again.stdout == "enabled\n" and again.stderr == ""
    assert len(stub.events) == 1


def test_every_run_notice_prints_each_run_and_sends(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    for _ in range(2):
        result, _ = run_host(host(stub.url, notice="every-run"), sdk_env(tmp_path))
        assert result.stdout == "enabled\n" and "collects anonymous usage statistics" in result.stderr
    assert len(stub.events) == 2


def test_a_notice_that_needs_a_tty_is_not_counted_without_one(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    for _ in range(2):
        result, _ = run_host(host(stub.url, notice_needs_tty=True), sdk_env(tmp_path))
        assert result.stdout == "disabled\n" and "collects anonymous" in result.stderr
    assert stub.requests == []


@pytest.mark.parametrize(
    ("variable", "value", "options"),
    [
        ("DO_NOT_TRACK", "1", {}),
        ("DO_NOT_TRACK", "true", {}),
        ("SEND_ANONYMOUS_USAGE_INFO", "false", {"enable_env": "SEND_ANONYMOUS_USAGE_INFO"}),
        ("MYTOOL_NO_ANALYTICS", "1", {"opt_out_env": "MYTOOL_NO_ANALYTICS"}),
    ],
)
def test_opt_out_variables_stop_all_traffic(
    tmp_path: Path, collector_stub: Any, variable: str, value: str, options: dict[str, str]
) -> None:
    stub = collector_stub()
    seed_notice_shown(tmp_path, "notice-tool")
    for _ in range(3):
        result, _ = run_host(host(stub.url, notice="every-run", **options), sdk_env(tmp_path, **{variable: value}))
        assert result.returncode == 0 and result.stdout == "disabled\n"
        assert result.stderr == "", "an opted-out user sees no notice"
    assert stub.requests == []
    control, _ = run_host(host(stub.url, **options), sdk_env(tmp_path))
    assert control.stdout == "enabled\n" and len(stub.requests) == 1, "the same host sends when not opted out"


def test_an_opt_out_variable_keeps_the_install_id_unsent(tmp_path: Path, clean_env: None) -> None:
    (tmp_path / "tool.json").write_text(json.dumps({"notice_version": 1, "install_id": "ab" * 16}))
    os.environ["DO_NOT_TRACK"] = "1"
    try:
        client = footfall.init(app="tool", endpoint="http://x", state_dir=tmp_path)
    finally:
        del os.environ["DO_NOT_TRACK"]
    assert not client.enabled
    # Kept, not deleted: deleting it made the next run without DO_NOT_TRACK a new install.
    assert json.loads((tmp_path / "tool.json").read_text()) == {"notice_version": 1, "install_id": "ab" * 16}


def test_opt_in_sends_nothing_until_enabled(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    env = sdk_env(tmp_path)
    for _ in range(2):
        result, _ = run_host(host(stub.url, consent="opt-in", prompt=True), env)
        assert result.stdout == "disabled\n" and result.stderr == "", "no prompt without a terminal"
    assert stub.requests == []
    turn_on = textwrap.dedent(f"""
        import footfall
        from footfall.commands import run_analytics_command
        c = footfall.init(app="notice-tool", endpoint={stub.url!r}, consent="opt-in")
        raise SystemExit(run_analytics_command(c, "on"))
    """)
    result, _ = run_host(turn_on, env)
    assert result.returncode == 0 and "are on from the next run" in result.stdout
    result, _ = run_host(host(stub.url, consent="opt-in"), env)
    assert result.stdout == "enabled\n"
    assert len(stub.events) == 1


@pytest.mark.parametrize(("answer", "expected"), [(b"y\n", "enabled"), (b"\n", "disabled")])
def test_opt_in_prompt_on_a_terminal(tmp_path: Path, collector_stub: Any, answer: bytes, expected: str) -> None:
    stub = collector_stub()
    primary, secondary = pty.openpty()
    script = host(stub.url, consent="opt-in", prompt=True)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=secondary,
        stderr=secondary,
        stdout=subprocess.PIPE,
        env=sdk_env(tmp_path),
        cwd=REPO,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        seen += os.read(primary, 1024)
    os.write(primary, answer)
    stdout, _ = process.communicate(timeout=30)
    os.close(primary)
    assert b"collects anonymous usage statistics" in seen
    assert stdout.decode().strip() == expected
    saved = json.loads((tmp_path / "footfall" / "notice-tool.json").read_text())
    assert saved["enabled"] is (expected == "enabled")


# Issue 8: the built-in notice said "the commands and option names used..." whatever the tool
# sent, and named only the variables. It is written from the schema, and names the tool's
# own off switches first.
NOTICE_HOST = textwrap.dedent(
    """
    import footfall
    schema = footfall.Schema(
        {{"export": {{"format": footfall.Enum("csv", "json"), "rows": footfall.Integer((1, 100))}}}},
        commands={commands},
    )
    footfall.init(app="notice-tool", endpoint="http://127.0.0.1:9", schema=schema,
                  opt_out_env="NOTICE_TOOL_NO_ANALYTICS", analytics_command="notice-tool analytics")
    """
)


def test_the_notice_is_written_from_the_schema_and_names_the_tools_off_switch(tmp_path: Path) -> None:
    result, _ = run_host(NOTICE_HOST.format(commands=False), sdk_env(tmp_path / "a"))
    assert result.returncode == 0 and result.stdout == ""
    notice = " ".join(result.stderr.split())
    assert "- export: format, rows (a range, never the number)" in notice
    assert "command" not in notice.replace("analytics", ""), "this tool records no commands"
    assert "Turn it off with notice-tool analytics off, NOTICE_TOOL_NO_ANALYTICS=1 or DO_NOT_TRACK=1." in notice
    with_commands, _ = run_host(NOTICE_HOST.format(commands=True), sdk_env(tmp_path / "b"))
    notice = " ".join(with_commands.stderr.split())
    assert "- command: command (its name, never its arguments), duration, options (their names, never" in notice
    assert "- export: format, rows" in notice
    assert all(len(line) <= 88 for line in with_commands.stderr.splitlines())


def test_without_a_schema_the_notice_says_what_may_be_sent(tmp_path: Path) -> None:
    script = 'import footfall\nfootfall.init(app="notice-tool", endpoint="http://127.0.0.1:9")\n'
    result, _ = run_host(script, sdk_env(tmp_path))
    notice = " ".join(result.stderr.split())
    assert "the commands and option names used (never their values)" in notice
    assert "short names (never free text)" in notice
    assert "Turn it off with DO_NOT_TRACK=1." in notice
