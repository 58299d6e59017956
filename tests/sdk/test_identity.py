from __future__ import annotations

import json
from pathlib import Path

from footfall.identity import config_dir, load_or_create_install_id


def test_config_dir_follows_xdg(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "footfall"


def test_install_id_file_is_created_once(tmp_path: Path) -> None:
    first = load_or_create_install_id("tool", tmp_path)
    assert first is not None
    assert json.loads((tmp_path / "tool.json").read_text()) == {"install_id": first}
    assert load_or_create_install_id("tool", tmp_path) == first


def test_damaged_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "tool.json").write_text("{not json")
    fresh = load_or_create_install_id("tool", tmp_path)
    assert fresh is not None and len(fresh) == 32


def test_a_file_in_the_way_means_no_id(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    assert load_or_create_install_id("tool", blocker / "footfall") is None
