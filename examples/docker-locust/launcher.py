"""A launcher in the spirit of Docker-Locust's bootstrap, instrumented with Footfall.

Configured by environment variables, as in a container:

    ROLE=standalone|master|worker   TARGET_HOST=http://...   LOCUST_FILE=locustfile.py
    USERS=10  SPAWN_RATE=2  RUN_TIME=1m  (headless when RUN_TIME is set)
    MASTER_HOST=...  EXPECT_WORKERS=2  SEND_ANONYMOUS_USAGE_INFO=false  (opt out)

`python launcher.py --dry-run` prints the Locust command instead of running it.
What it sends is exactly what ANALYTICS.md says: `footfall disclose launcher.py:ANALYTICS`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import footfall

__version__ = "2.0.0"
ROLES = ("standalone", "master", "worker")

ANALYTICS = {
    "app": "docker-locust",
    "endpoint": "https://footfall.example.org",  # FOOTFALL_ENDPOINT overrides it
    "enable_env": "SEND_ANONYMOUS_USAGE_INFO",  # the variable Docker-Locust users already know
    "notice": "every-run",  # a container keeps nothing between runs
    "link": "https://github.com/example/docker-locust/blob/main/ANALYTICS.md",
    "schema": footfall.Schema(
        {
            "launch": {
                "role": footfall.Enum(*ROLES),
                "headless": footfall.Bool(),
                "users": footfall.Integer((1, 10, 100, 1000, 10000)),
                "workers": footfall.Integer((1, 2, 5, 10, 50)),
                "locustfile": footfall.Enum("default", "custom"),
            }
        },
        commands=False,  # the launcher records launches, not commands: its notice says so
    ),
}


def locust_command(env: dict[str, str]) -> list[str]:
    role = env.get("ROLE", "standalone")
    if role not in ROLES:
        raise ValueError(f"ROLE must be one of {', '.join(ROLES)}, not {role!r}")
    command = ["locust", "-f", env.get("LOCUST_FILE", "locustfile.py")]
    if role == "worker":
        if not env.get("MASTER_HOST"):
            raise ValueError("a worker needs MASTER_HOST")
        return [*command, "--worker", "--master-host", env["MASTER_HOST"]]
    if not env.get("TARGET_HOST"):
        raise ValueError("TARGET_HOST is required, e.g. TARGET_HOST=http://app:8080")
    command += ["--host", env["TARGET_HOST"]]
    if role == "master":
        command += ["--master", "--expect-workers", env.get("EXPECT_WORKERS", "1")]
    if env.get("RUN_TIME"):
        command += [
            "--headless",
            "-u",
            env.get("USERS", "10"),
            "-r",
            env.get("SPAWN_RATE", "1"),
            "-t",
            env["RUN_TIME"],
        ]
    return command


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    try:
        command = locust_command(env)
    except ValueError as exc:
        print(f"launcher: {exc}", file=sys.stderr)
        return 2
    endpoint = env.get("FOOTFALL_ENDPOINT", ANALYTICS["endpoint"])
    analytics = footfall.init(**{**ANALYTICS, "endpoint": endpoint}, app_version=__version__)
    users = env.get("USERS", "10")
    analytics.track(
        "launch",
        role=env.get("ROLE", "standalone"),
        headless=bool(env.get("RUN_TIME")),
        users=int(users) if users.isdigit() else 0,
        workers=int(env.get("EXPECT_WORKERS", "1") or 1) if env.get("ROLE") == "master" else 0,
        locustfile="default" if "LOCUST_FILE" not in env else "custom",
    )
    if "--dry-run" in argv:
        print(shlex.join(command))
        return 0
    return subprocess.call(command, env=footfall.child_env())  # Locust itself sends nothing more


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
