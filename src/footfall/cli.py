"""The `footfall` command. `disclose` and `--version` need only the SDK; the rest needs `footfall[server]`.

An SDK-only install (`pip install footfall`) puts this command on PATH too: without the server
it explains itself (exit 0 for `--help`, 1 for anything else) instead of failing on an import.
"""

from __future__ import annotations

import sys

from footfall import __version__
from footfall.disclosure import disclose_main

EXIT_NO_SERVER = 1
SERVER_MISSING = "the server is not installed: pip install 'footfall[server]'"
SDK_HELP = f"""usage: footfall [--help] [--version] COMMAND ...

Self-hostable, anonymous, aggregate usage analytics for open-source tools.

With the SDK alone (this install):
  disclose     write a tool's ANALYTICS.md from its footfall.init options
  --version    print footfall's version

Every other command (serve, app, report, backup, restore, user, token, ...) runs the
collector and dashboard: {SERVER_MISSING}
"""


def server_is_missing(exc: ImportError) -> bool:
    # A missing third-party package is the SDK-only install; a broken import inside Footfall is a bug.
    return not (exc.name or "footfall").startswith("footfall")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["disclose"]:
        return disclose_main(args[1:])
    if args[:1] == ["--version"]:
        print(f"footfall {__version__}")
        return 0
    try:
        from footfall.server.operator.cli import main as server_main
    except ImportError as exc:
        if not server_is_missing(exc):
            raise
        if args[:1] in (["--help"], ["-h"]):
            print(SDK_HELP, end="")
            return 0
        print(f"footfall: {SERVER_MISSING} ({exc.name} is missing)", file=sys.stderr)
        return EXIT_NO_SERVER
    return server_main(args)


if __name__ == "__main__":
    sys.exit(main())
