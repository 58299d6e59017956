"""How reports look in a terminal: rich tables, sparklines, CSV. Used by the CLI.

Every string that comes from data (app names, versions, commands, property values)
passes through `safe_text` before rich sees it: its markup is escaped, so `[link=...]`
or `[red]` from a client stays literal text, and control characters (ANSI and OSC
escape sequences, carriage returns, bidirectional overrides) are shown as visible
escapes such as `\\x1b`, so data can neither restyle nor rewrite the terminal.
"""

from __future__ import annotations

import csv
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from footfall.server.query.reports import csv_cell

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def visible_controls(text: str) -> str:
    """Every control or otherwise unprintable character (C0, C1, DEL, the bidirectional
    overrides of "Trojan Source", zero-width marks) as a visible escape: ESC becomes \\x1b."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def say(console: Console, text: str) -> None:
    """One line of the CLI's own words (which may quote data): never markup, never wrapped."""
    console.print(Text(text), highlight=False, soft_wrap=True)


def safe_text(value: Any) -> str:
    """Data as text for rich: no markup, no control characters."""
    return escape(visible_controls(str(value)))


def sparkline(values: list[int]) -> str:
    peak = max(values, default=0)
    if peak == 0:
        return SPARK_BLOCKS[0] * len(values)
    return "".join(SPARK_BLOCKS[min(len(SPARK_BLOCKS) - 1, v * len(SPARK_BLOCKS) // (peak + 1))] for v in values)


def format_cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if column in ("change", "difference"):
            return f"{value:+.0%}"
        return f"{value:.0%}" if column.endswith(("share", "rate")) else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return safe_text(value)


def print_csv(columns: list[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(columns)
    writer.writerows([[_csv_value(row.get(c)) for c in columns] for row in rows])


def _csv_value(value: Any) -> Any:
    return visible_controls(csv_cell(value)) if isinstance(value, str) else value


def print_summary(summary: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]{safe_text(summary['app'])}[/bold]  {summary['start']} to {summary['end']}"
        f" ({safe_text(summary.get('timezone', 'UTC'))})",
        highlight=False,
    )
    totals = Table("events", "installs", "runs")
    totals.add_row(f"{summary['events']:,}", f"{summary['installs']:,}", f"{summary['runs']:,}")
    console.print(totals)
    per_day = [d["events"] for d in summary["per_day"]]
    console.print(f"events per day  {sparkline(per_day)}  peak {max(per_day, default=0):,}")
    top = Table("event", "events", "share")
    for row in summary["top_events"]:
        share = row["events"] / summary["events"] if summary["events"] else 0
        top.add_row(safe_text(row["name"]), f"{row['events']:,}", f"{share:.0%}")
    console.print(top)


def print_report(result: dict[str, Any], console: Console, max_rows: int = 40) -> None:
    console.print(
        f"[bold]{safe_text(result['title'])}[/bold]  {safe_text(result['app'])},"
        f" {result['start']} to {result['end']} (UTC)",
        highlight=False,
    )
    if result["report"] == "timeseries" and result["rows"]:
        events = [row["events"] for row in result["rows"]]
        console.print(f"events per {result['interval']}  {sparkline(events)}  peak {max(events):,}")
    table = Table(*result["columns"])
    for row in result["rows"][:max_rows]:
        table.add_row(*[format_cell(column, row[column]) for column in result["columns"]])
    console.print(table)
    if len(result["rows"]) > max_rows:
        console.print(
            f"... {len(result['rows']) - max_rows} more rows: use --format csv or json",
            highlight=False,
        )
    facts = {
        k: v for k, v in result.items() if k in ("latest", "latest_share", "median_upgrade_days") and v is not None
    }
    if facts:
        console.print(
            "  ".join(f"{k.replace('_', ' ')}: {format_cell(k, v)}" for k, v in facts.items()),
            highlight=False,
        )
