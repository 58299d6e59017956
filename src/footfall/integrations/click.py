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


def instrument(command: click.Command, client: Any) -> click.Command:
    """Record every leaf command of `command` (a group or a single command)."""
    if isinstance(command, click.Group):
        for child in command.commands.values():
            instrument(child, client)
    elif command.callback is not None:
        command.callback = track_callback(command.callback, client)
    return command


def analytics_command(client: Any, name: str = "analytics") -> click.Command:
    @click.command(name, help=COMMAND_HELP)
    @click.argument("action", type=click.Choice(ACTIONS))
    def analytics(action: str) -> None:
        code = run_analytics_command(client, action)
        if code:
            sys.exit(code)

    return analytics
