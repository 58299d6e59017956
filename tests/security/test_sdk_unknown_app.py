"""Issue 8: a tool whose app is not registered on its collector got `422 unknown_app` for
every batch and said nothing anywhere, so its maintainers saw an empty dashboard and no
reason. The SDK drops the batch (no retry, no spool), keeps the refusal in its state file,
shows it in `analytics status`, and prints it once with FOOTFALL_DEBUG=1; never otherwise."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import run_host, sdk_env, seed_notice_shown

APP = "stranger-tool"
HOST = textwrap.dedent(
    """
    import sys
    import footfall
    from footfall.commands import run_analytics_command
    analytics = footfall.init(app="stranger-tool", endpoint={endpoint!r})
    if sys.argv[1:] == ["status"]:
        raise SystemExit(run_analytics_command(analytics, "status"))
    for _ in range(3):
        analytics.track("command", command="build")
    print("delivered", analytics.flush(10))
    """
)
SENTENCE = (
    "The collector does not know the app 'stranger-tool' (unknown_app): its maintainers register it"
    " on the collector with `footfall app add stranger-tool`."
)


def run(home: Path, url: str, *argv: str, **env: str) -> Any:
    script = HOST.format(endpoint=url).replace("sys.argv[1:]", repr(list(argv)))
    result, _ = run_host(script, sdk_env(home, **env))
    assert result.returncode == 0, result.stderr
    return result


def test_unknown_app_is_dropped_kept_in_the_state_and_shown_in_status(tmp_path: Path, app_server: Any) -> None:
    seed_notice_shown(tmp_path, APP)
    first = run(tmp_path, app_server.url)
    assert first.stdout == "delivered False\n" and first.stderr == "", "never printed outside debug"
    rejected = app_server.metric("footfall_events_rejected_total", protocol="native", reason="unknown_app")
    assert rejected == 3, "one attempt: a final refusal is not retried"
    state = json.loads((tmp_path / "footfall" / f"{APP}.json").read_text())
    assert state["collector_refusal"]["code"] == "unknown_app"
    spool = tmp_path / "footfall" / f"{APP}.spool"
    assert not spool.exists() or not any(spool.glob("batch-*")), "a refused batch is not kept for later"

    status = run(tmp_path, app_server.url, "status")
    assert SENTENCE + " Until it takes a batch, nothing arrives." in status.stdout

    debug = run(tmp_path, app_server.url, FOOTFALL_DEBUG="1")
    assert debug.stderr.count("does not know the app") == 1, debug.stderr
    assert f"footfall: an earlier run: {SENTENCE}" in debug.stderr
    assert app_server.metric("footfall_events_rejected_total", protocol="native", reason="unknown_app") == 3

    app_server.store.add_app(APP)  # the maintainers register it: the next batch is taken
    assert run(tmp_path, app_server.url).stdout == "delivered True\n"
    assert "collector_refusal" not in json.loads((tmp_path / "footfall" / f"{APP}.json").read_text())
    assert "does not know" not in run(tmp_path, app_server.url, "status").stdout


def test_a_refusal_is_printed_once_per_run_in_debug(tmp_path: Path, app_server: Any) -> None:
    # A tool that passes its own HTTP transport sees the refusal while FOOTFALL_DEBUG is on.
    script = textwrap.dedent(
        f"""
        import footfall
        from footfall.transport import HttpTransport
        from footfall.delivery import Recorder
        from footfall.batch import BatchBuilder
        from footfall.spool import Spool
        from footfall.state import ToolState
        state = ToolState({str(tmp_path)!r}, "stranger-tool")
        builder = BatchBuilder("stranger-tool", "1.0", state, "random", "tag", None, None)
        recorder = Recorder(builder, HttpTransport({app_server.url!r}), Spool(state.spool_dir), 100, 0.25, state)
        for _ in range(3):
            recorder.track("command", {{"command": "build"}})
            recorder.flush(10)
        """
    )
    result, _ = run_host(script, sdk_env(tmp_path, FOOTFALL_DEBUG="1"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(SENTENCE) == 1, result.stderr
    assert app_server.metric("footfall_events_rejected_total", protocol="native", reason="unknown_app") == 3
