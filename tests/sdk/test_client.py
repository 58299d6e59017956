from __future__ import annotations

import json
import os
import textwrap
import threading
from pathlib import Path
from typing import Any

import footfall
from tests.conftest import GOLDEN_APP, load_golden, run_host, sdk_env, seed_notice_shown


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
        assert event["time"].endswith("Z") and len(event["time"]) == 24
        event["time"] = "<time>"
    return copy


def sdk_client(state: Path, app: str = GOLDEN_APP, **options: Any) -> tuple[footfall.Client, footfall.MemoryTransport]:
    """A client whose user has already seen the notice, delivering into memory."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / f"{app}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**saved, "notice_version": 1}))
    transport = footfall.MemoryTransport()
    client = footfall.init(app=app, endpoint="http://unused.invalid", transport=transport, state_dir=state, **options)
    assert isinstance(client, footfall.Client) and client.enabled, client.decision
    return client, transport


def test_sdk_emits_the_golden_command_batch(tmp_path: Path, clean_env: None) -> None:
    golden = load_golden("batch-command.json")
    (tmp_path / f"{GOLDEN_APP}.json").write_text(json.dumps({"install_id": golden["context"]["install"]}))
    client, transport = sdk_client(tmp_path, app_version="1.4.0")

    client.track("start", mode="release", jobs=4, cached=True, ratio=0.5)
    client.track("command", command="build", options=["--jobs", "--fast"], duration="1-10s", outcome="ok")
    assert client.flush(timeout=5)

    assert len(transport.batches) == 1
    assert normalise(transport.batches[0]) == normalise(golden)


def test_sdk_emits_the_golden_minimal_batch_without_an_id(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path, identity="none")
    client.track("start")
    assert client.flush(timeout=5)
    assert normalise(transport.batches[0]) == normalise(load_golden("batch-minimal.json"))
    assert "install_id" not in json.loads((tmp_path / f"{GOLDEN_APP}.json").read_text())


def test_install_id_is_random_kept_between_runs_and_per_tool(tmp_path: Path, clean_env: None) -> None:
    ids = []
    for app in (GOLDEN_APP, GOLDEN_APP, "another-tool"):
        client, transport = sdk_client(tmp_path, app=app)
        client.track("start")
        assert client.flush(timeout=5)
        ids.append(transport.batches[0]["context"]["install"])
    assert ids[0] == ids[1] != ids[2]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


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


def test_without_a_schema_free_text_and_identifying_values_stay_home(tmp_path: Path, clean_env: None) -> None:
    client, transport = sdk_client(tmp_path)
    client.track(
        "start",
        mode="fast",
        count=3,
        note="a sentence with spaces",
        email="ann@example.org",
        where="/home/ann/project",
        nested={"a": 1},
        plugins=["cache", "/etc/passwd", "x y"],
    )
    client.track("Not A Name", mode="fast")
    assert client.flush(5)
    assert transport.events == [
        {
            "name": "start",
            "time": transport.events[0]["time"],
            "props": {"mode": "fast", "count": 3, "plugins": ["cache"]},
        }
    ]


def test_with_a_schema_only_declared_events_and_props_leave(tmp_path: Path, clean_env: None) -> None:
    schema = footfall.Schema(
        {
            "start": {
                "mode": footfall.Enum("standalone", "worker"),
                "users": footfall.Integer((1, 10, 100)),
            }
        }
    )
    client, transport = sdk_client(tmp_path, schema=schema)
    client.track("start", mode="worker", users=42, secret="x")
    client.track("start", mode="somewhere-else", users="many")
    client.track("undeclared", a=1)
    client.track("command", command="run", options=["--users"], duration="<1s", outcome="ok", argv="-u 5")
    assert client.flush(5)
    assert [(e["name"], e["props"]) for e in transport.events] == [
        ("start", {"mode": "worker", "users": "10-99"}),
        ("start", {}),
        ("command", {"command": "run", "options": ["--users"], "duration": "<1s", "outcome": "ok"}),
    ]


def test_before_send_can_edit_or_drop_and_its_errors_stay_inside(tmp_path: Path, clean_env: None) -> None:
    def before_send(event: dict[str, Any]) -> dict[str, Any] | None:
        if event["name"] == "drop":
            return None
        if event["name"] == "explode":
            raise RuntimeError("a bug in the tool's callback")
        event["props"]["edited"] = True
        return event

    client, transport = sdk_client(tmp_path, before_send=before_send)
    for name in ("keep", "drop", "explode"):
        client.track(name)
    assert client.flush(5)
    assert [(e["name"], e["props"]) for e in transport.events] == [("keep", {"edited": True})]


def test_init_never_raises_for_bad_options(tmp_path: Path, clean_env: None) -> None:
    for options in (
        {"identity": "fingerprint"},
        {"notice": "never"},
        {"opt_out_env": "NOT A NAME"},
        {"colour": "red"},
    ):
        client = footfall.init(app="x", endpoint="http://x", state_dir=tmp_path, **options)
        assert isinstance(client, footfall.NullClient), options
        client.track("a")
        assert client.flush(1)
    assert isinstance(footfall.init(app="Bad App", endpoint="http://x"), footfall.NullClient)


class ExplodingTransport(footfall.Transport):
    def send(self, batch: dict[str, Any]) -> footfall.SendResult:
        raise RuntimeError("boom")


def test_a_failing_transport_never_reaches_the_host(tmp_path: Path, clean_env: None) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"notice_version": 1}))
    client = footfall.init(app="x", endpoint="http://x", transport=ExplodingTransport(), state_dir=tmp_path)
    client.track("a")
    assert client.flush(timeout=5) is False, "an undelivered event must make flush report False"


def test_a_full_queue_drops_counts_and_reports_in_the_next_batch(tmp_path: Path, clean_env: None) -> None:
    release = threading.Event()

    class SlowTransport(footfall.MemoryTransport):
        def send(self, batch: dict[str, Any]) -> footfall.SendResult:
            release.wait(5)
            return super().send(batch)

    (tmp_path / "x.json").write_text(json.dumps({"notice_version": 1}))
    transport = SlowTransport()
    client = footfall.init(app="x", endpoint="http://x", transport=transport, state_dir=tmp_path, queue_size=5)
    for _ in range(50):
        client.track("a")
    release.set()
    assert client.flush(timeout=5)
    delivered = len(transport.events)
    assert 5 <= delivered < 50
    client.track("after")
    assert client.flush(timeout=5)
    assert sum(b["dropped"] for b in transport.batches) == 50 - delivered


def test_debug_mode_prints_the_payload_and_sends_nothing(tmp_path: Path, collector_stub: Any) -> None:
    stub = collector_stub()
    seed_notice_shown(tmp_path, "dbg")
    script = textwrap.dedent(f"""
        import footfall
        c = footfall.init(app="dbg", endpoint={stub.url!r})
        c.track("command", command="build")
        print("flushed", c.flush(5))
    """)
    result, _ = run_host(script, sdk_env(tmp_path, FOOTFALL_DEBUG="1"))
    assert result.stdout == "flushed True\n"
    assert "\nfootfall: would send {" in result.stderr  # after the line that counts what was dropped
    assert '"command": "build"' in result.stderr
    assert stub.requests == []


def test_fork_child_starts_its_own_worker(tmp_path: Path, clean_env: None) -> None:
    client, _ = sdk_client(tmp_path)
    client.track("parent")
    assert client.flush(5)
    pid = os.fork()
    if pid == 0:  # the child: its events must be delivered by its own thread
        try:
            child_transport = footfall.MemoryTransport()
            client._recorder._transport = child_transport  # type: ignore[union-attr]
            client.track("child")
            ok = client.flush(5) and [e["name"] for e in child_transport.events] == ["child"]
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_ci_send_policy_leaves_the_provider_out(tmp_path: Path, clean_env: None, monkeypatch: Any) -> None:
    monkeypatch.setenv("GITLAB_CI", "true")
    tagged, tagged_transport = sdk_client(tmp_path)
    tagged.track("start")
    assert tagged.flush(5)
    assert tagged_transport.batches[0]["context"]["environment"]["ci"] == "gitlab"
    untagged, untagged_transport = sdk_client(tmp_path, ci="send")
    untagged.track("start")
    assert untagged.flush(5)
    assert untagged_transport.batches[0]["context"]["environment"]["ci"] == ""


def test_a_tool_that_records_nothing_starts_no_thread(tmp_path: Path, clean_env: None) -> None:
    def workers() -> int:
        return sum(t.name == "footfall.worker" for t in threading.enumerate())

    before = workers()
    client, _ = sdk_client(tmp_path)
    assert workers() == before
    client.track("start")
    assert client.flush(5)
    assert workers() == before + 1


def test_off_in_a_running_client_drops_what_is_queued_and_sends_nothing(tmp_path: Path, collector_stub: Any) -> None:
    # Review: `track(); set_enabled(False); flush()` sent the queued event under a new install
    # id, made by the worker while it built the batch context after `off` deleted the old one.
    import time

    stub = collector_stub(mode="ok")
    state = tmp_path / "state"
    state.mkdir()
    (state / f"{GOLDEN_APP}.json").write_text(json.dumps({"notice_version": 1, "install_id": "c" * 32}))
    building, go_on = threading.Event(), threading.Event()

    def hold(event: dict[str, Any]) -> dict[str, Any]:  # runs in the worker thread
        building.set()
        go_on.wait(10)
        return event

    client = footfall.init(app=GOLDEN_APP, endpoint=stub.url, state_dir=state, before_send=hold)
    assert isinstance(client, footfall.Client) and client.enabled, client.decision
    client.track("startup")
    assert building.wait(10)
    client.track("queued")
    assert client.set_enabled(False)
    go_on.set()
    started = time.monotonic()
    assert client.flush(10), "dropped on purpose is not a failure"
    assert time.monotonic() - started < 8, "flush does not wait for the events it dropped"  # generous: shared CPU
    client.track("after")
    assert client.flush(10)
    assert stub.requests == []
    saved = json.loads((state / f"{GOLDEN_APP}.json").read_text())
    assert saved["enabled"] is False and "install_id" not in saved, saved
    preview = client.preview("command")
    assert preview is not None and preview["context"]["install"] is None
    assert "install_id" not in json.loads((state / f"{GOLDEN_APP}.json").read_text())
    assert not (state / f"{GOLDEN_APP}.spool").exists() or not any((state / f"{GOLDEN_APP}.spool").iterdir())


def test_every_init_option_is_documented() -> None:
    import inspect

    from tests.conftest import REPO

    documented = (REPO / "docs" / "sdk.md").read_text()
    missing = [name for name in inspect.signature(footfall.init).parameters if f"| `{name}` |" not in documented]
    assert missing == [], f"add these options to the table in docs/sdk.md: {missing}"
