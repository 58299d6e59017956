"""`client.forget()` and `analytics forget`: after a forget, nothing carries the old id.

A new id and a new run id in the running process, no spooled batch with the old id, and the
forget request itself either taken by the collector or kept in the spool until it can be.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import footfall
from footfall.commands import run_analytics_command
from footfall.server.ingest.pipeline import keyed_hash
from tests.conftest import GOLDEN_APP, InThreadServer, wait_until

OLD_ID = "a" * 32


def client_for(state: Path, endpoint: str, install: str | None = OLD_ID) -> footfall.Client:
    """A client whose user has seen the notice, with a known install id."""
    state.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Any] = {"notice_version": 1}
    if install:
        saved["install_id"] = install
    (state / f"{GOLDEN_APP}.json").write_text(json.dumps(saved))
    client = footfall.init(app=GOLDEN_APP, endpoint=endpoint, state_dir=state)
    assert isinstance(client, footfall.Client) and client.enabled, client.decision
    return client


def saved_id(state: Path) -> Any:
    return json.loads((state / f"{GOLDEN_APP}.json").read_text()).get("install_id")


def spool_files(state: Path, prefix: str) -> list[Path]:
    directory = state / f"{GOLDEN_APP}.spool"
    return sorted(p for p in directory.iterdir() if p.name.startswith(prefix)) if directory.exists() else []


def stored(server: InThreadServer) -> list[tuple[str, str]]:
    rows = server.store.query("SELECT install, session FROM events WHERE app = $app", {"app": GOLDEN_APP}).rows
    return [(str(install), str(session)) for install, session in rows]


def install_hash(server: InThreadServer, raw: str) -> str:
    key = bytes.fromhex(json.loads((server.data / "secrets.json").read_text())["install_key"])
    return keyed_hash(key, "install", GOLDEN_APP, raw)


def test_a_running_client_stops_sending_the_forgotten_id(
    tmp_path: Path, clean_env: None, app_server: InThreadServer
) -> None:
    client = client_for(tmp_path, app_server.url)
    for _ in range(3):
        client.track("start")
    assert client.flush(10)
    before = stored(app_server)
    assert {install for install, _ in before} == {install_hash(app_server, OLD_ID)}

    assert client.forget() == "sent"
    assert stored(app_server) == [], "the collector deleted the old id's events"
    new_id = saved_id(tmp_path)
    assert new_id and new_id != OLD_ID

    client.track("start")  # the same process, its context built before the forget
    assert client.flush(10)
    ((install, session),) = stored(app_server)
    assert install == install_hash(app_server, new_id), "the cached context was refreshed"
    assert session not in {s for _, s in before}, "a new run id too: nothing links the two ids"


def test_the_spool_is_purged_and_the_forget_waits_until_the_collector_is_back(
    tmp_path: Path, clean_env: None, collector_stub: Any
) -> None:
    stub = collector_stub(mode="error")
    client = client_for(tmp_path, stub.url)
    client.track("start")
    assert not client.flush(15), "the collector fails: the batch is spooled"
    (other := tmp_path / f"{GOLDEN_APP}.spool" / "batch-00000000000000000001-1-abcdef.json").write_text(
        json.dumps({"app": GOLDEN_APP, "context": {"install": "b" * 32}, "events": []})
    )
    assert len(spool_files(tmp_path, "batch-")) == 2

    assert client.forget() == "queued", "the collector answers 500: the request waits"
    assert spool_files(tmp_path, "batch-") == [other], "only the old id's batch went"
    (waiting,) = spool_files(tmp_path, "forget-")
    assert json.loads(waiting.read_text()) == {"app": GOLDEN_APP, "install": OLD_ID}

    stub.mode = "ok"
    client.track("start")
    assert client.flush(15)
    sent = [(path, json.loads(gzip.decompress(body))) for path, body, _ in stub.requests]
    ids = [(path, b["install"] if path == "/v1/forget" else b["context"]["install"]) for path, b in sent]
    first_forget = ids.index(("/v1/forget", OLD_ID))  # answered 500 by the stub, then kept
    assert ("/v1/batch", OLD_ID) not in ids[first_forget:], "no batch with the old id after the forget"
    assert ids[first_forget + 1 :] == [
        ("/v1/batch", saved_id(tmp_path)),  # the new event, with the new id
        ("/v1/batch", "b" * 32),  # the other install's spooled batch
        ("/v1/forget", OLD_ID),  # the waiting forget request, taken this time
    ]
    assert spool_files(tmp_path, "forget-") == []


def test_a_batch_in_flight_with_the_old_id_is_dropped_not_spooled(
    tmp_path: Path, clean_env: None, collector_stub: Any
) -> None:
    stub = collector_stub(mode="hang")  # accepts and never answers: the SDK's 3 s deadline ends it
    client = client_for(tmp_path, stub.url)
    client.track("start")
    wait_until(lambda: len(stub.requests) == 1, 10, "the batch to be on the wire")

    assert client.forget() == "queued", "the worker is still sending: the forget waits behind it"
    client.flush(15)
    assert len(stub.requests) == 1, "no retry of a batch that carries the forgotten id"
    assert spool_files(tmp_path, "batch-") == [], "and it is not spooled for a later run"
    assert len(spool_files(tmp_path, "forget-")) == 1


def test_forget_requests_left_by_an_earlier_run_are_sent_by_the_next_forget(
    tmp_path: Path, clean_env: None, collector_stub: Any
) -> None:
    down = collector_stub(mode="error")
    assert client_for(tmp_path / "s", down.url).forget() == "queued"
    up = collector_stub(mode="ok")
    client = client_for(tmp_path / "s", up.url, install=saved_id(tmp_path / "s"))
    assert client.forget() == "sent"
    forgets = [json.loads(gzip.decompress(body))["install"] for path, body, _ in up.requests if path == "/v1/forget"]
    assert forgets[0] == OLD_ID and len(forgets) == 2
    assert spool_files(tmp_path / "s", "forget-") == []


def test_forget_without_an_id_has_nothing_to_ask(tmp_path: Path, clean_env: None, collector_stub: Any) -> None:
    stub = collector_stub(mode="ok")
    client = client_for(tmp_path, stub.url, install=None)
    assert client.forget() == "none"
    assert stub.requests == []


def test_a_forget_refused_for_good_is_not_kept(tmp_path: Path, clean_env: None, collector_stub: Any) -> None:
    stub = collector_stub(mode=[400])
    assert client_for(tmp_path, stub.url).forget() == "refused"
    assert spool_files(tmp_path, "forget-") == [] and saved_id(tmp_path) != OLD_ID
    assert os.path.exists(tmp_path / f"{GOLDEN_APP}.json")


# -- write-ahead: a forget the collector has not taken is never lost ---------------------------


def block_the_spool(state: Path, how: str) -> None:
    """Make the spool unable to keep a forget request, as a full or read-only disk would.

    Tests run as root here, where a read-only folder is still writable: a plain file where
    the spool folder should be fails every write the same way.
    """
    spool = state / f"{GOLDEN_APP}.spool"
    if how == "unwritable":
        spool.write_text("not a folder")
        return
    spool.mkdir()
    for n in range(100):  # the cap: MAX_FORGET_FILES requests of earlier runs already wait
        (spool / f"forget-{n:020d}-1-abcdef.json").write_text(json.dumps({"app": GOLDEN_APP, "install": f"{n:032x}"}))


def forgets_sent(stub: Any) -> list[str]:
    return [json.loads(gzip.decompress(body))["install"] for path, body, _ in stub.requests if path == "/v1/forget"]


@pytest.mark.parametrize("how", ["unwritable", "cap-reached"])
def test_a_forget_neither_saved_nor_sent_keeps_the_id_so_a_retry_still_names_it(
    tmp_path: Path, clean_env: None, collector_stub: Any, how: str
) -> None:
    block_the_spool(tmp_path, how)
    down = collector_stub(mode="error")
    client = client_for(tmp_path, down.url)
    out = io.StringIO()
    assert run_analytics_command(client, "forget", out=out) == 1
    assert "keeps its id" in out.getvalue()
    assert saved_id(tmp_path) == OLD_ID, "not rotated: nothing remembers the old id but the id itself"
    assert client.preview()["context"]["install"] == OLD_ID  # type: ignore[index]
    if how == "unwritable":
        assert (tmp_path / f"{GOLDEN_APP}.spool").is_file()
    else:
        assert len(spool_files(tmp_path, "forget-")) == 100, "nothing saved, nothing lost"

    up = collector_stub(mode="ok")  # later, the user tries again
    assert client_for(tmp_path, up.url, install=saved_id(tmp_path)).forget() == "sent"
    assert OLD_ID in forgets_sent(up), "the retry asks for the old id, not a new one"
    assert saved_id(tmp_path) not in (None, OLD_ID)
    if how == "cap-reached":
        assert len(forgets_sent(up)) == 101 and spool_files(tmp_path, "forget-") == []


def test_a_forget_that_cannot_be_saved_but_is_taken_now_rotates_the_id(
    tmp_path: Path, clean_env: None, collector_stub: Any
) -> None:
    block_the_spool(tmp_path, "unwritable")
    stub = collector_stub(mode="ok")
    client = client_for(tmp_path, stub.url)
    assert client.forget() == "sent"
    assert forgets_sent(stub) == [OLD_ID]
    assert saved_id(tmp_path) not in (None, OLD_ID)


def test_the_forget_request_is_on_disk_before_the_id_changes(
    tmp_path: Path, clean_env: None, collector_stub: Any
) -> None:
    """A process killed while asking the collector leaves its request for a later run to send."""
    stub = collector_stub(mode="hang")
    client_for(tmp_path, stub.url)
    script = (
        "import footfall\n"
        f"c = footfall.init(app={GOLDEN_APP!r}, endpoint={stub.url!r}, state_dir={str(tmp_path)!r})\n"
        "c.forget()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTFALL_")}
    host = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_until(lambda: forgets_sent(stub) == [OLD_ID], 30, "the forget request to be on the wire")
    finally:
        host.kill()
        host.wait(30)
    assert saved_id(tmp_path) not in (None, OLD_ID), "the id was rotated ..."
    (held,) = spool_files(tmp_path, "forget-")
    assert json.loads(held.read_text()) == {"app": GOLDEN_APP, "install": OLD_ID}, "... after the request was saved"

    an_hour_ago = time.time() - 3600  # the dead process's claim is stale by now
    os.utime(held, (an_hour_ago, an_hour_ago))
    up = collector_stub(mode="ok")
    assert client_for(tmp_path, up.url, install=saved_id(tmp_path)).forget() == "sent"
    assert forgets_sent(up)[0] == OLD_ID
    assert spool_files(tmp_path, "forget-") == []


def test_a_queued_forget_is_released_for_any_later_run(tmp_path: Path, clean_env: None, collector_stub: Any) -> None:
    down = collector_stub(mode="error")
    assert client_for(tmp_path, down.url).forget() == "queued"
    (waiting,) = spool_files(tmp_path, "forget-")
    assert ".claimed-" not in waiting.name, "not held by a process that has finished with it"


@pytest.mark.parametrize("status", [200, 202])
def test_the_sdk_takes_both_forget_answers(tmp_path: Path, clean_env: None, collector_stub: Any, status: int) -> None:
    """200 is the collector's answer; 202 came from collectors of the previous release."""
    stub = collector_stub(mode=[status])
    assert client_for(tmp_path, stub.url).forget() == "sent"
    assert spool_files(tmp_path, "forget-") == []
