"""The SDK's exception boundary: nothing raised inside Footfall reaches the host.

Public entry points wear `@no_throw`; the worker wraps each delivery in
`capture_internal_exceptions()`. Both catch `Exception`, never `BaseException`, so
Ctrl-C and `SystemExit` still work. With `FOOTFALL_DEBUG=1` the swallowed error is
written to stderr as one line; otherwise nothing is written.

Written without functools or contextlib: `import footfall` must stay cheap.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("FOOTFALL_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def debug(message: str) -> None:
    if debug_enabled():
        try:  # noqa: SIM105 - contextlib would cost `import footfall` time
            print(f"footfall: {message}", file=sys.stderr)
        except Exception:
            pass


class capture_internal_exceptions:  # used like a function, as in Sentry
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if isinstance(exc, Exception):
            debug(f"internal error: {type(exc).__name__}: {exc}")
            return True
        return False


def no_throw(default: Any = None, unless: str | None = None) -> Callable[[F], F]:
    """Catch every `Exception` and return `default`; with `unless="strict"`, a call made with
    `strict=True` raises instead (for the tool's own tests, never at run time)."""

    def decorate(function: F) -> F:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                if unless is not None and kwargs.get(unless) is True:
                    raise
                debug(f"internal error in {function.__name__}: {type(exc).__name__}: {exc}")
                return default

        wrapper.__name__ = function.__name__
        wrapper.__qualname__ = function.__qualname__
        wrapper.__doc__ = function.__doc__
        wrapper.__wrapped__ = function  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
