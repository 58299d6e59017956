"""typer: record each command, and mount `analytics on|off|status|preview|forget`.

footfall.integrations.typer.add_analytics_command(app, analytics)
footfall.integrations.typer.instrument(app, analytics)
"""

from __future__ import annotations

import enum
from typing import Any

import typer

from footfall.commands import COMMAND_HELP, run_analytics_command
from footfall.integrations.click import track_callback

try:  # typer 0.2x vendors its own click
    from typer._click.globals import get_current_context
except ImportError:  # older typer runs on click itself
    from click import get_current_context  # type: ignore[no-redef,unused-ignore]


class AnalyticsAction(str, enum.Enum):
    on = "on"
    off = "off"
    status = "status"
    preview = "preview"
    forget = "forget"


def instrument(app: typer.Typer, client: Any) -> typer.Typer:
    """Record every command of `app` and of the typer apps added to it."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = track_callback(info.callback, client, get_current_context)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            instrument(group.typer_instance, client)
    return app


def add_analytics_command(app: typer.Typer, client: Any, name: str = "analytics") -> None:
    def analytics(action: AnalyticsAction) -> None:
        code = run_analytics_command(client, action.value)
        if code:
            raise typer.Exit(code)

    app.command(name, help=COMMAND_HELP)(analytics)
