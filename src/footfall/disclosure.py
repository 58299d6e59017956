"""ANALYTICS.md, written from what a tool passes to `footfall.init`: the page can't drift.

    footfall disclose mytool/analytics.py:OPTIONS > ANALYTICS.md
    footfall disclose mytool/cli.py:analytics > ANALYTICS.md

where OPTIONS is the dict of keyword arguments the tool gives `footfall.init`, or
`analytics` the client made at module level by `footfall.init(...)`. The module is read,
not run (footfall.static_options), so none of the tool's own code runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Any

from footfall.client import check_options
from footfall.schema import Schema


def disclose(options: dict[str, Any], command: str | None = None) -> str:
    """The Markdown page for a tool; `command` is its analytics command, e.g. "mytool analytics"."""
    app = options["app"]
    schema: Schema = options.get("schema") or Schema({})
    notice = options.get("notice", "once")
    off = []
    if options.get("opt_out_env"):
        off.append(f"`{options['opt_out_env']}=1` in the environment")
    if options.get("enable_env"):
        off.append(f"`{options['enable_env']}=false` in the environment")
    off.append("`DO_NOT_TRACK=1` in the environment (this turns off every tool that uses Footfall)")
    if command:
        off.append(f"`{command} off`, which also deletes the install id")
    identity = options.get("identity", "random")
    if notice == "every-run":
        when = "A notice on stderr says what is collected, on every run: nothing is kept between runs."
    else:
        when = "The first run prints a notice on stderr and sends nothing; sending starts next run."
    if identity == "random":
        install = (
            "a random id made on first use and kept in the Footfall state file;"
            " the collector stores only a keyed hash of it"
        )
    else:
        install = "nothing: no id is sent"
    endpoint = options.get("endpoint", "their collector")
    lines = [
        f"# Anonymous usage statistics in {app}",
        "",
        f"{app} sends anonymous, aggregate usage statistics to its maintainers ({endpoint}),"
        " so that they can see how, where and when it is used and which features matter."
        " This page lists everything that is sent.",
        "",
        "## Turning it off",
        "",
        *[f"- {way}" for way in off],
        "",
        "When it is off, nothing at all is sent.",
        "",
        "## When it starts",
        "",
        when,
        "",
        "## Sent with every event",
        "",
        "| Field | What is sent |",
        "|---|---|",
        f"| install | {install} |",
        "| session | a random id for this run, hashed by the collector |",
        f"| app version | the version of {app} |",
        "| platform | the OS, its major.minor version, the CPU architecture, Python version |",
        "| environment | the CI provider's name, if any, and the container kind |",
        "| time | when the event happened |",
        "",
        "## Events",
    ]
    for name in sorted(schema.events):
        lines += ["", f"### `{name}`", "", "| Property | What is sent |", "|---|---|"]
        for prop, kind in sorted(schema.events[name].items()):
            lines.append(f"| `{prop}` | {kind.describe()} |")
    lines += [
        "",
        "Anything else is dropped before it leaves the machine. Values that look like an email,"
        " an IP address, a URL with credentials, a file path or a token are refused even where"
        " a property is declared.",
        "",
        "## Never sent",
        "",
        "Names, host names, user names, paths, file contents, command arguments, option values,"
        " error messages, MAC addresses or the kernel build string. The collector uses the IP"
        " address only to derive a country, and does not store it.",
        "",
        "## Your data",
        "",
        "The state file is `~/.config/footfall/" + app + ".json` (`%APPDATA%\\footfall` on Windows,"
        " `~/Library/Application Support/footfall` on macOS)."
        + (f" `{command} forget` asks the collector to delete every event of your install." if command else ""),
        "",
    ]
    return "\n".join(lines)


def load_options(target: str, run_module: bool = False) -> dict[str, Any]:
    """`path/to/file.py:NAME` or `package.module:NAME` -> the dict of init options.

    NAME is the dict of options, or the client made by `footfall.init(...)`. The source is
    read, not run (footfall.static_options); `run_module=True` imports it instead, running
    its module-level code, for options that are not literals.
    """
    location, _, name = target.rpartition(":")
    if not location or not name:
        raise ValueError(f"{target!r} must look like FILE.py:NAME or MODULE:NAME")
    if not run_module:
        from footfall.static_options import read_options, source_path

        return read_options(source_path(location), name)
    if location.endswith(".py"):
        spec = importlib.util.spec_from_file_location("footfall_disclosed", location)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load {location}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    options = getattr(module, name, None)
    if not isinstance(options, dict) or "app" not in options:
        raise ValueError(f"{name} in {location} must be the dict of options given to footfall.init")
    return options


def disclose_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="footfall disclose",
        description="Write a tool's ANALYTICS.md from the options it gives footfall.init.",
    )
    parser.add_argument(
        "target",
        help="FILE.py:NAME or MODULE:NAME: a dict of footfall.init options, or NAME = footfall.init(...)."
        " The source is read, not run",
    )
    parser.add_argument(
        "--import",
        dest="run_module",
        action="store_true",
        help="import the module instead (running its code) to read options that are not literals",
    )
    parser.add_argument(
        "--command",
        help="the tool's analytics command, e.g. 'mytool analytics' (default: the analytics_command option)",
    )
    parser.add_argument("--out", help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        options = load_options(args.target, run_module=args.run_module)
        check_options(options)  # the page is never written from options `init` would refuse
        page = disclose(options, command=args.command or options.get("analytics_command"))
        if args.out:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(page)
        else:
            sys.stdout.write(page)
    except (OSError, ValueError, ImportError, SyntaxError) as exc:
        print(f"footfall: error: {exc}", file=sys.stderr)
        return 1
    return 0
