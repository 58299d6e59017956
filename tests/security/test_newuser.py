"""Found by a new-user trial of the README: a traceback and an unhelpful 401."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.conftest import InThreadServer, footfall_command


def test_a_report_piped_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(
        footfall_command("demo", "--data", str(data), "--scale", "0.05", "--days", "30"),
        check=True,
        capture_output=True,
        timeout=300,
    )
    with subprocess.Popen(
        footfall_command("report", "docker-locust", "--data", str(data), "--report", "all", "--format", "json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as report:
        assert report.stdout is not None and report.stderr is not None
        report.stdout.close()  # like `| head` that has had enough before the report is written
        errors = report.stderr.read().decode()
        assert report.wait(timeout=120) == 0, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors


def test_a_bad_bearer_token_is_told_so(app_server: InThreadServer) -> None:
    answer = httpx.get(app_server.url + "/api/v1/apps", headers={"Authorization": "Bearer ff_revoked_or_made_up"})
    assert answer.status_code == 401
    assert "expired or revoked" in answer.json()["error"]["message"]
    anonymous = httpx.get(app_server.url + "/api/v1/apps")
    assert anonymous.status_code == 401 and "log in" in anonymous.json()["error"]["message"]


def test_app_changes_are_in_the_audit_log(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    schema = tmp_path / "schema.json"
    schema.write_text('{"events": {"start": {"mode": {"type": "enum", "values": ["a", "b"]}}}}')
    for args in (
        ("app", "add", "audited", "--ga-tid", "UA-12345-1"),
        ("app", "schema", "audited", "--file", str(schema)),
    ):
        subprocess.run(footfall_command(*args, "--data", data), check=True, capture_output=True, timeout=60)
    shown = subprocess.run(
        footfall_command("audit", "--json", "--data", data), check=True, capture_output=True, text=True, timeout=60
    )
    entries = [json.loads(line) for line in shown.stdout.splitlines()]  # JSON lines
    actions = {(entry["action"], entry["app"]) for entry in entries}
    assert {("app_add", "audited"), ("schema_set", "audited")} <= actions, entries


def test_the_summary_applies_every_filter(tmp_path: Path) -> None:
    """It printed the unfiltered total for `--country DE` or `--ci only`: a wrong number, exit 0.

    (It then refused those filters; now it applies them, like every named report.)
    """
    data = str(tmp_path / "data")
    subprocess.run(footfall_command("app", "add", "summed", "--data", data), check=True, capture_output=True)
    for flags in (["--country", "DE"], ["--ci", "only"], ["--start", "2026-11-01"], ["--version", "1.0"]):
        result = subprocess.run(
            footfall_command("report", "summed", "--data", data, "--format", "json", *flags),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (flags, result.stdout, result.stderr)
        applied = json.loads(result.stdout)["filters"]
        name, value = flags[0].removeprefix("--"), flags[1]
        assert applied[name] == value, (flags, applied)
    wrong = subprocess.run(
        footfall_command("report", "summed", "--data", data, "--country", "Germany"), capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "two-letter code" in wrong.stderr and "Traceback" not in wrong.stderr
