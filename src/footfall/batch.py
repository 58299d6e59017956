"""The exact native v1 payload (contract/native-v1.md), built from queued items.

Each event is cleaned through the tool's schema (or the untyped rules) and its
`before_send`; the context (install id, platform, environment) is built on first use.
"""

from __future__ import annotations

import os
import time

from footfall.context import detect_context
from footfall.errors import debug, debug_enabled
from footfall.patterns import compiled
from footfall.schema import PARTLY_SENT, Schema, clean_without_schema

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from footfall.schema import Drops
    from footfall.state import ToolState

    BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]
    Item = tuple[str, float, dict[str, object]]

EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_.:-]{0,63}$"


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
            # Once the user turned analytics off, or in a run that may not send, nothing makes an
            # id: not this batch, not a preview (ToolState decides).
            install = self._state.install_id() if self._identity == "random" else None
            self._context = {
                "install": install,
                "session": self.session,
                "app_version": self.app_version,
                **detected,
            }
        return self._context

    def new_identity(self) -> None:
        """After a forget or `analytics off`: later batches carry the state's new install id (or
        none) and a new run id."""
        self.session = os.urandom(16).hex()
        self._context = None

    def clean(self, name: str, props: dict[str, object], drops: Drops | None = None) -> dict[str, Any] | None:
        """The properties to send, or None to drop the event. With `drops` (FOOTFALL_DEBUG),
        each property left out is printed with the reason, never with its value."""
        if not isinstance(name, str) or not compiled(EVENT_NAME_PATTERN).match(name):
            debug(f"dropped event {name!r}: names are lowercase identifiers")
            return None
        if self._schema is not None:
            cleaned = self._schema.clean(name, props, drops)
            if cleaned is None:
                debug(f"dropped event {name!r}: it is not declared in the schema")
                return None
        else:
            cleaned = clean_without_schema(name, props, drops)
        return cleaned

    def build(self, items: list[Item], dropped: int = 0) -> dict[str, Any] | None:
        """The batch to send, or None when every event was dropped."""
        events = []
        explain = debug_enabled()  # the reasons cost a little: worked out only to be printed
        dropped_props = dropped_events = 0
        for name, moment, props in items:
            drops: Drops | None = [] if explain else None
            cleaned = self.clean(name, props, drops)
            for key, reason in drops or ():
                if reason.startswith(PARTLY_SENT):
                    debug(f"event {name!r}: property {key!r} {reason}")
                else:
                    debug(f"event {name!r}: dropped property {key!r}: {reason}")
                    dropped_props += 1
            if cleaned is None:
                dropped_events += 1
                continue
            event: dict[str, Any] = {"name": name, "time": format_time(moment), "props": cleaned}
            kept: dict[str, Any] | None = event
            if self._before_send is not None:
                try:
                    kept = self._before_send(event)
                except Exception as exc:
                    debug(f"before_send raised {type(exc).__name__}; the event was dropped")
                    kept = None
            if kept is not None:
                events.append(kept)
            else:
                debug(f"dropped event {name!r}: before_send dropped it")
                dropped_events += 1
        if explain:
            debug(
                f"{len(events)} of {len(items)} events kept; {dropped_events} events and {dropped_props}"
                f' properties were dropped before sending, each named above. The batch\'s "dropped": {dropped}'
                " counts only events lost to a full queue."
            )
        if not events:
            return None
        return {"app": self.app, "context": self.context(), "dropped": dropped, "events": events}
