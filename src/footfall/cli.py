"""The `footfall` command. `disclose` needs only the SDK; the rest needs `footfall[server]`."""

from __future__ import annotations

import sys

from footfall.disclosure import disclose_main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["disclose"]:
        return disclose_main(args[1:])
    try:
        from footfall.server.operator.cli import main as server_main
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
