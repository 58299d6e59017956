"""argparse: record each command, and mount `analytics on|off|status|preview|forget`.

parser = build_parser()
footfall.integrations.argparse.add_analytics_command(subparsers, analytics)
with footfall.integrations.argparse.track_command(analytics, parser) as args:
    args.func(args)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from footfall.commands import ACTIONS, COMMAND_HELP, HELP, run_analytics_command
from footfall.integrations.invocation import CommandRecorder

_ANALYTICS_MARK = "__footfall_analytics__"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every option string of the parser, mapped to the action's longest spelling."""
    names: dict[str, str] = {}
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            canonical = max(action.option_strings, key=len)
            for option in action.option_strings:
                names[option] = canonical
    return names


def describe(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[str, list[str]]:
    """The command path and the names of the options given in `argv`; never values."""
    path: list[str] = []
    used: set[str] = set()
    current = parser
    for token in argv:
        if token == "--":
            break
        if token.startswith("-") and len(token) > 1:
            name = token.split("=", 1)[0]
            known = _option_names(current)
            if name in known:
                used.add(known[name])
            elif not name.startswith("--") and name[:2] in known:  # -vvv, -j4
                used.add(known[name[:2]])
            continue
        subcommands = _subcommands(current)
        if token in subcommands:
            path.append(token)
            current = subcommands[token]
    return " ".join(path), sorted(used)


@contextlib.contextmanager
def track_command(
    client: Any, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> Iterator[argparse.Namespace]:
    """Parse `argv` (default `sys.argv[1:]`) and record the command run in the block.

    The outcome is real (see footfall.integrations.invocation): a usage error is recorded as
    "exit:2" before argparse exits, and when the block calls `args.func(args)` (set with
    `set_defaults(func=...)`), a non-zero int it returns is recorded as "exit:<code>".
    """
    tokens = list(sys.argv[1:] if argv is None else argv)
    path, options = describe(parser, tokens)
    recorder = CommandRecorder(client, path, options)
    try:
        args = parser.parse_args(tokens)
    except SystemExit as exc:
        # `--help` and `--version` are not a use of a command, and a mistyped `analytics of`
        # is managing analytics: the user may be turning them off.
        if exc.code not in (0, None) and not _manages_analytics(parser, tokens):
            with recorder:
                raise
        raise
    function = getattr(args, "func", None)
    if callable(function):
        args.func = _returning_into(recorder, function)
    with recorder:
        yield args


def _manages_analytics(parser: argparse.ArgumentParser, tokens: Sequence[str]) -> bool:
    current = parser
    for token in tokens:
        subcommands = _subcommands(current)
        if token in subcommands:
            current = subcommands[token]
            if getattr(current, _ANALYTICS_MARK, False):
                return True
    return False


def _returning_into(recorder: CommandRecorder, function: Any) -> Any:
    """`function`, which also hands its return value (an exit code, for many tools) to `recorder`."""

    def func(*args: Any, **kwargs: Any) -> Any:
        recorder.returned = function(*args, **kwargs)
        return recorder.returned

    func.__wrapped__ = function  # type: ignore[attr-defined]
    return func


def add_analytics_command(subparsers: Any, client: Any, name: str = "analytics") -> argparse.ArgumentParser:
    """Add `NAME on|off|status|preview|forget`; it sets `args.func` like any subcommand."""
    command: argparse.ArgumentParser = subparsers.add_parser(name, help=COMMAND_HELP, description=COMMAND_HELP)
    command.add_argument("action", choices=ACTIONS, help="; ".join(f"{a}: {HELP[a]}" for a in ACTIONS))
    command.set_defaults(func=lambda args: run_analytics_command(client, args.action))
    setattr(command, _ANALYTICS_MARK, True)
    return command
