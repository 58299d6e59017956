"""The `footfall` command. The server commands need the `footfall[server]` extra."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from footfall.server.cli import main as server_main
    except ImportError as exc:
        print(
            f"footfall: the server commands need extra packages ({exc.name} is missing).\n"
            "Install them with: pip install 'footfall[server]'",
            file=sys.stderr,
        )
        return 2
    return server_main(argv)


if __name__ == "__main__":
    sys.exit(main())
