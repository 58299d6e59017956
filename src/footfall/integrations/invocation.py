"""Timing one command and recording it, shared by every CLI integration."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from footfall.errors import no_throw
from footfall.schema import duration_bucket


def outcome_of(exc: BaseException | None) -> str:
    """ "ok", or the error's type name; never its message."""
    if exc is None:
        return "ok"
    code = getattr(exc, "code", getattr(exc, "exit_code", None))
    if isinstance(exc, SystemExit) or type(exc).__name__ == "Exit":
        return "ok" if code in (0, None) else "exit"
    return type(exc).__name__


class CommandRecorder:
    """`with CommandRecorder(client, "remote add", ["--force"]):` around the command body."""

    def __init__(self, client: Any, path: str, options: list[str]) -> None:
        self.client = client
        self.path = path.lower() or "main"
        self.options = sorted(set(options))
        self.started = 0.0

    def __enter__(self) -> CommandRecorder:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._record(exc)  # never swallows the host's exception

    @no_throw()
    def _record(self, exc: BaseException | None) -> None:
        self.client.track(
            "command",
            command=self.path,
            options=self.options,
            duration=duration_bucket(time.perf_counter() - self.started),
            outcome=outcome_of(exc),
        )
