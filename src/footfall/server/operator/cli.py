"""The operator's command line: a thin shell over `Operations` and the server.

Library errors become one clean `footfall: error: ...` line and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from footfall import __version__
from footfall.server.auth.accounts import LOCAL_ADMIN, AccountStore
from footfall.server.datadir import DataDir
from footfall.server.errors import FootfallError, UsageError
from footfall.server.operations import Operations, StoreOperations, retention_cut
from footfall.server.operator.access import add_access_commands, run_access_command
from footfall.server.operator.backup import add_backup_commands, backup_command, restore_command
from footfall.server.operator.control import (
    find_server,
    local_accounts,
    open_operations,
    refuse_the_migrated_file,
    store_chosen,
)
from footfall.server.operator.terminal import print_csv, print_report, print_summary, say
from footfall.server.query.filters import CI_CHOICES, CONTAINERS, check_timezone
from footfall.server.query.properties import ARGUMENT_REPORTS
from footfall.server.query.public import PublicPolicy, snapshot_folder
from footfall.server.query.reports import REPORTS
from footfall.server.settings import (
    SETTINGS,
    check_retention_days,
    default_data_dir,
    redacted_url,
    resolve_settings,
    resolve_store,
)

EXIT_ERROR = 1
EXIT_USAGE = 2


REPORT_CHOICES = [*REPORTS, *ARGUMENT_REPORTS, "all"]


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(f"{message}\n(see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    common = ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ["FOOTFALL_DATA"]) if os.environ.get("FOOTFALL_DATA") else default_data_dir(),
        help="data directory (env FOOTFALL_DATA; default %(default)s)",
    )
    store = next(setting for setting in SETTINGS if setting.name == "store")
    common.add_argument("--store", default=None, help=f"{store.help} (env {store.env})")
    accounts = next(setting for setting in SETTINGS if setting.name == "accounts")
    common.add_argument("--accounts", default=None, help=f"{accounts.help} (env {accounts.env})")
    parser = ArgumentParser(
        prog="footfall",
        description="Self-hostable, anonymous, aggregate usage analytics for open-source tools.",
    )
    parser.add_argument("--version", action="version", version=f"footfall {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the collector and dashboard",
        description="Run the collector and dashboard on the data directory.",
    )
    for setting in SETTINGS:
        if setting.name in ("store", "accounts"):
            continue  # a common option (above): every command that reads or writes the store takes it
        serve.add_argument(
            setting.flag,
            dest=setting.name,
            type=setting.type,
            default=None,
            help=f"{setting.help} (env {setting.env}; default {setting.default})",
        )

    app = commands.add_parser("app", help="manage apps", description="Register and list apps.")
    app_commands = app.add_subparsers(dest="app_command", metavar="ACTION", parser_class=ArgumentParser)
    app_commands.required = True
    add = app_commands.add_parser(
        "add",
        parents=[common],
        help="register an app (idempotent)",
        description="Register an app so the collector accepts its events.",
    )
    add.add_argument("name", help="the app id tools send, e.g. mytool")
    add.add_argument(
        "--ga-tid",
        action="append",
        default=[],
        metavar="UA-XXXX-Y",
        help="a Google Analytics v1 tracking id whose hits belong to this app (repeatable)",
    )
    add.add_argument(
        "--ga4-measurement-id",
        action="append",
        default=[],
        metavar="G-XXXX",
        help="a GA4 measurement id whose events belong to this app (repeatable)",
    )
    add.add_argument(
        "--ga4-api-secret",
        action="append",
        default=[],
        metavar="SECRET",
        help="the API secret of each --ga4-measurement-id, in the same order",
    )
    add.add_argument(
        "--firebase-app-id",
        action="append",
        default=[],
        metavar="ID",
        help="a Firebase app id whose GA4 events belong to this app (repeatable)",
    )
    add.add_argument(
        "--firebase-api-secret",
        action="append",
        default=[],
        metavar="SECRET",
        help="the API secret of each --firebase-app-id, in the same order",
    )
    add.add_argument(
        "--influx-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="an InfluxDB token whose line-protocol writes belong to this app (repeatable; stored hashed)",
    )
    add.add_argument(
        "--influx-bucket",
        action="append",
        default=[],
        metavar="BUCKET",
        help="the bucket (1.x: database) of each --influx-token, in the same order; without it, any bucket",
    )
    schema = app_commands.add_parser(
        "schema",
        parents=[common],
        help="set an app's schema",
        description="Set which events and properties an app may store.",
    )
    schema.add_argument("name", help="the app id")
    source = schema.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="a JSON schema document (see docs/collector.md)")
    source.add_argument(
        "--from",
        dest="from_options",
        metavar="FILE.py:NAME",
        help="the dict of footfall.init options of a tool, whose schema is used",
    )
    timezone = app_commands.add_parser(
        "timezone",
        parents=[common],
        help="set where an app's days start",
        description="Set an app's time zone (an IANA name such as Europe/Berlin; UTC by default). "
        "Days, weeks and the heatmap of every report follow it.",
    )
    timezone.add_argument("name", help="the app id")
    timezone.add_argument("zone", help="an IANA time zone name, such as Europe/Berlin or UTC")
    public = app_commands.add_parser(
        "public",
        parents=[common],
        help="turn an app's public page on or off",
        description="Turn an app's public aggregate page on or off.",
    )
    public.add_argument("name", help="the app id")
    public.add_argument("state", choices=("on", "off"))
    remove = app_commands.add_parser(
        "remove",
        parents=[common],
        help="delete an app with all its data",
        description="Delete an app with all its data: events, keys, schema, roles and public page. "
        "Asks you to type the app's name, unless --yes.",
    )
    remove.add_argument("name", help="the app id")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    listing = app_commands.add_parser(
        "list",
        parents=[common],
        help="list registered apps",
        description="List the registered apps.",
    )
    listing.add_argument("--format", choices=("table", "json"), default="table", help="output format")

    report = commands.add_parser(
        "report",
        parents=[common],
        help="show an app's usage",
        description="Show an app's usage: a summary, or any named report with filters.",
    )
    report.add_argument("name", help="the app id")
    report.add_argument(
        "report_name",
        nargs="?",
        metavar="REPORT",
        choices=REPORT_CHOICES,
        help="a named report (the same as --report)",
    )
    report.add_argument(
        "--report",
        metavar="REPORT",
        choices=REPORT_CHOICES,
        help=f"a named report: {', '.join(REPORT_CHOICES[:-1])}, or all (default: a summary)",
    )
    report.add_argument("--days", type=int, default=30, help="days up to --end (default 30)")
    report.add_argument("--start", help="first day, e.g. 2026-11-01 (instead of --days)")
    report.add_argument("--end", help="last day (default today, UTC)")
    report.add_argument("--version", dest="app_version", help="only this app version")
    report.add_argument("--country", help="only this country (two letters)")
    report.add_argument("--ci", choices=CI_CHOICES, default="include", help="CI runs: include, exclude or only")
    report.add_argument("--container", choices=CONTAINERS, help="only this container kind, or none")
    report.add_argument(
        "--where",
        action="append",
        metavar="EVENT.PROPERTY=VALUE",
        help="only events whose property has this value, e.g. export.format=csv (repeatable)",
    )
    report.add_argument("--event", help="the properties report: the event, e.g. export")
    report.add_argument("--property", dest="property_name", help="the properties report: its property, e.g. format")
    report.add_argument("--a", dest="version_a", metavar="VERSION", help="the compare report: the first version")
    report.add_argument("--b", dest="version_b", metavar="VERSION", help="the compare report: the second version")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")

    add_access_commands(commands, common, ArgumentParser)
    add_backup_commands(commands, common)

    publish = commands.add_parser(
        "publish",
        parents=[common],
        help="write public aggregates as static files",
        description="Write today's public snapshot of an app (JSON and HTML, differentially private; see"
        " docs/privacy.md) to a folder, for any static host. The settings --public-* come from the"
        " FOOTFALL_PUBLIC_* environment variables, or from the running server.",
    )
    publish.add_argument("name", help="the app id")
    publish.add_argument("--out", type=Path, required=True, help="the folder to write to")

    expire = commands.add_parser(
        "expire",
        parents=[common],
        help="delete raw events older than a number of days",
        description="Delete every raw event whose time is more than DAYS days ago (retention). On ClickHouse,"
        " whole months go as partitions and the rest of the cut month by a delete (docs/stores.md).",
    )
    retention = next(setting for setting in SETTINGS if setting.name == "retention_days")
    expire.add_argument(
        "--older-than",
        type=int,
        metavar="DAYS",
        help=f"days to keep (default: {retention.env}; one of the two is required)",
    )

    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="copy a DuckDB data directory to ClickHouse",
        description="Copy a DuckDB data directory's apps, keys, schemas, time zones and events to a ClickHouse"
        " store, in batches. Resumable and idempotent: run it again after a failure, rows go once; a day that"
        " changed since it was copied is copied again whole. Accounts, tokens and secrets stay in DIR: serve the"
        " new store with --data DIR. The server on DIR must be stopped.",
    )
    migrate.add_argument("--from", dest="source", type=Path, metavar="DIR", help="the data directory (default: --data)")
    migrate.add_argument(
        "--to",
        dest="target",
        metavar="URL",
        help="the ClickHouse store, clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE (default: --store)",
    )

    disclose = commands.add_parser(
        "disclose",
        help="write a tool's ANALYTICS.md from its footfall.init options",
        add_help=False,
    )
    disclose.add_argument("rest", nargs=argparse.REMAINDER)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="load realistic synthetic data",
        description="Load realistic synthetic usage of three demo apps.",
    )
    demo.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    demo.add_argument("--scale", type=float, default=1.0, help="size; 1.0 is about 320,000 events (default 1.0)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    return parser


def main(argv: list[str] | None = None) -> int:
    console = Console()
    try:
        args = parse_arguments(build_parser(), argv)
        return run(args, console)
    except UsageError as exc:
        print(f"footfall: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except FootfallError as exc:
        print(f"footfall: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `footfall report ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """`parser.parse_args`, but a report's name may also come after the options
    (`footfall report mytool --days 7 versions`), as people type it."""
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "report" and args.report_name is None and extra[0][:1] != "-" and len(extra) == 1:
        if extra[0] not in REPORT_CHOICES:
            raise UsageError(
                f"no report named {extra[0]!r}: one of {', '.join(REPORT_CHOICES)}\n(see `footfall report --help`)"
            )
        args.report_name = extra[0]
    elif extra:
        command = f"footfall {args.command}" if args.command else "footfall"
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}\n(see `{command} --help`)")
    return args


def run(args: argparse.Namespace, console: Console) -> int:
    if args.command == "disclose":
        from footfall.disclosure import disclose_main

        return disclose_main(args.rest)
    if args.command == "migrate":
        return migrate_command(args, console)
    datadir = DataDir(args.data)
    if args.command == "expire":
        return expire_command(args, datadir, console)
    if args.command == "serve":
        return serve(args, datadir, console)
    if args.command == "demo":
        return demo(args, datadir, console)
    if args.command in ("user", "token", "admin", "audit"):
        return run_access_command(args, datadir, console)
    if args.command in ("backup", "restore") and resolve_store(getattr(args, "store", None)):
        raise UsageError(
            f"footfall {args.command} copies a DuckDB store; back a ClickHouse store up with ClickHouse's own"
            " tools (docs/stores.md)"
        )
    if args.command == "backup":
        result = backup_command(datadir, args.destination)
        say(console, f"Backed up {datadir.path} to {result['destination']}.")
        return 0
    if args.command == "restore":
        restore_command(args.source, datadir)
        say(console, f"Restored {args.source} into {datadir.path}; serve it with: footfall serve --data {datadir.path}")
        return 0
    flag = getattr(args, "store", None)
    with open_operations(
        datadir, resolve_store(flag), local_accounts(args, datadir), chosen=store_chosen(flag)
    ) as operations:
        if args.command == "app":
            app_command(args, operations, datadir, console)
        elif args.command == "report":
            report_command(args, operations, console)
        elif args.command == "publish":
            # Today's stored snapshot (drawn now if there is none yet), under the serve settings
            # from the environment; a running server answers with its own.
            settings = resolve_settings(datadir.path, {})
            data = operations.public_snapshot(
                args.name, PublicPolicy.from_settings(settings), snapshot_folder(datadir.path)
            )
            write_public(data, args.out)
            say(
                console,
                f"Wrote {args.out / (args.name + '.json')} and {args.out / (args.name + '.html')}.",
            )
    return 0


def migrate_command(args: argparse.Namespace, console: Console) -> int:
    from footfall.server.operator.migrate import migrate

    source: Path = args.source or args.data
    target: str = args.target or resolve_store(args.store)
    if not target:
        raise UsageError("footfall migrate needs --to clickhouse://HOST:PORT/DATABASE (or --store, FOOTFALL_STORE)")
    bar = Progress(
        TextColumn("Migrating events"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("migrate", total=None)

    def progress(done: int, total: int) -> None:
        bar.start()  # at the first batch: a refusal before it prints no bar
        bar.update(task, completed=done, total=total)

    try:
        result = migrate(source, target, progress)
    finally:
        bar.stop()
    already = result.events - result.copied_events
    batches = f"{result.batches} batch" + ("" if result.batches == 1 else "es")
    copied = f"{result.copied_events:,} events copied by this run" + (
        f", {already:,} were there already" if already > 0 else ""
    )
    say(
        console,
        f"Migrated {result.apps} apps and {result.events:,} events in {batches}"
        f" to the ClickHouse store ({copied}). Accounts and secrets stay in the data directory: serve with"
        f" --data {source} --store URL.",
    )
    if result.unstorable_events:
        say(
            console,
            f"Not copied: {result.unstorable_events:,} events dated before 1970-01-02 or after 2105-12-30, which"
            " ClickHouse's DateTime cannot hold.",
        )
    return 0


def expire_command(args: argparse.Namespace, datadir: DataDir, console: Console) -> int:
    days = args.older_than if args.older_than is not None else resolve_settings(datadir.path, {}).retention_days
    if days <= 0:
        raise UsageError("footfall expire needs --older-than DAYS (1 or more), or FOOTFALL_RETENTION_DAYS")
    check_retention_days(days, "--older-than")
    store_url = resolve_store(args.store)
    cut = retention_cut(days)
    with open_operations(datadir, store_url, chosen=store_chosen(args.store)) as operations:
        if isinstance(operations, StoreOperations):
            if operations.store.barrier is not None:
                operations.store.barrier()  # acknowledged events not loaded yet are expired too
            deleted = operations.store.expire_events(cut)
        elif store_url:  # ClickHouse takes many clients: beside the running server, which loads its own log
            from footfall.server.stores import open_store

            store = open_store(store_url, datadir.database)
            try:
                deleted = store.expire_events(cut)
            finally:
                store.close()
        else:
            raise UsageError(
                f"footfall serve owns {datadir.path}; DuckDB lets no other process write its file: stop the"
                " server, then expire; or serve with --retention-days DAYS, and the server expires every hour"
            )
    say(console, f"Deleted {deleted:,} events from before {cut:%Y-%m-%d} (UTC).")
    return 0


def app_command(args: argparse.Namespace, operations: Operations, datadir: DataDir, console: Console) -> None:
    if args.app_command == "add":
        pairs = []
        for ids, secrets, flag in (
            (args.ga4_measurement_id, args.ga4_api_secret, "--ga4"),
            (args.firebase_app_id, args.firebase_api_secret, "--firebase"),
        ):
            if len(ids) != len(secrets):
                raise UsageError(f"give one {flag}-api-secret for each id")
            pairs.append(list(zip(ids, secrets, strict=True)))
        if args.influx_bucket and len(args.influx_bucket) != len(args.influx_token):
            raise UsageError("give one --influx-bucket for each --influx-token, or none")
        influx = list(zip(args.influx_token, args.influx_bucket or ["*"] * len(args.influx_token), strict=True))
        result = operations.add_app(args.name, args.ga_tid, pairs[0], pairs[1], influx=influx)
        say(
            console,
            f"App {result['name']} {'registered' if result['created'] else 'is already registered'}.",
        )
    elif args.app_command == "schema":
        result = operations.set_schema(args.name, read_schema(args))
        say(console, f"Schema of {result['name']} set: events {', '.join(result['events'])}.")
    elif args.app_command == "timezone":
        result = operations.set_timezone(args.name, check_timezone(args.zone))
        say(console, f"Days of {result['name']} now start at midnight in {result['timezone']}.")
    elif args.app_command == "public":
        operations.summary(args.name, 1)  # a clear error for an unknown app
        store = AccountStore(local_accounts(args, datadir))
        try:
            # operations.summary above refused an unknown app; it may be a running server's,
            # whose store this process cannot open to check again.
            store.set_public(args.name, args.state == "on", LOCAL_ADMIN, exists=lambda _app: True)
        finally:
            store.close()
        say(console, f"The public page of {args.name} is {args.state}.")
    elif args.app_command == "remove":
        operations.summary(args.name, 1)  # a clear error for an unknown app, before asking
        if not args.yes:
            confirm_removal(args.name)
        result = operations.remove_app(args.name)
        say(console, f"Removed {result['name']} and its {result['events']:,} events.")
    else:
        apps = operations.list_apps()
        if args.format == "json":
            print(json.dumps({"apps": apps}))
            return
        table = Table("app", "registered (UTC)", "keys", "schema", "time zone")
        for app in apps:
            keys = ", ".join(influx_label(k["key"]) if k["kind"] == "influx" else k["key"] for k in app["keys"]) or "-"
            table.add_row(app["name"], app["created"], keys, "yes" if app["schema"] else "-", app["timezone"])
        console.print(table)


def influx_label(bucket: str) -> str:
    """An InfluxDB key as the table shows it: its bucket (list_apps never shows the token's hash)."""
    return f"influx:{'any bucket' if bucket == '*' else bucket}"


def confirm_removal(name: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError("no terminal to confirm on: add --yes to remove the app and all its data")
    print(f"This deletes {name} and all its data for good. Type its name to go on: ", end="", flush=True)
    if sys.stdin.readline().strip() != name:
        raise UsageError("not confirmed; nothing was removed")


# The arguments of the reports that take some: (flag, attribute, query parameter, report).
REPORT_ARGUMENTS = (
    ("--event", "event", "event", "properties"),
    ("--property", "property_name", "property", "properties"),
    ("--a", "version_a", "a", "compare"),
    ("--b", "version_b", "b", "compare"),
)


def report_command(args: argparse.Namespace, operations: Operations, console: Console) -> None:
    if args.report_name and args.report and args.report_name != args.report:
        raise UsageError(f"two reports named: {args.report_name} and --report {args.report}; name one")
    args.report = args.report or args.report_name
    for flag, attribute, _, owner in REPORT_ARGUMENTS:
        if getattr(args, attribute) is not None and args.report != owner:
            raise UsageError(f"{flag} is for the {owner} report: footfall report {args.name} {owner} ...")
    names = list(REPORTS) if args.report == "all" else [args.report]
    if args.format == "csv" and len(names) > 1:
        raise UsageError("CSV holds one report at a time: name it with --report")
    params: dict[str, Any] = {"days": str(args.days), "ci": args.ci}
    if args.where:
        params["where"] = list(args.where)
    if args.report in ARGUMENT_REPORTS:
        needed = [(flag, attribute, key) for flag, attribute, key, owner in REPORT_ARGUMENTS if owner == args.report]
        missing = [flag for flag, attribute, _ in needed if not getattr(args, attribute)]
        if missing:
            raise UsageError(f"the {args.report} report needs {' and '.join(missing)}")
        params.update({key: getattr(args, attribute) for _, attribute, key in needed})
    for key, value in (
        ("start", args.start),
        ("end", args.end),
        ("version", args.app_version),
        ("country", args.country),
        ("container", args.container),
    ):
        if value:
            params[key] = value
    if args.report is None:
        # The summary applies every filter the reports take (a total shown unfiltered under
        # a filter would be a wrong number).
        summary = operations.summary(args.name, args.days, params)
        if args.format == "json":
            print(json.dumps(summary))
        elif args.format == "csv":
            print_csv(["day", "events", "installs"], summary["per_day"])
        else:
            print_summary(summary, console)
        return
    results = [operations.report(args.name, name, params) for name in names]
    if args.format == "json":
        print(json.dumps(results[0] if len(results) == 1 else {"reports": results}))
    elif args.format == "csv":
        print_csv(results[0]["columns"], results[0]["rows"])
    else:
        for result in results:
            print_report(result, console)
            if result.get("numeric"):
                numbers = result["numeric"]
                say(
                    console,
                    "numbers: "
                    + ", ".join(f"{key} {figure(numbers[key])}" for key in ("min", "p50", "p90", "p99", "max"))
                    + "; histogram: "
                    + ", ".join(f"{bucket['bucket']}: {bucket['events']:,}" for bucket in numbers["histogram"]),
                )


def figure(value: float) -> str:
    """A measured number: whole ones with thousands separators, others to two places (as the dashboard)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def write_public(data: dict[str, Any], out: Path) -> None:
    from footfall.server.edge.dashboard import public_page

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{data['app']}.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
        (out / f"{data['app']}.html").write_text(public_page(data), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write to {out}: {exc.strerror}") from None


def read_schema(args: argparse.Namespace) -> str:
    if args.file is not None:
        try:
            return str(args.file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    from footfall.disclosure import load_options

    try:
        options = load_options(args.from_options)
    except (OSError, ValueError, ImportError, SyntaxError) as exc:
        raise UsageError(str(exc)) from None
    schema = options.get("schema")
    if schema is None:
        raise UsageError(f"{args.from_options} has no 'schema'")
    return json.dumps(schema.to_json())


def serve(args: argparse.Namespace, datadir: DataDir, console: Console) -> int:
    from footfall.server.operator.serving import run_server

    settings = resolve_settings(args.data, vars(args))
    refuse_the_migrated_file(datadir, settings.store, store_chosen(args.store))

    def announce(url: str, login_url: str) -> None:
        where = f"data in {datadir.path}" + (f", events in {redacted_url(settings.store)}" if settings.store else "")
        console.print(f"Footfall collector listening on {url} ({where})", highlight=False)
        console.print(f"Open the dashboard: {login_url}", highlight=False, soft_wrap=True)

    run_server(settings, announce)
    return 0


def demo(args: argparse.Namespace, datadir: DataDir, console: Console) -> int:
    from footfall.server.operator.demo import load_demo
    from footfall.server.stores import open_store

    if not 1 <= args.days <= 400 or not 0 < args.scale <= 50:
        raise UsageError("--days must be 1 to 400 and --scale above 0 and at most 50")
    if find_server(datadir):
        raise UsageError(f"footfall serve is running on {datadir.path}; stop it before loading demo data")
    datadir.create()
    key = datadir.secrets().install_key
    store_url = resolve_store(args.store)
    refuse_the_migrated_file(datadir, store_url, store_chosen(args.store))
    store = open_store(store_url, datadir.database)
    try:
        with Progress(
            TextColumn("Generating demo data"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("app-days"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task("demo", total=None)
            count = load_demo(
                store,
                key,
                days=args.days,
                scale=args.scale,
                seed=args.seed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        store.close()
    where = redacted_url(store_url) if store_url else str(datadir.path)
    console.print(f"Stored {count:,} demo events for 3 apps in {where}.", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
