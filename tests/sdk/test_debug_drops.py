"""Issue 8: FOOTFALL_DEBUG=1 dropped properties silently and printed `"dropped": 0`, so a
tool author could not tell why a property never arrived. Each dropped property is named
with the reason (never with its value, which may be the sensitive thing), and the count
says what it counts."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import run_host, sdk_env, seed_notice_shown

EMAIL = "ann@example.org"
TOKEN = "ghp_abcdefghijklmnop1234"
SENTENCE = "free text with spaces"

HOST = textwrap.dedent(
    f"""
    import footfall
    schema = footfall.Schema({{"export": {{"format": footfall.Enum("csv", "json"),
                                           "rows": footfall.Integer((1, 100)),
                                           "owner": footfall.Identifier()}}}})
    typed = footfall.init(app="debug-tool", endpoint="http://127.0.0.1:9", schema=schema)
    typed.track("export", format="xml", rows="{SENTENCE}", owner="{EMAIL}", extra=1)
    typed.track("export", format="csv", rows=5)
    typed.track("undeclared", a=1)
    typed.track("command", command="build", options=["--jobs", "{TOKEN}"], outcome="ok")
    assert typed.flush(5)
    untyped = footfall.init(app="debug-tool", endpoint="http://127.0.0.1:9")
    untyped.track("start", mode="fast", token="{TOKEN}", note="{SENTENCE}", nested={{"a": 1}}, big="x" * 600)
    assert untyped.flush(5)
    """
)


def test_debug_names_each_dropped_property_and_why_never_its_value(tmp_path: Path) -> None:
    seed_notice_shown(tmp_path, "debug-tool")
    result, _ = run_host(HOST, sdk_env(tmp_path, FOOTFALL_DEBUG="1"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    for expected in (
        "footfall: event 'export': dropped property 'format': not one of the declared values",
        "footfall: event 'export': dropped property 'rows': wrong type: str, declared Integer",
        "footfall: event 'export': dropped property 'owner': safety net: looks like an email",
        "footfall: event 'export': dropped property 'extra': not declared for the event 'export' in the schema",
        "footfall: dropped event 'undeclared': it is not declared in the schema",
        "footfall: event 'command': property 'options' sent in part: 1 of 2 items left out (not option names)",
        "footfall: event 'start': dropped property 'token': safety net: looks like a token",
        "footfall: event 'start': dropped property 'note': without a schema, only short identifier-like strings"
        " are sent (no spaces, at most 64 characters)",
        "footfall: event 'start': dropped property 'nested': wrong type: dict; without a schema, only booleans,"
        " numbers, short names and lists of short names are sent",
        "footfall: event 'start': dropped property 'big': safety net: too long (over 512 characters)",
    ):
        assert expected in lines, (expected, result.stderr)
    counts = [line for line in lines if "events kept" in line]
    assert counts == [
        "footfall: 3 of 4 events kept; 1 events and 4 properties were dropped before sending, each named"
        ' above. The batch\'s "dropped": 0 counts only events lost to a full queue.',
        "footfall: 1 of 1 events kept; 0 events and 4 properties were dropped before sending, each named"
        ' above. The batch\'s "dropped": 0 counts only events lost to a full queue.',
    ]
    for value in (EMAIL, TOKEN, SENTENCE, "x" * 600):
        assert value not in result.stderr, "a dropped value is never printed"


def test_without_debug_nothing_is_printed(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub(mode="ok")
    seed_notice_shown(tmp_path, "debug-tool")
    result, _ = run_host(HOST.replace("http://127.0.0.1:9", stub.url), sdk_env(tmp_path))
    assert result.returncode == 0 and result.stderr == ""
    assert [e["name"] for e in stub.events] == ["export", "export", "command", "start"]
