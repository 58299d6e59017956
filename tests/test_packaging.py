"""`import footfall` is the standard library only; the layers keep their rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("path", sorted((PACKAGE / "server" / "stores").glob("*.py")), ids=lambda p: p.name)
def test_stores_know_nothing_about_http(path: Path) -> None:
    for name in imports_of(path):
        assert not name.startswith(("starlette", "uvicorn", "footfall.server.web", "footfall.server.protocols"))


@pytest.mark.parametrize(
    "name",
    [
        "web.py",
        "cli.py",
        "dashboard.py",
        "operations.py",
        "pages.py",
        "api.py",
        "collection.py",
        "charts.py",
        "terminal.py",
    ],
)
def test_edges_use_the_query_layer_not_sql_drivers(name: str) -> None:
    for imported in imports_of(PACKAGE / "server" / name):
        assert not imported.startswith("duckdb"), imported


def test_every_setting_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert settings_markdown() in docs, "regenerate the table with settings_markdown()"
    for setting in SETTINGS:
        assert setting.flag in docs and setting.env in docs, setting.name
