"""A host program survives every hostile environment: exit 0, its own stdout only, quickly."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_host, sdk_env, seed_notice_shown

HOST = """
import os, sys
import footfall
analytics = footfall.init(app="hostile", endpoint={url!r}, opt_out_env="HOSTILE_NO_ANALYTICS")
for i in range(50):
    analytics.track("command", command="build", options=["--fast"])
{extra}
print("host done")
"""

FORK = """
pid = os.fork()
if pid == 0:
    analytics.track("command", command="child")
    analytics.flush(1)
    os._exit(0)
os.waitpid(pid, 0)
"""


def host(url: str, extra: str = "") -> str:
    return textwrap.dedent(HOST).format(url=url, extra=extra)


def assert_unharmed(result: Any, elapsed: float) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout == "host done\n"
    assert result.stderr == ""
    assert elapsed < 4.0, f"the host took {elapsed:.2f}s"


@pytest.mark.parametrize("mode", ["ok", "error", "garbage", "hang", "slow"])
def test_whatever_the_collector_does(tmp_path: Path, collector_stub: Any, mode: str) -> None:
    seed_notice_shown(tmp_path, "hostile")
    assert_unharmed(*run_host(host(collector_stub(mode, delay=2.0).url), sdk_env(tmp_path)))


def test_read_only_home(tmp_path: Path, collector_stub: Any) -> None:
    env = sdk_env(tmp_path, HOME="/proc/self", XDG_CONFIG_HOME="/proc/footfall-cannot-write")
    result, elapsed = run_host(host(collector_stub().url), env)
    assert result.returncode == 0 and result.stdout == "host done\n"
    assert "collects anonymous usage statistics" in result.stderr  # shown, but cannot be recorded
    assert elapsed < 4.0


@pytest.mark.parametrize(
    "variables",
    [
        {"DO_NOT_TRACK": "perhaps"},
        {"HOSTILE_NO_ANALYTICS": "\u2603"},
        {"FOOTFALL_DEBUG": "definitely"},
        {"XDG_CONFIG_HOME": ""},
        {"FOOTFALL_SUPPRESS": "\ufffd"},
        {"CI": "\x7f", "GITHUB_ACTIONS": "   "},
    ],
)
def test_garbage_environment_values(tmp_path: Path, collector_stub: Any, variables: dict[str, str]) -> None:
    seed_notice_shown(tmp_path, "hostile")
    env = {**sdk_env(tmp_path), **variables}
    result, elapsed = run_host(host(collector_stub().url), env)
    assert result.returncode == 0 and result.stdout == "host done\n"
    assert elapsed < 4.0


def test_the_spool_cannot_be_written(tmp_path: Path) -> None:
    seed_notice_shown(tmp_path, "hostile")
    (tmp_path / "footfall" / "hostile.spool").write_text("a file where the spool directory should be")
    assert_unharmed(*run_host(host("http://127.0.0.1:9"), sdk_env(tmp_path)))


def test_the_process_forks(tmp_path: Path, collector_stub: Any) -> None:
    seed_notice_shown(tmp_path, "hostile")
    stub = collector_stub()
    assert_unharmed(*run_host(host(stub.url, FORK), sdk_env(tmp_path)))
    names = [e["props"].get("command") for e in stub.events]
    assert names.count("child") == 1 and names.count("build") == 50


def test_the_interpreter_shuts_down_mid_send(tmp_path: Path, collector_stub: Any) -> None:
    seed_notice_shown(tmp_path, "hostile")
    stub = collector_stub("slow", delay=3.0)
    extra = "import time; time.sleep(0.1)  # the first batch is on the wire now"
    assert_unharmed(*run_host(host(stub.url, extra), sdk_env(tmp_path)))
    assert len(stub.requests) >= 1


def test_host_exceptions_still_reach_the_host(tmp_path: Path, collector_stub: Any) -> None:
    seed_notice_shown(tmp_path, "hostile")
    result, _ = run_host(host(collector_stub().url, "raise SystemExit(3)"), sdk_env(tmp_path))
    assert result.returncode == 3 and result.stdout == "" and result.stderr == ""
