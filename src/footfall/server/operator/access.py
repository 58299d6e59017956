"""The access lifecycle on the command line: `user`, `token`, `admin` and `audit`.

Split from `cli` to keep each module to one idea. These commands change
DIR/accounts.sqlite directly, which is safe while `footfall serve` runs: the server
reads accounts, tokens, sessions and the admin token afresh on every request, so a
revocation takes effect at once. Every change is written to the audit log.

What these commands print from the database (emails, token names, audit details)
may have been typed by anyone at the login form, so it is printed with control
characters escaped and never as rich markup.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from footfall.server.auth.accounts import LOCAL_ADMIN, MAX_EXPIRES_DAYS, ROLES, TOKEN_ID_CHARS, AccountStore
from footfall.server.datadir import DataDir
from footfall.server.errors import UsageError
from footfall.server.operator.control import find_server, local_accounts, open_operations, store_chosen
from footfall.server.operator.terminal import say, visible_controls
from footfall.server.settings import absolute_url, resolve_settings, resolve_store

DEFAULT_TOKEN_DAYS = 90
MAX_AUDIT_LIMIT = 100_000


def cell(text: str) -> Text:
    """A table cell: plain text (no markup), escaped, wrapped rather than cut."""
    return Text(visible_controls(text), overflow="fold")


def shown_time(moment: dt.datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(sep=" ", timespec="seconds")


def add_access_commands(commands: Any, common: argparse.ArgumentParser, parser_class: type[Any]) -> None:
    """Add the `user`, `token`, `admin` and `audit` commands to the `footfall` parser."""
    user = commands.add_parser("user", help="manage who can read", description="Manage accounts and roles.")
    user_commands = user.add_subparsers(dest="user_command", metavar="ACTION", parser_class=parser_class)
    user_commands.required = True
    user_add = user_commands.add_parser(
        "add",
        parents=[common],
        help="add an account or give it a role",
        description="Add an account, or give an account a role on a registered app.",
    )
    user_add.add_argument("email")
    user_add.add_argument(
        "--role",
        required=True,
        choices=["admin", *ROLES],
        help="admin (every app; no --app), or owner, maintainer or viewer of --app",
    )
    user_add.add_argument("--app", help="the app the role is on (it must be registered)")
    user_add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user_list = user_commands.add_parser(
        "list", parents=[common], help="list accounts and their roles", description="List accounts and their roles."
    )
    user_list.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    user_remove = user_commands.add_parser(
        "remove",
        parents=[common],
        help="remove an account",
        description="Remove an account with its roles, API tokens and sessions.",
    )
    user_remove.add_argument("email")
    passwd = user_commands.add_parser(
        "passwd",
        parents=[common],
        help="set an account's password; ends its sessions",
        description="Set an account's password. Every session of the account ends; its API tokens stay "
        "(revoke them with `footfall token revoke`).",
    )
    passwd.add_argument("email")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove_role = user_commands.add_parser(
        "remove-role",
        parents=[common],
        help="take away a role",
        description="Take away an account's role on an app, or its admin rights.",
    )
    remove_role.add_argument("email")
    which = remove_role.add_mutually_exclusive_group(required=True)
    which.add_argument("--app", help="the app whose role goes")
    which.add_argument("--admin", action="store_true", help="take away admin rights")

    token = commands.add_parser("token", help="manage API tokens", description="Create, list and revoke API tokens.")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", parser_class=parser_class)
    token_commands.required = True
    token_create = token_commands.add_parser(
        "create",
        parents=[common],
        help="create a bearer token for an account",
        description="Create a bearer token; it is printed once, as the last line.",
    )
    token_create.add_argument("email")
    lifetime = token_create.add_mutually_exclusive_group()
    lifetime.add_argument(
        "--expires-days",
        type=int,
        default=DEFAULT_TOKEN_DAYS,
        metavar="N",
        help=f"days until it expires, 1 to {MAX_EXPIRES_DAYS} (default {DEFAULT_TOKEN_DAYS})",
    )
    lifetime.add_argument("--no-expiry", action="store_true", help="valid until revoked")
    token_create.add_argument("--name", default="", help="a label, e.g. what uses the token")
    token_list = token_commands.add_parser(
        "list",
        parents=[common],
        help="list tokens (never their secrets)",
        description="List API tokens by public id, with their expiry and last use.",
    )
    token_list.add_argument("email", nargs="?", help="only this account's tokens")
    token_list.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    token_revoke = token_commands.add_parser(
        "revoke",
        parents=[common],
        help="revoke a token by its id",
        description="Revoke a token by the id `footfall token list` shows; it stops working at once.",
    )
    token_revoke.add_argument("id")

    admin = commands.add_parser(
        "admin", help="the local admin's token and login links", description="The local admin's credentials."
    )
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ACTION", parser_class=parser_class)
    admin_commands.required = True
    admin_commands.add_parser(
        "rotate",
        parents=[common],
        help="replace the local admin token",
        description="Replace the local admin token in DIR/secrets.json; the old one stops working at once, "
        "also on a running server.",
    )
    admin_commands.add_parser(
        "login-link",
        parents=[common],
        help="print a one-time login link",
        description="Print a link that logs into the dashboard as the local admin, once, within 15 minutes.",
    )

    audit = commands.add_parser(
        "audit", parents=[common], help="show the audit log", description="Show the audit log, newest first."
    )
    audit.add_argument("--limit", type=int, default=50, help="entries to show (default 50)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")


def run_access_command(args: argparse.Namespace, datadir: DataDir, console: Console) -> int:
    datadir.create()
    if args.command == "admin" and args.admin_command == "rotate":
        datadir.rotate_admin_token()
        log = AccountStore(local_accounts(args, datadir))
        try:
            log.audit(LOCAL_ADMIN, "admin_token_rotate")
            # A rotation answers a leak: the local admin's dashboard sessions and links end too.
            ended = log.end_sessions(LOCAL_ADMIN, LOCAL_ADMIN)
        finally:
            log.close()
        say(console, f"The local admin token is replaced; the old one no longer works. {ended} admin sessions ended.")
        return 0
    if args.command == "user" and args.user_command == "add" and args.app is not None:
        AccountStore.check_role(args.email, args.role, args.app)  # its mistakes first
        flag = getattr(args, "store", None)
        with open_operations(
            datadir, resolve_store(flag), local_accounts(args, datadir), chosen=store_chosen(flag)
        ) as operations:
            if args.app not in {app["name"] for app in operations.list_apps()}:
                raise UsageError(f"no app named {args.app!r}; register it first with `footfall app add {args.app}`")
    store = AccountStore(local_accounts(args, datadir))
    try:
        if args.command == "user":
            user_command(args, store, console)
        elif args.command == "token":
            token_command(args, store, console)
        elif args.command == "admin":
            print_login_link(datadir, store.create_login_code(), console)
        else:
            audit_command(args, store, console)
    finally:
        store.close()
    return 0


def print_login_link(datadir: DataDir, code: str, console: Console) -> None:
    """The link under the running server's --public-url (or FOOTFALL_PUBLIC_URL), else its
    listening address; with neither, the path, for the operator to put on the right host."""
    url = find_server(datadir)
    recorded = datadir.read_server_file() if url else None
    public_url = recorded.get("public_url") if recorded else None
    settings = resolve_settings(
        datadir.path, {"public_url": public_url if isinstance(public_url, str) and public_url else None}
    )
    path = f"/login?code={code}"
    say(console, "Log in once, within 15 minutes, with:")
    if settings.public_url:
        print(absolute_url(settings, path))
    else:
        print(url + path if url else f"{path}  (on the address of footfall serve)")


def user_command(args: argparse.Namespace, store: AccountStore, console: Console) -> None:
    if args.user_command == "add":
        store.check_role(args.email, args.role, args.app)  # before asking for a password
        created = store.add_user(args.email, read_password(args.password_stdin, keep=True), args.role, args.app)
        where = "every app" if args.role == "admin" else args.app
        say(console, f"{'Added' if created else 'Updated'} {args.email}: {args.role} of {where}.")
    elif args.user_command == "list":
        users = store.list_users()
        if args.format == "json":
            print(json.dumps({"users": [user_json(u) for u in users]}))
            return
        table = Table("email", "admin", "roles", "created (UTC)")
        for user in users:
            roles = ", ".join(f"{role} of {app}" for app, role in user.roles.items()) or "-"
            table.add_row(
                cell(user.email),
                "yes" if user.admin else "-",
                cell(roles),
                shown_time(user.created),
            )
        console.print(table)
    elif args.user_command == "remove":
        if not store.remove_user(args.email, LOCAL_ADMIN):
            raise UsageError(f"no account {args.email!r}")
        say(console, f"Removed {args.email} with its roles, tokens and sessions.")
    elif args.user_command == "passwd":
        if not any(u.email == args.email for u in store.list_users()):
            raise UsageError(f"no account {args.email!r}")
        ended = store.set_password(args.email, read_password(args.password_stdin, keep=False), LOCAL_ADMIN)
        say(console, f"Password of {args.email} set; {ended} session{'s' if ended != 1 else ''} ended.")
        tokens = len(store.list_tokens(args.email))
        if tokens:
            say(console, f"Its {tokens} API token(s) still work: `footfall token list {args.email}` to revoke them.")
    elif args.admin:
        if not store.set_admin(args.email, False, LOCAL_ADMIN):
            raise UsageError(f"no account {args.email!r}")
        say(console, f"{args.email} is no longer an admin.")
    else:
        if not store.remove_role(args.email, args.app, LOCAL_ADMIN):
            raise UsageError(f"{args.email!r} has no role on {args.app!r}")
        say(console, f"{args.email} has no role on {args.app} any more.")


def user_json(user: Any) -> dict[str, Any]:
    return {"email": user.email, "admin": user.admin, "roles": user.roles, "created": user.created.isoformat()}


def token_command(args: argparse.Namespace, store: AccountStore, console: Console) -> None:
    if args.token_command == "create":
        expires_days = None if args.no_expiry else args.expires_days
        token = store.create_token(args.email, expires_days=expires_days, name=args.name)
        until = "until revoked" if expires_days is None else f"for {expires_days} days"
        say(console, f"Token for {args.email}, valid {until} (shown once; keep it secret):")
        print(token)
    elif args.token_command == "list":
        tokens = store.list_tokens(args.email)
        if args.format == "json":
            rows = [
                {
                    "id": t.id,
                    "email": t.email,
                    "name": t.name,
                    "created": t.created.isoformat(),
                    "expires": t.expires.isoformat() if t.expires else None,
                    "last_used": t.last_used.isoformat() if t.last_used else None,
                    "expired": t.expired,
                }
                for t in tokens
            ]
            print(json.dumps({"tokens": rows}))
            return
        table = Table("email", "name", "created (UTC)", "expires (UTC)", "last used (UTC)")
        table.add_column("id", min_width=TOKEN_ID_CHARS, no_wrap=True)  # whole, to copy into `revoke`
        for t in tokens:
            expires = shown_time(t.expires) + (" (expired)" if t.expired else "") if t.expires else "never"
            table.add_row(
                cell(t.email),
                cell(t.name or "-"),
                shown_time(t.created),
                expires,
                shown_time(t.last_used),
                t.id,
            )
        console.print(table)
    elif store.revoke_token(args.id, LOCAL_ADMIN):
        say(console, f"Token {args.id} is revoked.")
    else:
        raise UsageError(f"no token with the id {args.id!r} (see `footfall token list`)")


def audit_command(args: argparse.Namespace, store: AccountStore, console: Console) -> None:
    if not 1 <= args.limit <= MAX_AUDIT_LIMIT:
        raise UsageError(f"--limit must be 1 to {MAX_AUDIT_LIMIT}")
    entries = store.audit_log(args.limit)
    if args.json:
        for entry in entries:
            print(json.dumps({**entry._asdict(), "time": entry.time.isoformat()}))
        return
    table = Table("time (UTC)", "actor", "action", "app", "detail")
    for entry in entries:
        table.add_row(
            shown_time(entry.time),
            cell(entry.actor),
            Text(entry.action),
            cell(entry.app or "-"),
            cell(entry.detail),
        )
    console.print(table)


def read_password(from_stdin: bool, keep: bool) -> str:
    """A password from standard input, or asked twice on the terminal; `keep`: empty keeps the old one."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for a password on: use --password-stdin")
    import getpass

    first = getpass.getpass("Password (leave empty to keep the current one): " if keep else "New password: ")
    if first and getpass.getpass("Again: ") != first:
        raise UsageError("the passwords do not match")
    return first
