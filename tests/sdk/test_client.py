from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import footfall
from footfall.client import clean_props
from tests.conftest import GOLDEN_APP, REPO, load_golden

VOLATILE_CONTEXT = ("session", "platform", "environment")


def normalise(batch: dict[str, Any]) -> dict[str, Any]:
    """Blank the values that differ per run and per machine, after checking their shape."""
    copy = json.loads(json.dumps(batch))
    context = copy["context"]
    assert isinstance(context["session"], str) and len(context["session"]) == 32
    context["session"] = "<session>"
    for section in ("platform", "environment"):
        assert all(isinstance(v, str) for v in context[section].values())
        context[section] = sorted(context[section])
    for event in copy["events"]:
        assert event["time"].endswith("Z")
        event["time"] = "<time>"
    return copy


def sdk_client(tmp_path: Path, **options: Any) -> tuple[footfall.Client, footfall.MemoryTransport]:
    transport = footfall.MemoryTransport()
    client = footfall.init(
        app=GOLDEN_APP,
        endpoint="http://unused.invalid",
        transport=transport,
        state_dir=tmp_path,
        **options,
    )
    assert isinstance(client, footfall.Client)
    return client, transport


def test_sdk_emits_the_golden_command_batch(tmp_path: Path, clean_env: None) -> None:
    golden = load_golden("batch-command.json")
    install = golden["context"]["install"]
    (tmp_path / f"{GOLDEN_APP}.json").write_text(json.dumps({"install_id": install}))
    client, transport = sdk_client(tmp_path, app_version="1.4.0")

    client.track("start")
    client.track("command", **golden["events"][1]["props"])
    assert client.flush(timeout=5)

    assert len(transport.batches) == 1
    assert normalise(transport.batches[0]) == normalise(golden)


def test_sdk_emits_the_golden_minimal_batch_without_an_id(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, identity="none")
    client.track("start")
    assert client.flush(timeout=5)
    assert normalise(transport.batches[0]) == normalise(load_golden("batch-minimal.json"))
    assert not (tmp_path / f"{GOLDEN_APP}.json").exists(), "no-id mode must not write an id"


def test_install_id_is_random_and_kept_between_runs(tmp_path: Path, clean_env: None) -> None:
    ids = []
    for _ in range(2):
        client, transport = sdk_client(tmp_path)
        client.track("start")
        assert client.flush(timeout=5)
        ids.append(transport.batches[0]["context"]["install"])
    assert ids[0] == ids[1]
    assert len(ids[0]) == 32 and int(ids[0], 16) >= 0
    other, transport = sdk_client(tmp_path / "elsewhere")
    other.track("start")
    assert other.flush(timeout=5)
    assert transport.batches[0]["context"]["install"] != ids[0]


def test_session_is_shared_by_a_run_and_new_for_the_next(tmp_path: Path, clean_env: None) -> None:
    first, transport = sdk_client(tmp_path)
    first.track("a")
    assert first.flush(5)
    first.track("b")
    assert first.flush(5)
    second, transport2 = sdk_client(tmp_path)
    second.track("a")
    assert second.flush(5)
    sessions = [b["context"]["session"] for b in transport.batches]
    assert sessions[0] == sessions[1] != transport2.batches[0]["context"]["session"]


def test_unsupported_props_are_dropped_before_sending() -> None:
    props = {"ok": "x" * 500, "n": 3, "nested": {"a": 1}, "obj": object(), "opts": ["--a", 1]}
    cleaned = clean_props(props)
    assert cleaned == {"ok": "x" * 200, "n": 3}


def test_do_not_track_gives_a_null_client(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    client = footfall.init(
        app="x", endpoint="http://unused.invalid", transport=footfall.MemoryTransport()
    )
    assert isinstance(client, footfall.NullClient)
    client.track("anything", a=1)
    assert client.flush(1) is True


def test_init_never_raises_even_for_bad_options(clean_env: None) -> None:
    client = footfall.init(app="x", endpoint="http://x", identity="fingerprint")
    assert isinstance(client, footfall.NullClient)


class ExplodingTransport(footfall.Transport):
    def send(self, batch: dict[str, Any]) -> bool:
        raise RuntimeError("boom")


def test_a_failing_transport_never_reaches_the_host(tmp_path: Path, clean_env: None) -> None:
    client = footfall.init(
        app="x", endpoint="http://x", transport=ExplodingTransport(), state_dir=tmp_path
    )
    client.track("a")
    assert client.flush(timeout=5) is False, "an undelivered event must make flush report False"
    client.track("b")
    assert client.flush(timeout=5) is False


def test_a_full_queue_drops_and_counts(tmp_path: Path, clean_env: None) -> None:
    release = threading.Event()

    class SlowTransport(footfall.MemoryTransport):
        def send(self, batch: dict[str, Any]) -> bool:
            release.wait(5)
            return super().send(batch)

    transport = SlowTransport()
    client = footfall.init(
        app="x", endpoint="http://x", transport=transport, state_dir=tmp_path, queue_size=5
    )
    for _ in range(50):
        client.track("a")
    release.set()
    assert client.flush(timeout=5)
    delivered = len(transport.events)
    assert 5 <= delivered < 50
    client.track("after")
    assert client.flush(timeout=5)
    assert transport.batches[-1]["dropped"] == 50 - delivered


def test_debug_mode_prints_the_payload_and_sends_nothing(tmp_path: Path) -> None:
    script = f"""
import footfall
c = footfall.init(app="dbg", endpoint="http://127.0.0.1:9", state_dir={str(tmp_path)!r})
c.track("command", command="build")
print("flushed", c.flush(5))
"""
    env = {**os.environ, "FOOTFALL_DEBUG": "1"}
    env.pop("DO_NOT_TRACK", None)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout == "flushed True\n"
    assert '"command": "build"' in result.stderr
    assert result.stderr.startswith("footfall: would send ")


def test_fork_child_starts_its_own_worker(tmp_path: Path, clean_env: None) -> None:
    client, _ = sdk_client(tmp_path)
    client.track("parent")
    assert client.flush(5)
    pid = os.fork()
    if pid == 0:  # the child: its events must be delivered by its own thread
        child_transport = footfall.MemoryTransport()
        client._transport = child_transport
        client.track("child")
        os._exit(0 if client.flush(5) and child_transport.events[0]["name"] == "child" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def black_hole() -> tuple[socket.socket, int]:
    """A server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def test_exit_is_bounded_and_silent_when_the_server_hangs(tmp_path: Path) -> None:
    sock, port = black_hole()
    script = textwrap.dedent(f"""
        import footfall
        c = footfall.init(app="hang", endpoint="http://127.0.0.1:{port}",
                          state_dir={str(tmp_path)!r})
        for i in range(10):
            c.track("command", n=i)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "FOOTFALL_DEBUG")}
    try:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            cwd=REPO,
        )
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""
    # The exit waits at most 0.25 s for delivery; 3 s would mean the 3 s socket timeout was hit.
    assert elapsed < 2.5, f"exit took {elapsed:.2f}s"
