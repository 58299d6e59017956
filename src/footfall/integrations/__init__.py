"""Integrations with command-line frameworks and tools.

Each records the `command` event: the command path, the names of the options used
(never their values), the duration in buckets, and the outcome: "ok", "exit:<code>"
for a non-zero exit code, or the error's type name only (footfall.integrations.invocation).
Each also mounts the ready-made `analytics` command in one line.

    footfall.integrations.argparse   standard library
    footfall.integrations.click      needs click
    footfall.integrations.typer      needs typer
    footfall.integrations.locust     a Locust plugin

`import footfall` imports none of these.
"""
