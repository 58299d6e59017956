"""click: record each command, and mount `analytics on|off|status|preview|forget`.

footfall.integrations.click.instrument(cli, analytics)
cli.add_command(footfall.integrations.click.analytics_command(analytics))
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from footfall.commands import ACTIONS, COMMAND_HELP, run_analytics_command
from footfall.integrations.invocation import CommandRecorder

_MARK = "__footfall_tracked__"
_ANALYTICS_MARK = "__footfall_analytics__"  # managing analytics is never recorded, not even a typo


def describe(ctx: Any) -> tuple[str, list[str]]:
    """The command path (without the program name) and the options given on the command line.

    Duck-typed, so it serves click and the copy of click that typer vendors alike.
    """
    path = ctx.command_path.split()[1:]
    used: list[str] = []
    current = ctx
    while current is not None:
        for param in current.command.params:
            if param.param_type_name == "option" and param.name is not None:
                source = current.get_parameter_source(param.name)
                if source is not None and source.name == ParameterSource.COMMANDLINE.name:
                    used.append(max(param.opts, key=len))
        current = current.parent
    return " ".join(path), used


def track_callback(
    callback: Callable[..., Any],
    client: Any,
    get_context: Callable[[], Any] = click.get_current_context,
) -> Callable[..., Any]:
    """Wrap one command callback; the signature is kept, so typer can read it too."""
    if getattr(callback, _MARK, False):
        return callback

    @functools.wraps(callback)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        path, options = describe(get_context())
        with CommandRecorder(client, path, options):
            return callback(*args, **kwargs)

    setattr(tracked, _MARK, True)
    return tracked


def track_usage_errors(command: click.Command, client: Any) -> None:
    """Record a leaf command whose arguments click refuses (a bad value, a missing argument,
    an unknown option): its callback never runs, and click exits with 2."""
    parse_args = command.parse_args
    if getattr(parse_args, _MARK, False):
        return

    def parse_args_tracked(ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return parse_args(ctx, args)
        except click.UsageError:
            path, options = describe(ctx)
            with CommandRecorder(client, path, options):
                raise

    setattr(parse_args_tracked, _MARK, True)
    command.parse_args = parse_args_tracked  # type: ignore[method-assign]


def instrument(command: click.Command, client: Any) -> click.Command:
    """Record every leaf command of `command` (a group or a single command)."""
    if isinstance(command, click.Group):
        for child in command.commands.values():
            instrument(child, client)
    elif command.callback is not None and not getattr(command, _ANALYTICS_MARK, False):
        command.callback = track_callback(command.callback, client)
        track_usage_errors(command, client)
    return command


def analytics_command(client: Any, name: str = "analytics") -> click.Command:
    @click.command(name, help=COMMAND_HELP)
    @click.argument("action", type=click.Choice(ACTIONS))
    def analytics(action: str) -> None:
        code = run_analytics_command(client, action)
        if code:
            sys.exit(code)

    setattr(analytics, _ANALYTICS_MARK, True)
    return analytics
