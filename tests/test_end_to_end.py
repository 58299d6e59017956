"""SDK in one process → `footfall serve` in another → `footfall report`, all real."""

from __future__ import annotations

import http.client
import json
import random
import string
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from tests.conftest import LiveServer, footfall_command, load_golden, sdk_env, with_fresh_times

CLIENT_SOURCE_IP = "127.0.0.7"  # the test's client connects from here, so it can be grepped for


def sdk_process(url: str, state: Path, events: int) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(f"""
        import footfall
        analytics = footfall.init(app="e2e-tool", endpoint={url!r}, app_version="2.0.1")
        for i in range({events}):
            analytics.track("command", command="build", options=["--fast"], jobs=i % 4)
        analytics.track("error", error="ValueError")
        print("delivered" if analytics.flush(timeout=10) else "not delivered")
    """)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=sdk_env(state),
    )


def report(data: Path) -> dict[str, object]:
    result = subprocess.run(
        footfall_command("report", "e2e-tool", "--format", "json", "--data", str(data)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def post_from(source_ip: str, url: str, batch: dict[str, object]) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source_ip, 0))
    connection.request("POST", "/v1/batch", body=json.dumps(batch), headers={"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


def test_sdk_to_collector_to_report(live_server: LiveServer, tmp_path: Path) -> None:
    added = subprocess.run(
        footfall_command("app", "add", "e2e-tool", "--data", str(live_server.data)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr

    first = sdk_process(live_server.url, tmp_path / "home", events=250)
    assert "e2e-tool collects anonymous usage statistics" in first.stderr  # and sends nothing
    for _ in range(2):  # two more runs from the same home: one install, two sessions
        result = sdk_process(live_server.url, tmp_path / "home", events=250)
        assert result.stdout == "delivered\n" and result.stderr == "", result.stderr

    summary = report(live_server.data)
    assert summary["events"] == 502
    assert summary["installs"] == 1
    assert summary["runs"] == 2
    assert {"name": "command", "events": 500} in summary["top_events"]  # type: ignore[operator]


def test_the_store_holds_neither_the_client_ip_nor_the_raw_install_id(
    live_server: LiveServer,
) -> None:
    subprocess.run(
        footfall_command("app", "add", "golden-tool", "--data", str(live_server.data)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    batch = with_fresh_times(load_golden("batch-command.json"))
    raw_install = uuid.uuid4().hex
    # Stored on purpose; letters only, since hex digits can look like a token or a card number.
    marker = "".join(random.choices(string.ascii_lowercase, k=16))
    batch["context"]["install"] = raw_install
    batch["events"][1]["props"]["marker"] = marker
    assert post_from(CLIENT_SOURCE_IP, live_server.url, batch) == 202
    assert live_server.stop() == 0

    files = [p for p in live_server.data.rglob("*") if p.is_file()]
    blobs = b"".join(p.read_bytes() for p in files) + live_server.log.read_bytes()
    assert marker.encode() in blobs, "positive control: the grep must find a value that is stored"
    assert raw_install.encode() not in blobs
    assert CLIENT_SOURCE_IP.encode() not in blobs
