"""The Docker-Locust example: opt-out variable, notice every run, and a truthful ANALYTICS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, sdk_env

EXAMPLE = REPO / "examples" / "docker-locust"


def launch(tmp_path: Path, url: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = sdk_env(tmp_path, FOOTFALL_ENDPOINT=url, TARGET_HOST="http://127.0.0.1:8089", **variables)
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "launcher.py"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_analytics_md_is_generated_from_the_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "footfall.cli", "disclose", f"{EXAMPLE / 'launcher.py'}:ANALYTICS"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (EXAMPLE / "ANALYTICS.md").read_text(), "regenerate it with `footfall disclose`"


def test_every_run_shows_the_notice_and_sends(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    for _ in range(2):
        result = launch(tmp_path, stub.url, ROLE="master", EXPECT_WORKERS="4", RUN_TIME="1m", USERS="250")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("locust -f locustfile.py --host http://127.0.0.1:8089 --master")
        assert "docker-locust collects anonymous usage statistics" in result.stderr
        assert "SEND_ANONYMOUS_USAGE_INFO=false" in result.stderr
        # Issue 8: the notice said "the commands and option names used"; the launcher sends
        # launches, with a role and user counts, and its notice names exactly those.
        notice = " ".join(result.stderr.split())
        assert "- launch: headless, locustfile, role, users (a range, never the number), workers" in notice
        assert "command" not in notice
    props = [e["props"] for e in stub.events]
    assert (
        props
        == [
            {
                "role": "master",
                "headless": True,
                "users": "100-999",
                "workers": "2-4",
                "locustfile": "default",
            }
        ]
        * 2
    )


@pytest.mark.parametrize("value", ["false", "False", "0", "no"])
def test_send_anonymous_usage_info_false_sends_nothing(tmp_path: Path, collector_stub: Any, value: str) -> None:
    stub = collector_stub()
    result = launch(tmp_path, stub.url, SEND_ANONYMOUS_USAGE_INFO=value)
    assert result.returncode == 0 and result.stderr == ""
    assert stub.requests == []


def test_a_bad_role_is_a_clear_error(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    result = launch(tmp_path, stub.url, ROLE="slave")
    assert result.returncode == 2
    assert result.stderr == "launcher: ROLE must be one of standalone, master, worker, not 'slave'\n"
    assert stub.requests == []
