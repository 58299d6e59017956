"""The `footfall` command. `disclose` needs only the SDK; the rest needs `footfall[server]`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Any

from footfall.disclosure import disclose


def load_options(target: str) -> dict[str, Any]:
    """`path/to/file.py:NAME` or `package.module:NAME` -> the dict of init options."""
    location, _, name = target.rpartition(":")
    if not location or not name:
        raise ValueError(f"{target!r} must look like FILE.py:NAME or MODULE:NAME")
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
    parser.add_argument("target", help="FILE.py:NAME or MODULE:NAME, a dict of footfall.init options")
    parser.add_argument("--command", help="the tool's analytics command, e.g. 'mytool analytics'")
    parser.add_argument("--out", help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        page = disclose(load_options(args.target), command=args.command)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(page)
        else:
            sys.stdout.write(page)
    except (OSError, ValueError, ImportError, SyntaxError) as exc:
        print(f"footfall: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["disclose"]:
        return disclose_main(args[1:])
    try:
        from footfall.server.cli import main as server_main
    except ImportError as exc:
        print(
            f"footfall: the server commands need extra packages ({exc.name} is missing).\n"
            "Install them with: pip install 'footfall[server]'",
            file=sys.stderr,
        )
        return 2
    return server_main(args)


if __name__ == "__main__":
    sys.exit(main())
