"""Issue 8: `footfall disclose` imported the tool's module to read its options, so it ran the
tool's module-level code, and it refused the README's own pattern (`analytics =
footfall.init(...)`) because the name held a client, not a dict. It reads the source with
`ast` now: none of the tool's code runs, and an option that is not a literal is a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, sdk_env

TOOL = textwrap.dedent(
    """
    import pathlib
    import footfall
    from footfall import Enum

    __version__ = "1.2.3"
    FORMATS = ("csv", "json")
    pathlib.Path({marker!r}).write_text("the tool's module ran")  # a visible side effect

    analytics = footfall.init(
        app="side-tool",
        endpoint="https://footfall.example.org",
        app_version=__version__,
        opt_out_env="SIDE_TOOL_NO_ANALYTICS",
        analytics_command="side-tool analytics",
        schema=footfall.Schema({{"export": {{"format": Enum(*FORMATS), "rows": footfall.Integer(buckets=(1, 10))}}}}),
        before_send=lambda event: event,
    )
    """
)


def disclose(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall.cli", "disclose", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_disclose_reads_the_readme_pattern_without_running_the_tool(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    tool = tmp_path / "side_tool.py"
    tool.write_text(TOOL.format(marker=str(marker)))
    config = tmp_path / "config"
    result = disclose(f"{tool}:analytics", env=sdk_env(config))
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), "disclose ran the tool's module-level code"
    assert not config.exists(), "nor footfall.init: no notice, no state file"
    page = result.stdout
    assert page.startswith("# Anonymous usage statistics in side-tool\n")
    assert "(https://footfall.example.org)" in page
    assert "- `SIDE_TOOL_NO_ANALYTICS=1` in the environment" in page
    assert "- `side-tool analytics off`, which also deletes the install id" in page
    assert "| `format` | one of `csv`, `json` |" in page
    assert "| `rows` | a range, never the number: `<1`, `1-9`, `10+` |" in page


def test_disclose_finds_a_module_by_name_without_importing_its_package(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    package = tmp_path / "sidepkg"
    package.mkdir()
    (package / "__init__.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('package ran')\n")
    (package / "cli.py").write_text(TOOL.format(marker=str(marker)))
    env = sdk_env(tmp_path / "config", PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO / "src")]))
    result = disclose("sidepkg.cli:analytics", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "# Anonymous usage statistics in side-tool" in result.stdout
    assert not marker.exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('ENDPOINT = "https://f.example.org" + "/x"', "is not a literal"),
        ("import os\nENDPOINT = os.environ['URL']", "`os.environ['URL']` is not a literal"),
    ],
)
def test_an_option_that_is_not_a_literal_is_a_clear_error(tmp_path: Path, line: str, message: str) -> None:
    tool = tmp_path / "computed.py"
    tool.write_text(f'import footfall\n{line}\nanalytics = footfall.init(app="c-tool", endpoint=ENDPOINT)\n')
    result = disclose(f"{tool}:analytics")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"footfall: error: {tool}:")
    assert message in result.stderr and "--import" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_runs_the_module_when_asked(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    tool = tmp_path / "dict_tool.py"
    tool.write_text(
        f"import os, pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        'OPTIONS = {"app": "dict-tool", "endpoint": os.environ.get("URL", "https://f.example.org")}\n'
    )
    assert disclose(f"{tool}:OPTIONS").returncode == 1
    assert not marker.exists()
    result = disclose(f"{tool}:OPTIONS", "--import")
    assert result.returncode == 0, result.stderr
    assert marker.exists() and "# Anonymous usage statistics in dict-tool" in result.stdout


def test_names_that_are_missing_or_not_options_are_clear_errors(tmp_path: Path) -> None:
    tool = tmp_path / "other.py"
    tool.write_text("X = 1\nY = Y\n")
    missing = disclose(f"{tool}:analytics")
    assert missing.returncode == 1
    assert missing.stderr == f"footfall: error: {tool} assigns nothing to 'analytics' at module level\n"
    wrong = disclose(f"{tool}:X")
    assert wrong.returncode == 1 and "must be a dict of options or a footfall.init(...) call" in wrong.stderr
    looping = disclose(f"{tool}:Y")
    assert looping.returncode == 1 and "refers to itself" in looping.stderr
