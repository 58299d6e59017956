"""`import footfall` is the standard library only; the layers keep their rules."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import footfall
from footfall.server.settings import SETTINGS, settings_markdown
from tests.conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "footfall"
SDK_MODULES = [p for p in PACKAGE.glob("*.py") if p.name != "cli.py"]


def test_import_footfall_works_with_no_site_packages() -> None:
    # -S: no site-packages at all, so any third-party import would fail here.
    script = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); import footfall;"
        "c = footfall.init(app='x', endpoint='http://127.0.0.1:9', identity='none',"
        " transport=footfall.MemoryTransport()); c.track('a'); assert c.flush(5); print('ok')"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout == "ok\n", result.stderr


def test_import_footfall_loads_only_standard_library_modules() -> None:
    script = (
        "import sys; before = set(sys.modules); import footfall;print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    third_party = {name.split(".")[0] for name in loaded.stdout.split()} - set(sys.stdlib_module_names) - {"footfall"}
    assert not third_party


def test_import_footfall_defers_everything_heavy() -> None:
    # Threads, queues, JSON, regexes, typing and HTTP load when first needed, not on import.
    script = "import sys; before = set(sys.modules); import footfall; print(' '.join(set(sys.modules) - before))"
    loaded = set(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stdout.split()
    )
    heavy = {
        "threading",
        "queue",
        "json",
        "re",
        "typing",
        "http.client",
        "urllib.request",
        "ssl",
        "platform",
    }
    assert not loaded & heavy


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", SDK_MODULES, ids=lambda p: p.name)
def test_sdk_modules_import_only_the_standard_library_and_the_sdk(path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names or (top == "footfall" and not name.startswith("footfall.server")), name


SERVER = PACKAGE / "server"
# What each layer of the server must not import (docs: ../shared ARCHITECTURE; README's module map).
# The data's path reads top to bottom: operator -> edge -> ingest | query | auth -> stores.
WEB = ("starlette", "uvicorn", "jinja2")
ABOVE = ("footfall.server.edge", "footfall.server.operator", "footfall.server.operations")
LAYER = {name: f"footfall.server.{name}" for name in ("ingest", "query", "auth", "stores")}
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "stores": (*WEB, *ABOVE, LAYER["ingest"], LAYER["query"], LAYER["auth"]),
    "ingest": (*WEB, *ABOVE, "duckdb", LAYER["query"], LAYER["auth"]),
    "query": (*WEB, *ABOVE, "duckdb", LAYER["ingest"], LAYER["auth"]),
    "auth": (*WEB, *ABOVE, "duckdb", LAYER["ingest"], LAYER["query"], LAYER["stores"]),
    "edge": ("duckdb", "uvicorn", "footfall.server.operator", "footfall.server.stores.duckdb"),
    "operator": ("duckdb",),
}
LAYERED = [(layer, path) for layer in FORBIDDEN for path in sorted((SERVER / layer).rglob("*.py"))]


@pytest.mark.parametrize(("layer", "path"), LAYERED, ids=lambda v: v if isinstance(v, str) else v.name)
def test_each_layer_imports_only_what_it_may(layer: str, path: Path) -> None:
    for name in imports_of(path):
        assert not name.startswith(FORBIDDEN[layer]), f"{layer}/{path.name} imports {name}"


def test_every_server_module_sits_in_a_layer_or_is_shared() -> None:
    shared = {
        "__init__.py",
        "settings.py",
        "errors.py",
        "datadir.py",
        "metrics.py",
        "logs.py",
        "operations.py",
        "backups.py",
    }
    loose = {p.name for p in SERVER.glob("*.py")} - shared
    assert not loose, f"put these in a layer, or name them shared here: {sorted(loose)}"
    assert {p.name for p in SERVER.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(FORBIDDEN)


def test_only_the_query_layer_and_the_stores_hold_report_sql() -> None:
    sql = ("SELECT ", "GROUP BY", "DELETE FROM", "INSERT INTO")
    for path in sorted(SERVER.rglob("*.py")):
        layer = path.relative_to(SERVER).parts[0]
        if layer in ("query", "stores", "auth"):  # auth keeps its own SQLite tables
            continue
        text = path.read_text(encoding="utf-8")
        assert not any(word in text for word in sql), f"{path.relative_to(SERVER)} holds SQL"


def test_the_sdk_cli_does_not_import_the_server_at_import_time() -> None:
    # `footfall disclose` works with the SDK alone; the server CLI is imported only when asked for.
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    top_level = {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(name.startswith("footfall.server") for name in top_level)
    assert "footfall.cli" not in imports_of(SERVER / "operator" / "cli.py")


def test_every_setting_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert settings_markdown() in docs, "regenerate the table with settings_markdown()"
    for setting in SETTINGS:
        assert setting.flag in docs and setting.env in docs, setting.name


def build_wheel(into: Path) -> Path:
    """This project's wheel, built from a copy of the sources (the worktree is left untouched)."""
    tree = into / "tree"
    shutil.copytree(SRC, tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    # No build isolation: the test extra brings setuptools, so no network is needed here.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(into), str(tree)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = into.glob("footfall-*.whl")
    return wheel


@pytest.mark.timeout(420)  # a wheel build and a venv: about a minute, far longer on a loaded machine
def test_an_sdk_only_install_has_no_broken_command(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(
            archive.read(name).decode() for name in archive.namelist() if name.endswith(".dist-info/METADATA")
        )
    assert f"Version: {footfall.__version__}\n" in metadata, "footfall.__version__ is the package's version"
    assert "Project-URL: Documentation, " in metadata and "Classifier: Typing :: Typed" in metadata
    assert "Requires-Dist" not in metadata.split("Provides-Extra")[0], "the SDK alone has no dependencies"

    # A venv without the server extra: the wheel alone, whose SDK needs nothing else.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=240,
        # Without PYTHONPATH: a source tree on it (with its egg-info) would look installed to pip.
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
    )
    command = venv / "bin" / "footfall"
    assert command.exists(), "the console script is installed"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    def footfall_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=120, env=env)

    helped = footfall_run("--help")
    assert helped.returncode == 0, helped.stderr
    assert "pip install 'footfall[server]'" in helped.stdout and "disclose" in helped.stdout
    version = footfall_run("--version")
    assert (version.returncode, version.stdout) == (0, f"footfall {footfall.__version__}\n")
    for args in (("serve",), ("backup", "/tmp/x"), ()):
        refused = footfall_run(*args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert "the server is not installed: pip install 'footfall[server]'" in refused.stderr
        assert "Traceback" not in refused.stderr
    disclosed = footfall_run("disclose", "--help")
    assert disclosed.returncode == 0 and disclosed.stdout.startswith("usage: footfall disclose")
    imported = subprocess.run(
        [str(python), "-c", "import footfall; print(footfall.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.stdout == f"{footfall.__version__}\n", imported.stderr


def test_the_version_is_printed_by_the_full_command_too() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "footfall.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (shown.returncode, shown.stdout) == (0, f"footfall {footfall.__version__}\n")
    from footfall.server.operator.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
