"""A Locust plugin: anonymous usage of Locust's features, for Locust's maintainers.

    # locustfile.py
    import footfall.integrations.locust
    footfall.integrations.locust.install(endpoint="https://footfall.example.org")

It records, through a declared schema (nothing else can leave):
- `start`: the run mode (standalone, master, worker), headless or web UI, the user
  count, spawn rate and run time in buckets, and the names of the CLI options used;
- `stop`: the run mode, how long the run lasted (bucketed) and the outcome.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import footfall
from footfall.integrations.argparse import describe
from footfall.integrations.invocation import exit_outcome
from footfall.schema import DURATION_BUCKETS, duration_bucket

MODES = {"LocalRunner": "standalone", "MasterRunner": "master", "WorkerRunner": "worker"}

LOCUST_SCHEMA = footfall.Schema(
    {
        "start": {
            "mode": footfall.Enum(*MODES.values()),
            "headless": footfall.Bool(),
            "users": footfall.Integer((1, 10, 100, 1000, 10000)),
            "spawn_rate": footfall.Integer((1, 10, 100, 1000)),
            "run_time": footfall.Enum(*DURATION_BUCKETS),
            "options": footfall.OptionNames(),
        },
        "stop": {
            "mode": footfall.Enum(*MODES.values()),
            "duration": footfall.Enum(*DURATION_BUCKETS),
            "outcome": footfall.Identifier(),
        },
    },
    commands=False,  # the plugin records runs, not commands
)


def start_props(environment: Any, argv: list[str]) -> dict[str, Any]:
    options = getattr(environment, "parsed_options", None)
    props: dict[str, Any] = {"mode": MODES.get(type(environment.runner).__name__, "standalone")}
    if options is not None:
        props["headless"] = bool(getattr(options, "headless", False))
        for name, attribute in (("users", "num_users"), ("spawn_rate", "spawn_rate")):
            value = getattr(options, attribute, None)
            if isinstance(value, (int, float)):
                props[name] = int(value)
        run_time = getattr(options, "run_time", None)
        if isinstance(run_time, (int, float)):
            props["run_time"] = duration_bucket(run_time)
    try:
        from locust.argument_parser import get_parser

        props["options"] = describe(get_parser(), argv)[1]
    except Exception:
        props["options"] = []
    return props


def install(endpoint: str, app: str = "locust", **options: Any) -> footfall.Client | footfall.NullClient:
    """Start recording this Locust process; `options` go to `footfall.init`."""
    import locust
    from locust import events

    client = footfall.init(app=app, endpoint=endpoint, app_version=locust.__version__, schema=LOCUST_SCHEMA, **options)
    started = time.monotonic()
    mode = "standalone"

    def on_init(environment: Any, **kwargs: Any) -> None:
        nonlocal mode
        props = start_props(environment, sys.argv[1:])
        mode = props["mode"]
        client.track("start", **props)

    def on_quitting(environment: Any, **kwargs: Any) -> None:
        code = getattr(environment, "process_exit_code", None)
        outcome = exit_outcome(code)  # "ok" or "exit:<code>", as the CLI integrations
        client.track("stop", mode=mode, duration=duration_bucket(time.monotonic() - started), outcome=outcome)
        client.flush(1.0)

    events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
    events.quitting.add_listener(on_quitting)  # type: ignore[no-untyped-call]
    return client
