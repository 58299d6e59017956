"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, nothing vendored.

Each chart carries a text alternative (`aria-label` and `<title>`s on its marks),
and the top lists are real tables with a bar in each row, so the numbers stay
readable to screen readers and in a text browser.

Every chart is built with `Markup.format`, which escapes each value it inserts: a
label, a version or a property value can never become markup. Each returns
`Markup`, which the templates embed as it is. No chart uses a `style` attribute (the Content-Security-Policy allows none): colours and
shades are classes of the dashboard's stylesheet, and bars are SVG rectangles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from markupsafe import Markup

from footfall.server.edge import worldmap

WIDTH, HEIGHT = 720, 200
PAD_LEFT, PAD_BOTTOM = 48, 22
PALETTE = ("#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626")  # .key.c0 to .c5 in the CSS
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SHADES = 10  # td.cohort.s0 to .s10 in the CSS
EMPTY = Markup('<p class="empty">No data in this range.</p>')
PARTIAL_DASH = "5 4"  # the stroke of a line into or out of a period that is not over yet
PARTIAL_FILL, PARTIAL_OPACITY = "#94a3b8", 0.18  # the band behind such a period


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


def _join(parts: Sequence[Markup]) -> Markup:
    return Markup("").join(parts)


def line_chart(
    x: Sequence[Any], series: Mapping[str, Sequence[float]], label: str, partial: Collection[Any] = ()
) -> Markup:
    """Lines over time, one per series, with a y axis and a few x labels.

    A period in `partial` is not over yet (today, this hour): it sits on a grey band, and the
    lines into and out of it are dashed, so a low "today" does not read as a drop.
    """
    peak = max((max(values, default=0) for values in series.values()), default=0) or 1
    count = max(len(x), 1)
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - 10

    def point(i: int, v: float) -> str:
        px = PAD_LEFT + (i * plot_w / (count - 1) if count > 1 else plot_w / 2)
        return f"{px:.1f},{10 + plot_h - v / peak * plot_h:.1f}"

    parts = [Markup('<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">').format(WIDTH, HEIGHT, label)]
    for fraction in (0, 0.5, 1):
        y = 10 + plot_h - fraction * plot_h
        parts.append(
            Markup(
                '<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                '<text x="{tick}" y="{text_y:.1f}" class="axis" text-anchor="end">{value}</text>'
            ).format(
                left=PAD_LEFT, right=WIDTH - 8, y=y, tick=PAD_LEFT - 6, text_y=y + 4, value=_number(peak * fraction)
            )
        )
    for i in sorted({0, count // 2, count - 1}):
        if i < len(x):
            anchor = "start" if i == 0 else "end" if i == count - 1 else "middle"
            px = point(i, 0).split(",")[0]
            parts.append(
                Markup('<text x="{}" y="{}" class="axis" text-anchor="{}">{}</text>').format(
                    px, HEIGHT - 6, anchor, _label(x[i])
                )
            )
    marked = [i for i, moment in enumerate(x) if moment in partial]
    step = plot_w / (count - 1) if count > 1 else plot_w
    for i in marked:
        centre = float(point(i, 0).split(",")[0])
        parts.append(
            Markup(
                '<rect class="partial" x="{:.1f}" y="10" width="{:.1f}" height="{:.1f}" fill="{}" fill-opacity="{}">'
                "<title>{}: not over yet</title></rect>"
            ).format(max(centre - step / 2, PAD_LEFT), step, plot_h, PARTIAL_FILL, PARTIAL_OPACITY, _label(x[i]))
        )
    for (name, values), colour in zip(series.items(), PALETTE, strict=False):
        for first, last, dashed in _stretches(len(values), set(marked)):
            points = " ".join(point(i, values[i]) for i in range(first, last + 1))
            parts.append(
                Markup(
                    '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{}><title>{}{}</title></polyline>'
                ).format(
                    points,
                    colour,
                    Markup(' stroke-dasharray="{}"').format(PARTIAL_DASH) if dashed else "",
                    name,
                    " (not over yet)" if dashed else "",
                )
            )
    parts.append(Markup("</svg>"))
    legend = _join(
        [
            Markup('<span class="key c{}">{}</span>').format(index, name)
            for index, name in enumerate(series)
            if index < 6
        ]
    )
    return Markup("<figure>{}<figcaption>{}</figcaption></figure>").format(_join(parts), legend)


def _stretches(count: int, partial: set[int]) -> list[tuple[int, int, bool]]:
    """The line's segments grouped into runs: (first point, last point, dashed).

    A segment is dashed when either end is a partial period.
    """
    stretches: list[tuple[int, int, bool]] = []
    if count == 1:
        return [(0, 0, 0 in partial)]
    for i in range(count - 1):
        dashed = i in partial or i + 1 in partial
        if stretches and stretches[-1][2] == dashed and stretches[-1][1] == i:
            stretches[-1] = (stretches[-1][0], i + 1, dashed)
        else:
            stretches.append((i, i + 1, dashed))
    return stretches


def bar_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], value_index: int, label: str) -> Markup:
    """A table whose `value_index` column is drawn as a bar, longest first."""
    if not rows:
        return EMPTY
    peak = max((_magnitude(r[value_index]) for r in rows), default=0) or 1
    head = _join([Markup('<th scope="col">{}</th>').format(c.replace("_", " ")) for c in columns])
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            if index == value_index:
                cells.append(
                    Markup(
                        '<td class="num"><svg class="bar" viewBox="0 0 100 1" preserveAspectRatio="none"'
                        ' aria-hidden="true"><rect width="{:.1f}" height="1"/></svg>{}</td>'
                    ).format(_magnitude(value) / peak * 100, _cell(value))
                )
            else:
                css = "num" if isinstance(value, (int, float)) else ""
                cells.append(Markup('<td class="{}">{}</td>').format(css, _cell(value)))
        body.append(Markup("<tr>{}</tr>").format(_join(cells)))
    table = Markup('<table aria-label="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>')
    return table.format(label, head, _join(body))


def _magnitude(value: Any) -> float:
    """A bar's length; anything that is not a number draws none."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0%}" if 0 <= value <= 1 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _label(value)


def heatmap(rows: Sequence[Sequence[Any]], label: str, zone: str = "UTC") -> Markup:
    """Weekday by hour cells, darker for more events; hours are local to `zone` (the app's)."""
    counts = {(int(d), int(h)): int(n) for d, h, n in rows}
    peak = max(counts.values(), default=0) or 1
    cell, left, top = 26, 40, 18
    parts = [
        Markup('<svg class="chart heatmap" viewBox="0 0 {} {}" role="img" aria-label="{}">').format(
            left + 24 * cell, top + 7 * cell, label
        )
    ]
    for hour in range(0, 24, 3):
        parts.append(
            Markup('<text x="{}" y="12" class="axis" text-anchor="middle">{:02d}</text>').format(
                left + hour * cell + cell / 2, hour
            )
        )
    for day in range(1, 8):
        y = top + (day - 1) * cell
        parts.append(
            Markup('<text x="{}" y="{:.0f}" class="axis" text-anchor="end">{}</text>').format(
                left - 6, y + cell * 0.65, WEEKDAYS[day - 1]
            )
        )
        for hour in range(24):
            n = counts.get((day, hour), 0)
            parts.append(
                Markup(
                    '<rect x="{x}" y="{y}" width="{size}" height="{size}" rx="3" fill="#2563eb" fill-opacity="{o:.2f}">'
                    "<title>{day} {hour:02d}:00 {zone}: {n:,} events</title></rect>"
                ).format(
                    zone=zone,
                    x=left + hour * cell,
                    y=y,
                    size=cell - 2,
                    o=0.06 + 0.94 * n / peak,
                    day=WEEKDAYS[day - 1],
                    hour=hour,
                    n=n,
                )
            )
    parts.append(Markup("</svg>"))
    return _join(parts)


def cohort_table(rows: Sequence[Sequence[Any]], label: str, weeks: int = 8, partial: Collection[Any] = ()) -> Markup:
    """Retention: one row per weekly cohort, one shaded cell per week after.

    A cell whose week (by its Monday) is in `partial` is not a whole week (the current one, or
    one the range cuts): it is marked with an asterisk and a note, not shaded as a drop.
    """
    cohorts: dict[Any, dict[int, tuple[int, float]]] = {}
    for cohort, week, installs, share in rows:
        if week < weeks:
            cohorts.setdefault(cohort, {})[int(week)] = (int(installs), float(share or 0))
    if not cohorts:
        return EMPTY
    head = _join([Markup('<th scope="col">week {}</th>').format(w) for w in range(weeks)])
    body = []
    for cohort, cells in cohorts.items():
        size = cells.get(0, (0, 0.0))[0]
        tds = []
        for week in range(weeks):
            if week in cells and _week_of(cohort, week) in partial:
                installs, share = cells[week]
                tds.append(
                    Markup(
                        '<td class="num cohort partial" title="{:,} installs so far: the week is not over">{:.0%}*</td>'
                    ).format(installs, share)
                )
            elif week in cells:
                installs, share = cells[week]
                shade = round(min(max(share, 0.0), 1.0) * SHADES)
                tds.append(
                    Markup('<td class="num cohort s{}" title="{:,} installs">{:.0%}</td>').format(
                        shade, installs, share
                    )
                )
            else:
                tds.append(Markup("<td></td>"))
        body.append(Markup('<tr><th scope="row">{} ({:,})</th>{}</tr>').format(_label(cohort), size, _join(tds)))
    table = Markup(
        '<table class="cohorts" aria-label="{}"><thead><tr><th scope="col">cohort</th>{}</tr></thead>'
        "<tbody>{}</tbody></table>{}"
    )
    note = Markup('<p class="muted">* a week not over yet, or cut by the range: fewer days than a whole week.</p>')
    marked = any(_week_of(c, w) in partial for c, w, _, _ in rows)
    return table.format(label, head, _join(body), note if marked else "")


def _week_of(cohort: Any, week: Any) -> Any:
    """The Monday of a cohort's `week`-th week (the cohort is a date; a string in tests is left alone)."""
    return cohort + dt.timedelta(weeks=int(week)) if isinstance(cohort, dt.date) else None


SPARK_WIDTH, SPARK_HEIGHT = 120, 32  # viewBox units of a home-page sparkline
MAP_STEPS = 5  # .worldmap .q1 to .q5 in the CSS; .q0 is a country with none


def sparkline(values: Sequence[float], label: str, partial_last: bool = False) -> Markup:
    """A small line of `values` (oldest first) with no axes; a partial last period is drawn dashed.

    The line is scaled to the largest value, so its shape, not its height, carries the
    meaning; the card beside it prints the numbers.
    """
    count = len(values)
    peak = max(values, default=0) or 1
    inner_w, inner_h = SPARK_WIDTH - 2, SPARK_HEIGHT - 2  # one unit of margin so the stroke is not clipped

    def point(i: int) -> str:
        x = 1 + (i * inner_w / (count - 1) if count > 1 else inner_w / 2)
        return f"{x:.1f},{1 + inner_h - values[i] / peak * inner_h:.1f}"

    whole = count - 1 if partial_last and count > 1 else count
    parts = [
        Markup(
            '<svg class="spark" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" aria-label="{}"><title>{}</title>'
        ).format(SPARK_WIDTH, SPARK_HEIGHT, label, label),
        Markup('<polyline class="whole" points="{}"/>').format(" ".join(point(i) for i in range(whole))),
    ]
    if whole < count:
        parts.append(Markup('<polyline class="partial" points="{} {}"/>').format(point(count - 2), point(count - 1)))
    parts.append(Markup("</svg>"))
    return _join(parts)


def map_step(value: float, peak: float) -> int:
    """The shade of a country: 0 for none, else 1 to `MAP_STEPS` in equal slices of the peak."""
    if value <= 0 or peak <= 0:
        return 0
    return min(MAP_STEPS, max(1, math.ceil(value / peak * MAP_STEPS)))


def world_map(
    values: Mapping[str, int],
    shapes: Mapping[str, str],
    names: Mapping[str, str],
    measure: str,
    label: str,
    cut: int | None = None,
) -> Markup:
    """A choropleth: each country in `shapes` (code to path data) shaded by its value in `values`.

    Each country has a `<title>` (its name and value) for the tooltip and for screen readers;
    a legend gives the range of each shade. A value with no shape (no country, or a place too
    small for the map) is not drawn, and the caption says how much that leaves out. `cut` says
    that `values` holds only the top `cut` countries: then a country without a value is "not
    among the top", never "no installs", which might be wrong.
    """
    missing = f"not among the top {cut}" if cut else f"no {measure}"
    peak = max(values.values(), default=0)
    width, height = worldmap.MAP_WIDTH, worldmap.MAP_HEIGHT
    parts = [
        Markup('<svg class="chart worldmap" viewBox="0 0 {} {}" role="img" aria-label="{}">').format(
            width, height, label
        )
    ]
    for code in sorted(shapes):
        value = values.get(code, 0)
        parts.append(
            Markup('<path d="{}" class="q{}" data-country="{}"><title>{}: {}</title></path>').format(
                shapes[code],
                map_step(value, peak),
                code,
                names.get(code, code),
                f"{value:,} {measure}" if value else missing,
            )
        )
    parts.append(Markup("</svg>"))
    keys = []
    for step in range(1, MAP_STEPS + 1):
        low, high = math.floor((step - 1) * peak / MAP_STEPS) + 1, math.floor(step * peak / MAP_STEPS)
        if low <= high:
            span = f"{low:,}" if low == high else f"{low:,}\u2013{high:,}"  # an en dash
            keys.append(Markup('<span class="swatch q{}">{}</span>').format(step, span))
    off_map = sum(v for code, v in values.items() if code not in shapes)
    if off_map:
        keys.append(
            Markup('<span class="muted">{:,} {} not on the map (no country, or too small)</span>').format(
                off_map, measure
            )
        )
    if cut:
        keys.append(Markup('<span class="muted">Only the top {} countries are shaded.</span>').format(cut))
    caption = Markup("<figcaption>{}</figcaption>").format(_join(keys)) if keys else Markup("")
    return Markup('<figure class="map">{}{}</figure>').format(_join(parts), caption)


def share_bar(shares: Sequence[tuple[str, float]], label: str) -> Markup:
    """One bar split into the shares of a whole (label, share from 0 to 1), in order, with a legend.

    The first five shares get a colour each; the rest share one grey slice, so the bar
    stays readable however many values there are. Each slice has a `<title>`.
    """
    if not shares:
        return EMPTY
    shown = list(shares[: len(PALETTE) - 1])
    rest = sum(max(share, 0.0) for _, share in shares[len(PALETTE) - 1 :])
    parts = [
        Markup(
            '<svg class="sharebar" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label="{}">'
        ).format(label)
    ]
    keys = []
    x = 0.0
    slices = [(name, share, f"c{index}") for index, (name, share) in enumerate(shown)]
    if rest > 0:
        slices.append((f"{len(shares) - len(shown)} more", rest, "rest"))
    for name, share, css in slices:
        width = min(max(share, 0.0), 1.0) * 100
        parts.append(
            Markup('<rect x="{:.2f}" width="{:.2f}" height="6" class="{}"><title>{}: {:.0%}</title></rect>').format(
                x, width, css, name, share
            )
        )
        keys.append(Markup('<span class="key {}">{} {:.0%}</span>').format(css, name, share))
        x += width
    parts.append(Markup("</svg>"))
    return Markup('<figure class="shares">{}<figcaption>{}</figcaption></figure>').format(_join(parts), _join(keys))
