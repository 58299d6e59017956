"""From queued items to the collector: build the exact batch, send it, retry, spool.

`BatchBuilder` makes the native v1 payload (contract/native-v1.md), cleaning each
event through the schema and the tool's `before_send`. `Recorder` owns the worker:
it sends with retries for 408, 429 and 5xx (honouring Retry-After), spools what
cannot be delivered, replays the spool once the collector answers again, and at
exit waits a bounded time before spooling the rest.
"""

from __future__ import annotations

import atexit
import os
import re
import time
from collections.abc import Callable
from typing import Any

from footfall.context import detect_context
from footfall.errors import capture_internal_exceptions, debug
from footfall.schema import Schema, clean_without_schema
from footfall.spool import Spool
from footfall.state import ToolState
from footfall.transport import Transport
from footfall.worker import BackgroundWorker, Item

EVENT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
MAX_ATTEMPTS = 3  # per batch, while the process runs
BACKOFF_S = (0.5, 1.0)  # before the second and third attempt
MAX_RETRY_WAIT_S = 5.0  # a longer Retry-After spools the batch for a later run instead

BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def format_time(timestamp: float) -> str:
    millis = int(timestamp * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{millis:03d}Z"


class BatchBuilder:
    def __init__(
        self,
        app: str,
        app_version: str,
        state: ToolState,
        identity: str,
        ci_policy: str,
        schema: Schema | None,
        before_send: BeforeSend | None,
    ) -> None:
        self.app = app
        self.app_version = app_version
        self._state = state
        self._identity = identity
        self._ci_policy = ci_policy
        self._schema = schema
        self._before_send = before_send
        self.session = os.urandom(16).hex()
        self._context: dict[str, Any] | None = None

    def context(self) -> dict[str, Any]:
        if self._context is None:  # built on first use, in the worker thread
            detected = detect_context()
            if self._ci_policy == "send":
                detected["environment"]["ci"] = ""
            install = self._state.install_id() if self._identity == "random" else None
            self._context = {
                "install": install,
                "session": self.session,
                "app_version": self.app_version,
                **detected,
            }
        return self._context

    def clean(self, name: str, props: dict[str, object]) -> dict[str, Any] | None:
        if not isinstance(name, str) or not EVENT_NAME_PATTERN.match(name):
            debug(f"dropped event {name!r}: names are lowercase identifiers")
            return None
        if self._schema is not None:
            cleaned = self._schema.clean(name, props)
            if cleaned is None:
                debug(f"dropped event {name!r}: it is not declared in the schema")
                return None
        else:
            cleaned = clean_without_schema(name, props)
        return cleaned

    def build(self, items: list[Item], dropped: int = 0) -> dict[str, Any] | None:
        """The batch to send, or None when every event was dropped."""
        events = []
        for name, moment, props in items:
            cleaned = self.clean(name, props)
            if cleaned is None:
                continue
            event: dict[str, Any] | None = {
                "name": name,
                "time": format_time(moment),
                "props": cleaned,
            }
            if self._before_send is not None:
                try:
                    event = self._before_send(event)  # type: ignore[arg-type]
                except Exception as exc:
                    debug(f"before_send raised {type(exc).__name__}; the event was dropped")
                    event = None
            if event is not None:
                events.append(event)
        if not events:
            return None
        return {"app": self.app, "context": self.context(), "dropped": dropped, "events": events}


class Recorder:
    def __init__(
        self,
        builder: BatchBuilder,
        transport: Transport,
        spool: Spool,
        queue_size: int,
        exit_timeout: float,
    ) -> None:
        self.builder = builder
        self._transport = transport
        self._spool = spool
        self._spool_may_hold = True  # a previous run may have left batches
        self._exit_timeout = exit_timeout
        self._reported_drops = 0
        self.worker = BackgroundWorker(self._deliver, queue_size=queue_size)
        atexit.register(self._at_exit)

    def track(self, name: str, props: dict[str, object]) -> None:
        self.worker.submit((name, time.time(), props))

    def _new_drops(self) -> int:
        dropped = self.worker.dropped - self._reported_drops
        self._reported_drops = self.worker.dropped
        return dropped

    def send(self, batch: dict[str, Any], attempts: int = MAX_ATTEMPTS) -> str:
        """ "delivered", "rejected" (final; dropped) or "failed" (worth trying later)."""
        for attempt in range(attempts):
            result = self._transport.send(batch)
            if result.delivered:
                return "delivered"
            if not result.retryable:
                debug("the collector refused a batch; it was dropped")
                return "rejected"
            if attempt + 1 < attempts:
                wait = result.retry_after if result.retry_after is not None else BACKOFF_S[attempt]
                if wait > MAX_RETRY_WAIT_S:
                    break
                time.sleep(wait)
        return "failed"

    def _deliver(self, items: list[Item]) -> bool:
        batch = self.builder.build(items, self._new_drops())
        if batch is None:
            return True
        outcome = self.send(batch)
        if outcome == "delivered":
            if self._spool_may_hold:
                replayed_all = True

                def send_once(spooled: dict[str, Any]) -> bool:
                    nonlocal replayed_all
                    ok = self.send(spooled, attempts=1) != "failed"
                    replayed_all = replayed_all and ok
                    return ok

                self._spool.replay(send_once)
                self._spool_may_hold = not replayed_all
            return True
        if outcome == "failed":
            self._spool.save(batch)
            self._spool_may_hold = True
        return False

    def flush(self, timeout: float) -> bool:
        return self.worker.flush(timeout)

    def _at_exit(self) -> None:
        with capture_internal_exceptions():
            if self.worker.flush(self._exit_timeout):
                return
            unsent = self.worker.take_unsent()
            batch = self.builder.build(unsent, self._new_drops()) if unsent else None
            if batch is not None:
                self._spool.save(batch)
                debug(f"the collector was slow; {len(batch['events'])} events wait in the spool")
