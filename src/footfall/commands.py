"""The ready-made `analytics on|off|status|preview|forget` command, for any CLI framework.

The argparse, click and typer integrations mount it in one line; each calls
`run_analytics_command`. Unlike the rest of the SDK, this prints to stdout: the
user asked for it.
"""

from __future__ import annotations

import json
import sys
from typing import IO

from footfall.client import Client, NullClient
from footfall.transport import refusal_sentence

ACTIONS = ("on", "off", "status", "preview", "forget")
HELP = {
    "on": "turn anonymous usage statistics on",
    "off": "turn them off and delete the install id",
    "status": "say whether they are on, and what decided it",
    "preview": "print an example of the JSON that is sent for a command",
    "forget": "ask the collector to delete this install's data, then start a new id",
}
FORGET_MESSAGES = {
    "sent": "The collector will delete every event of this install; {app} now uses a new id.",
    "queued": (
        "The collector could not be reached: the request to delete this install's events is saved"
        " and will be sent on a later run. {app} already uses a new id."
    ),
    "none": "This install of {app} has no id, so there is nothing to forget.",
    "refused": "The collector refused the request; nothing was deleted there. {app} now uses a new id.",
    "failed": (
        "The request could be neither sent nor saved: the collector is out of reach, and the spool"
        " cannot keep it (a full or read-only disk, or too many requests waiting). Nothing was"
        " deleted and {app} keeps its id, so that trying again later still asks for this install."
    ),
}
COMMAND_HELP = "Anonymous usage statistics: " + ", ".join(ACTIONS) + "."


def run_analytics_command(client: Client | NullClient, action: str, out: IO[str] | None = None) -> int:
    """Carry out one action; returns the exit code for the host command."""
    out = out or sys.stdout
    if not isinstance(client, Client):
        print("Analytics are unavailable: the tool's footfall.init call failed.", file=out)
        return 1
    client.mute()  # the command that manages analytics is never itself recorded
    if action == "on":
        if not client.set_enabled(True):
            print(f"Could not save the setting in {client.state_file}.", file=out)
            return 1
        print(f"Anonymous usage statistics for {client.app} are on from the next run.", file=out)
        if client.decision.layer in ("tool variable", "DO_NOT_TRACK", "run suppression", "CI policy", "endpoint"):
            print(f"Note: {client.decision.reason} still keeps them off.", file=out)
        return 0
    if action == "off":
        if not client.set_enabled(False):
            print(f"Could not save the setting in {client.state_file}.", file=out)
            return 1
        print(
            f"Anonymous usage statistics for {client.app} are off; the install id was deleted.",
            file=out,
        )
        return 0
    if action == "status":
        state = "on" if client.enabled else "off"
        print(f"Anonymous usage statistics for {client.app} are {state} in this run.", file=out)
        print(f"Decided by: {client.decision.layer} ({client.decision.reason}).", file=out)
        refused = client.collector_refusal
        if refused is not None:
            print(f"{refusal_sentence(refused, client.app)} Until it takes a batch, nothing arrives.", file=out)
        print(f"Settings and install id: {client.state_file}", file=out)
        return 0
    if action == "preview":
        batch = client.preview("command", command="analytics preview", options=[], outcome="ok")
        print(json.dumps(batch, indent=2), file=out)
        return 0
    if action == "forget":
        outcome = client.forget()
        message = FORGET_MESSAGES.get(outcome, FORGET_MESSAGES["failed"])
        print(message.format(app=client.app), file=out)
        return 0 if outcome in ("sent", "queued", "none") else 1
    print(f"Unknown action {action!r}; use one of: {', '.join(ACTIONS)}.", file=out)
    return 2
