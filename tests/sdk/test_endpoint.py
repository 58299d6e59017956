"""Issue 8: an endpoint that is not an http(s) URL (`endpoint="htp:/oops"`) was taken as it
was; every batch then failed in the worker, silently. It is a clear error for the tool's own
tests (`strict=True`) and for `footfall disclose`, and at run time it never raises into the
host: nothing is sent, and `analytics status` and FOOTFALL_DEBUG say why."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import footfall
from tests.conftest import run_host, sdk_env, seed_notice_shown

BAD_ENDPOINTS = [
    "htp:/oops",
    "http:/oops",
    "ftp://footfall.example.org",
    "footfall.example.org",
    "https://",
    "https://footfall.example.org/?app=x",
    "https://footfall example.org",
    "https://footfall.example.org:99999",
]


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_strict_init_refuses_an_endpoint_that_is_not_an_http_url(
    tmp_path: Path, clean_env: None, endpoint: str
) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        footfall.init(app="tool", endpoint=endpoint, state_dir=tmp_path, strict=True)


def test_strict_init_refuses_every_bad_option_and_takes_good_ones(tmp_path: Path, clean_env: None) -> None:
    with pytest.raises(ValueError, match="identity"):
        footfall.init(app="tool", endpoint="https://f.example.org", identity="fingerprint", strict=True)
    with pytest.raises(ValueError, match="lowercase id"):
        footfall.init(app="Bad App", endpoint="https://f.example.org", strict=True)
    for endpoint in ("https://footfall.example.org", "http://127.0.0.1:8080/collector/"):
        client = footfall.init(app="tool", endpoint=endpoint, state_dir=tmp_path, strict=True)
        assert isinstance(client, footfall.Client)


STATUS_HOST = textwrap.dedent(
    """
    import footfall
    from footfall.commands import run_analytics_command
    analytics = footfall.init(app="typo-tool", endpoint={endpoint!r})
    analytics.track("command", command="build")
    print("flushed", analytics.flush(2))
    raise SystemExit(run_analytics_command(analytics, "status"))
    """
)


@pytest.mark.parametrize(
    ("endpoint", "why"), [("htp:/oops", "is not an http(s) URL"), ("http:/oops", "has no host name")]
)
def test_at_run_time_a_bad_endpoint_sends_nothing_and_status_says_why(
    tmp_path: Path, collector_stub: Any, endpoint: str, why: str
) -> None:
    seed_notice_shown(tmp_path, "typo-tool")
    result, _ = run_host(STATUS_HOST.format(endpoint=endpoint), sdk_env(tmp_path))
    assert result.returncode == 0 and result.stderr == "", "never raises, never prints outside debug"
    assert "flushed True" in result.stdout
    assert "are off in this run" in result.stdout
    assert f"Decided by: endpoint (endpoint {endpoint!r} {why}" in result.stdout
    assert not (tmp_path / "footfall" / "typo-tool.spool").exists()
    debug, _ = run_host(STATUS_HOST.format(endpoint=endpoint), sdk_env(tmp_path, FOOTFALL_DEBUG="1"))
    assert f"footfall: analytics off (endpoint: endpoint {endpoint!r} {why}" in debug.stderr


def test_disclose_refuses_an_endpoint_that_is_not_an_http_url(tmp_path: Path) -> None:
    module = tmp_path / "typo_tool.py"
    module.write_text('OPTIONS = {"app": "typo-tool", "endpoint": "htp:/oops"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "footfall.cli", "disclose", f"{module}:OPTIONS"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "footfall: error: endpoint 'htp:/oops' is not an http(s) URL, such as https://footfall.example.org\n"
    )
