"""New-user trial: the SDK left its install id (all anyone needs to ask a collector to
forget an install) and its spooled batches readable by every user of the machine."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from tests.conftest import run_host, sdk_env

HOST = """
import footfall
client = footfall.init(app="files-tool", endpoint={endpoint!r})
client.track("start")
"""


def modes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): oct(stat.S_IMODE(path.stat().st_mode)) for path in [folder, *folder.rglob("*")]
    }


def test_the_sdk_keeps_its_state_and_spool_private(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub(mode="error")  # every delivery fails, so the batch is spooled
    env = sdk_env(tmp_path / "config")
    for _ in range(2):  # the first run shows the notice; the second sends, fails and spools
        result, _ = run_host(HOST.format(endpoint=stub.url), env)
        assert result.returncode == 0, result.stderr
    folder = tmp_path / "config" / "footfall"
    found = modes(folder)
    assert any(name.endswith(".json") for name in found), found
    loose = {
        name: mode
        for name, mode in found.items()
        if mode not in (("0o700",) if (folder / name).is_dir() else ("0o600",))
    }
    assert not loose, found


def test_the_sdk_tightens_folders_and_files_an_older_version_left_open(tmp_path: Path, collector_stub: Any) -> None:
    # Review: the modes applied only to new files; an upgrade kept the old 0755 folders and
    # 0644 batches, readable by every user of the machine.
    import json
    import os

    stub = collector_stub(mode="error")  # the old batch is not replayed, so it stays on disk
    folder = tmp_path / "config" / "footfall"
    spool = folder / "files-tool.spool"
    spool.mkdir(parents=True)
    state_file = folder / "files-tool.json"
    state_file.write_text(json.dumps({"notice_version": 1, "install_id": "b" * 32}))
    old_batch = spool / "batch-00000000000000000001-1-abcdef.json"
    old_batch.write_text(json.dumps({"app": "files-tool", "context": {"install": "b" * 32}, "events": []}))
    os.utime(old_batch)  # fresh: not expired
    for path, mode in ((folder, 0o755), (spool, 0o755), (state_file, 0o644), (old_batch, 0o644)):
        path.chmod(mode)
    result, _ = run_host(HOST.format(endpoint=stub.url), sdk_env(tmp_path / "config"))
    assert result.returncode == 0, result.stderr
    found = modes(folder)
    assert found[str(old_batch.relative_to(folder))] == "0o600", found
    loose = {
        name: mode
        for name, mode in found.items()
        if mode not in (("0o700",) if (folder / name).is_dir() else ("0o600",))
    }
    assert not loose, found
