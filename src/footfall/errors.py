"""The SDK's exception boundary: nothing raised inside Footfall reaches the host.

Public entry points wear `@no_throw`; the worker wraps each delivery in
`capture_internal_exceptions()`. Both catch `Exception`, never `BaseException`, so
Ctrl-C and `SystemExit` still work. With `FOOTFALL_DEBUG=1` the swallowed error is
written to stderr as one line; otherwise nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("FOOTFALL_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def debug(message: str) -> None:
    if debug_enabled():
        with contextlib.suppress(Exception):
            print(f"footfall: {message}", file=sys.stderr)


@contextlib.contextmanager
def capture_internal_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        debug(f"internal error: {type(exc).__name__}: {exc}")


def no_throw(default: Any = None) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                debug(f"internal error in {function.__name__}: {type(exc).__name__}: {exc}")
                return default

        return wrapper  # type: ignore[return-value]

    return decorate
