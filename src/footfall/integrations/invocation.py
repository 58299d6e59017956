"""Timing one command and recording it, shared by every CLI integration.

The `outcome` property says how the command ended, in one of three forms:

    "ok"            it returned, or exited with code 0 (or None)
    "exit:<code>"   it exited with a non-zero code: `sys.exit(2)`, argparse's usage error,
                    click's `ctx.exit(3)`, `typer.Exit(code=1)`, or an argparse `func` that
                    returned 1; `sys.exit("message")` is "exit:1", as Python exits with 1
    "<ErrorType>"   it raised: the exception's type name (`KeyError`, click's `UsageError`,
                    `KeyboardInterrupt`), never its message

so a failure is any outcome other than "ok".
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from footfall.errors import no_throw
from footfall.schema import duration_bucket


def exit_outcome(code: object) -> str:
    """ "ok" for an exit code of 0 or None, else "exit:<code>"; never a message."""
    if code is None or (isinstance(code, int) and not isinstance(code, bool) and code == 0):
        return "ok"
    if isinstance(code, int) and not isinstance(code, bool):
        return f"exit:{code}"
    return "exit:1"  # `sys.exit("some message")`: Python prints it and exits with 1


def outcome_of(exc: BaseException | None, returned: object = None) -> str:
    """How a command ended (see the module docstring); `returned` is what its function returned."""
    if exc is None:
        # Only an int counts as an exit code: a function may return anything else.
        is_code = isinstance(returned, int) and not isinstance(returned, bool)
        return exit_outcome(returned) if is_code else "ok"
    if isinstance(exc, SystemExit):
        return exit_outcome(exc.code)
    if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):  # click's and typer's Exit
        return exit_outcome(exc.exit_code)
    return type(exc).__name__


class CommandRecorder:
    """`with CommandRecorder(client, "remote add", ["--force"]):` around the command body."""

    def __init__(self, client: Any, path: str, options: list[str]) -> None:
        self.client = client
        self.path = path.lower() or "main"
        self.options = sorted(set(options))
        self.started = 0.0
        self.returned: object = None  # what the command's function returned, when known

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
            outcome=outcome_of(exc, self.returned),
        )
