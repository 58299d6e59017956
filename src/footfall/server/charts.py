"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, nothing vendored.

Each chart carries a text alternative (`aria-label` and `<title>`s on its marks),
and the top lists are real tables with a bar in each row, so the numbers stay
readable to screen readers and in a text browser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 720, 200
PAD_LEFT, PAD_BOTTOM = 48, 22
PALETTE = ("#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}"


def _label(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%m-%d %H:00")
    if isinstance(value, dt.date):
        return value.strftime("%b %d")
    return str(value)


def line_chart(x: Sequence[Any], series: Mapping[str, Sequence[float]], label: str) -> str:
    """Lines over time, one per series, with a y axis and a few x labels."""
    peak = max((max(values, default=0) for values in series.values()), default=0) or 1
    count = max(len(x), 1)
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - 10

    def point(i: int, v: float) -> str:
        px = PAD_LEFT + (i * plot_w / (count - 1) if count > 1 else plot_w / 2)
        return f"{px:.1f},{10 + plot_h - v / peak * plot_h:.1f}"

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">']
    for fraction in (0, 0.5, 1):
        y = 10 + plot_h - fraction * plot_h
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{_number(peak * fraction)}</text>"
        )
    for i in sorted({0, count // 2, count - 1}):
        if i < len(x):
            anchor = "start" if i == 0 else "end" if i == count - 1 else "middle"
            px = point(i, 0).split(",")[0]
            parts.append(
                f'<text x="{px}" y="{HEIGHT - 6}" class="axis" text-anchor="{anchor}">{escape(_label(x[i]))}</text>'
            )
    for (name, values), colour in zip(series.items(), PALETTE, strict=False):
        points = " ".join(point(i, v) for i, v in enumerate(values))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key" style="--c:{c}">{escape(n)}</span>' for n, c in zip(series, PALETTE, strict=False)
    )
    return f"<figure>{''.join(parts)}<figcaption>{legend}</figcaption></figure>"


def bar_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], value_index: int, label: str) -> str:
    """A table whose `value_index` column is drawn as a bar, longest first."""
    if not rows:
        return '<p class="empty">No data in this range.</p>'
    peak = max((float(r[value_index] or 0) for r in rows), default=0) or 1
    head = "".join(f'<th scope="col">{escape(c.replace("_", " "))}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            if index == value_index:
                width = float(value or 0) / peak * 100
                cells.append(f'<td class="num"><span class="bar" style="width:{width:.1f}%"></span>{_cell(value)}</td>')
            else:
                cells.append(
                    f'<td class="{"num" if isinstance(value, (int, float)) else ""}">{escape(_cell(value))}</td>'
                )
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table aria-label="{escape(label)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0%}" if 0 <= value <= 1 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _label(value)


def heatmap(rows: Sequence[Sequence[Any]], label: str) -> str:
    """Weekday by hour cells, darker for more events."""
    counts = {(int(d), int(h)): int(n) for d, h, n in rows}
    peak = max(counts.values(), default=0) or 1
    cell, left, top = 26, 40, 18
    parts = [
        f'<svg class="chart heatmap" viewBox="0 0 {left + 24 * cell} {top + 7 * cell}" role="img" aria-label="{escape(label)}">'
    ]
    for hour in range(0, 24, 3):
        parts.append(
            f'<text x="{left + hour * cell + cell / 2}" y="12" class="axis" text-anchor="middle">{hour:02d}</text>'
        )
    for day in range(1, 8):
        y = top + (day - 1) * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell * 0.65:.0f}" class="axis" text-anchor="end">{WEEKDAYS[day - 1]}</text>'
        )
        for hour in range(24):
            n = counts.get((day, hour), 0)
            opacity = 0.06 + 0.94 * n / peak
            parts.append(
                f'<rect x="{left + hour * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3"'
                f' fill="#2563eb" fill-opacity="{opacity:.2f}"><title>{WEEKDAYS[day - 1]} {hour:02d}:00'
                f" UTC: {n:,} events</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def cohort_table(rows: Sequence[Sequence[Any]], label: str, weeks: int = 8) -> str:
    """Retention: one row per weekly cohort, one shaded cell per week after."""
    cohorts: dict[Any, dict[int, tuple[int, float]]] = {}
    for cohort, week, installs, share in rows:
        if week < weeks:
            cohorts.setdefault(cohort, {})[int(week)] = (installs, share or 0)
    if not cohorts:
        return '<p class="empty">No data in this range.</p>'
    head = "".join(f'<th scope="col">week {w}</th>' for w in range(weeks))
    body = []
    for cohort, cells in cohorts.items():
        size = cells.get(0, (0, 0))[0]
        tds = []
        for week in range(weeks):
            if week in cells:
                installs, share = cells[week]
                tds.append(
                    f'<td class="num cohort" style="--s:{share:.2f}" title="{installs:,} installs">{share:.0%}</td>'
                )
            else:
                tds.append("<td></td>")
        body.append(f'<tr><th scope="row">{escape(_label(cohort))} ({size:,})</th>{"".join(tds)}</tr>')
    return (
        f'<table class="cohorts" aria-label="{escape(label)}"><thead><tr><th scope="col">cohort</th>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )
