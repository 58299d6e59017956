"""The home page's sparklines and change, the world map, country names, and the `os` report: values, not shapes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from footfall.server.edge import charts, dashboard, worldmap
from footfall.server.query import reports
from footfall.server.query.filters import Filters, today
from footfall.server.stores.base import EventRecord
from footfall.server.stores.duckdb import DuckDBStore

POINT = re.compile(r"(-?[\d.]+),(-?[\d.]+)")


def polyline(svg: str, css: str) -> list[tuple[float, float]]:
    found = re.search(rf'<polyline class="{css}" points="([^"]*)"', svg)
    assert found, f"no {css} line in {svg[:200]}"
    return [(float(x), float(y)) for x, y in POINT.findall(found.group(1))]


def test_a_sparkline_follows_the_data() -> None:
    values = [0, 5, 10, 5, 0, 2]
    svg = str(charts.sparkline(values, "tool: events per day"))
    points = polyline(svg, "whole")
    assert len(points) == len(values)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert xs == sorted(xs) and xs[0] == 1 and xs[-1] == charts.SPARK_WIDTH - 1, "left to right, edge to edge"
    assert ys[2] == 1 and ys[0] == ys[4] == charts.SPARK_HEIGHT - 1, "the peak at the top, zero at the bottom"
    assert ys[1] == ys[3] == pytest.approx((charts.SPARK_HEIGHT) / 2), "half the peak, half way"
    assert ys[5] > ys[1], "fewer events, lower"
    assert "partial" not in svg


def test_a_partial_last_day_is_drawn_apart_and_dashed() -> None:
    svg = str(charts.sparkline([4, 8, 2], "t", partial_last=True))
    whole, partial = polyline(svg, "whole"), polyline(svg, "partial")
    assert len(whole) == 2 and partial == [whole[-1], (charts.SPARK_WIDTH - 1, pytest.approx(31 - 30 / 4))]


def test_a_sparkline_of_nothing_is_flat_and_labels_are_escaped() -> None:
    svg = str(charts.sparkline([0, 0, 0], '<script>"x"</script>'))
    assert {y for _, y in polyline(svg, "whole")} == {charts.SPARK_HEIGHT - 1}
    assert "<script>" not in svg and "&lt;script&gt;&#34;x&#34;" in svg


def series(per_day: list[int], end: dt.date) -> tuple[reports.Report, Filters]:
    start = end - dt.timedelta(days=len(per_day) - 1)
    rows: list[list[object]] = [[start + dt.timedelta(days=i), n, n, 1] for i, n in enumerate(per_day)]
    return reports.Report("timeseries", "Events per day", ["period", "events", "runs", "installs"], rows), Filters(
        start, end
    )


def test_the_card_compares_the_last_seven_full_days_with_the_seven_before() -> None:
    # 16 full days then today: today's 1000 events must not count (the day is not over).
    per_day = [99, 99] + [10] * 7 + [15] * 7 + [1000]
    report, filters = series(per_day, today())
    card = dashboard.app_card("tool", report, filters, installs=3)
    assert (card["change"], card["trend"]) == ("+50%", "up")
    assert card["events"] == sum(per_day) and card["installs"] == 3 and card["days"] == 17
    assert "105 events in the last 7 full days, against 70" in card["change_title"]
    assert 'class="partial"' in str(card["sparkline"])


def test_the_card_shows_a_fall_with_a_minus_sign_and_new_and_quiet_apps() -> None:
    yesterday = today() - dt.timedelta(days=1)  # a range that ends before today has no partial day
    falling, filters = series([8] * 7 + [6] * 7, yesterday)
    card = dashboard.app_card("tool", falling, filters, 1)
    assert (card["change"], card["trend"]) == ("\u221225%", "down")
    assert 'class="partial"' not in str(card["sparkline"])
    fresh, filters = series([0] * 7 + [0] * 6 + [3], yesterday)
    assert dashboard.app_card("tool", fresh, filters, 1)["change"] == "new"
    quiet, filters = series([0] * 14, yesterday)
    assert (dashboard.app_card("tool", quiet, filters, 0)["change"]) == "no events"
    steady, filters = series([2] * 14, yesterday)
    assert (dashboard.app_card("tool", steady, filters, 0)["trend"]) == "flat"
    # A fall under half a percent rounds to nothing: "+0%" and flat, never a minus zero (seen in the browser test).
    slight, filters = series([1000] * 7 + [999] * 6 + [1001 - 4], yesterday)
    card = dashboard.app_card("tool", slight, filters, 0)
    assert (card["change"], card["trend"]) == ("+0%", "flat")


def test_map_steps_are_equal_slices_of_the_peak() -> None:
    assert [charts.map_step(v, 100) for v in (0, 1, 20, 21, 40, 41, 99, 100)] == [0, 1, 1, 2, 2, 3, 5, 5]
    assert charts.map_step(5, 0) == 0


def shaded(svg: str) -> dict[str, tuple[int, str]]:
    return {
        code: (int(step), title)
        for d, step, code, title in re.findall(
            r'<path d="([^"]+)" class="q(\d)" data-country="([^"]+)"><title>([^<]*)</title></path>', svg
        )
    }


def test_the_map_shades_the_right_countries_in_the_right_order() -> None:
    installs = {"DE": 100, "FR": 50, "US": 10, "UNKNOWN": 7, "BM": 3}  # no shape for unknown or Bermuda
    shapes = worldmap.country_shapes()
    names = {code: worldmap.country_label(code) for code in shapes}
    svg = str(charts.world_map(installs, shapes, names, "installs", "Installs by country"))
    countries = shaded(svg)
    assert set(countries) == set(shapes), "every country is drawn, once"
    assert countries["DE"] == (5, "Germany (DE): 100 installs")
    assert countries["FR"] == (3, "France (FR): 50 installs")
    assert countries["US"] == (1, "United States (US): 10 installs")
    assert countries["JP"] == (0, "Japan (JP): no installs")
    assert {code for code, (step, _) in countries.items() if step} == {"DE", "FR", "US"}
    assert "UNKNOWN" not in svg and 'data-country="BM"' not in svg
    legend = re.findall(r'<span class="swatch q(\d)">([^<]*)</span>', svg)
    assert legend == [
        ("1", "1\u201320"),
        ("2", "21\u201340"),
        ("3", "41\u201360"),
        ("4", "61\u201380"),
        ("5", "81\u2013100"),
    ]
    assert "10 installs not on the map" in svg, "unknown and Bermuda are counted, not drawn"


def test_the_map_escapes_every_name_and_value() -> None:
    shapes = {"XX": "M1 1h2v2h-2z", "YY": "M5 5h2v2h-2z"}
    names = {"XX": '<img src=x onerror="alert(1)">', "YY": "Y&Y"}
    svg = str(charts.world_map({"XX": 2, "<b>": 1}, shapes, names, "<i>installs</i>", 'a "label"'))
    assert "<img" not in svg and "<b>" not in svg and "<i>" not in svg
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;: 2 &lt;i&gt;installs&lt;/i&gt;" in svg
    assert "Y&amp;Y" in svg and 'aria-label="a &#34;label&#34;"' in svg


def test_a_small_legend_lists_only_shades_that_can_occur() -> None:
    svg = str(charts.world_map({"DE": 2}, {"DE": "M1 1h2v2h-2z"}, {}, "installs", "map"))
    assert re.findall(r'<span class="swatch q(\d)">([^<]*)</span>', svg) == [("3", "1"), ("5", "2")]
    assert shaded(svg)["DE"][0] == 5


def test_country_names_and_labels() -> None:
    assert worldmap.country_name("de") == "Germany"
    assert [worldmap.country_label(c) for c in ("DE", "gb", "unknown", "", "Q1")] == [
        "Germany (DE)",
        "United Kingdom (GB)",
        "unknown",
        "",
        "Q1",
    ]


def test_the_world_outlines_are_complete_and_small() -> None:
    shapes = worldmap.country_shapes()
    assert len(shapes) >= 180 and {"DE", "US", "BR", "CN", "IN", "AU", "ZA", "AD", "SG"} <= set(shapes)
    assert "AQ" not in shapes
    size = sum(len(d) for d in shapes.values())
    assert 20_000 < size < 80_000, f"the outlines take {size:,} bytes"
    for code, data in shapes.items():
        assert re.fullmatch(r"(M-?\d+ -?\d+(l[-\d ]+|h-?\d+v-?\d+h-?\d+)z)+", data), code
        assert worldmap.outline(data), code


def test_outlines_follow_relative_and_absolute_commands() -> None:
    # A move, an implicit line, a curve (its end point), h, v, a close, then a second ring.
    rings = worldmap.outline("m10 10 5 0c1 1 2 2 0 5h-5v-5z M100 100 L110 100 s1 1 0 10 z")
    assert rings == [[(10, 10), (15, 10), (15, 15), (10, 15), (10, 10)], [(100, 100), (110, 100), (110, 110)]]
    with pytest.raises(ValueError):
        worldmap.outline("m0 0a1 1 0 0 0 1 1")
    assert worldmap.simplify([(0, 0), (1, 0.1), (2, 0), (3, 5)], 0.5) == [(0, 0), (2, 0), (3, 5)]


DAY = dt.date(2026, 11, 20)


def record(install: str, os: str, app: str = "tool", days_ago: int = 0) -> EventRecord:
    moment = dt.datetime.combine(DAY - dt.timedelta(days=days_ago), dt.time(12))
    return EventRecord(
        moment, moment, app, "1.0", "command", install, "s", os, "", "x86_64", "cpython", "3.12", "", "", "DE", "{}",
        "native",
    )  # fmt: skip


OS_EVENTS = [
    *(record(f"lin{i}", "linux") for i in range(4)),
    record("lin0", "linux"),
    *(record(f"mac{i}", "darwin") for i in range(2)),
    *(record("mac0", "darwin") for _ in range(3)),
    *(record(f"win{i}", "windows") for i in range(2)),  # ties darwin on installs, fewer events
    record("both", "windows"),
    record("both", "linux"),  # one install on two systems counts once in each, once in all
    *(record(f"blank{i}", "") for i in range(2)),
    record("", "freebsd"),  # no install id: an event, no install
    record("lin9", "linux", days_ago=40),  # outside the range
    record("other", "haiku", app="other-tool"),  # another app
]


@pytest.fixture
def os_store(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.write(OS_EVENTS).result(timeout=30)
    yield store
    store.close()


def reference_os(events: list[EventRecord], app: str, start: dt.date, end: dt.date) -> list[list[object]]:
    """The `os` report from its definition, in plain Python."""
    kept = [e for e in events if e.app == app and start <= e.time.date() <= end]
    everyone = {e.install for e in kept if e.install}
    by_os: dict[str, tuple[set[str], int]] = {}
    for e in kept:
        name = e.os or "(unknown)"
        installs, count = by_os.get(name, (set(), 0))
        by_os[name] = (installs | ({e.install} if e.install else set()), count + 1)
    rows = [[name, len(ids), n, len(ids) / len(everyone)] for name, (ids, n) in by_os.items()]
    return sorted(rows, key=lambda r: (-int(str(r[1])), -int(str(r[2])), str(r[0])))


def test_the_os_report_counts_installs_events_and_shares(os_store: DuckDBStore) -> None:
    filters = Filters(DAY - dt.timedelta(days=29), DAY)
    result = reports.run_report(os_store, "os", "tool", filters)
    assert result.columns == ["os", "installs", "events", "share"]
    expected = reference_os(OS_EVENTS, "tool", filters.start, filters.end)
    assert result.rows == [[n, i, e, pytest.approx(s)] for n, i, e, s in expected]
    assert [row[0] for row in result.rows] == ["linux", "windows", "darwin", "(unknown)", "freebsd"]
    assert result.rows[0][1:3] == [5, 6] and result.rows[0][3] == pytest.approx(5 / 11)
    assert result.meta["installs"] == 11


def test_the_os_report_follows_the_filters(os_store: DuckDBStore) -> None:
    old = reports.run_report(os_store, "os", "tool", Filters(DAY - dt.timedelta(days=45), DAY - dt.timedelta(days=35)))
    assert old.rows == [["linux", 1, 1, 1.0]]
    empty = reports.run_report(os_store, "os", "nobody", Filters(DAY, DAY))
    assert empty.rows == [] and empty.meta["installs"] == 0


def test_a_share_bar_lays_the_shares_side_by_side_and_groups_the_tail() -> None:
    shares = [("linux", 0.5), ("macos", 0.2), ("windows", 0.1), ("a", 0.05), ("b", 0.05), ("c", 0.05), ("<d>", 0.05)]
    svg = str(charts.share_bar(shares, "Share of installs"))
    slices = re.findall(r'<rect x="([\d.]+)" width="([\d.]+)" height="6" class="(\w+)"><title>([^<]*)</title>', svg)
    assert [(float(x), float(w), css) for x, w, css, _ in slices] == [
        (0, 50, "c0"), (50, 20, "c1"), (70, 10, "c2"), (80, 5, "c3"), (85, 5, "c4"), (90, 10, "rest"),
    ]  # fmt: skip
    assert [title for *_, title in slices] == [
        "linux: 50%",
        "macos: 20%",
        "windows: 10%",
        "a: 5%",
        "b: 5%",
        "2 more: 10%",
    ]
    assert "<d>" not in svg
    assert str(charts.share_bar([], "nothing")) == str(charts.EMPTY)
    assert "&lt;b&gt;" in str(charts.share_bar([("<b>", 1.0)], "x"))


def test_a_map_of_the_top_countries_never_says_the_others_have_none() -> None:
    shapes = {"DE": "M1 1h2v2h-2z", "FR": "M5 5h2v2h-2z"}
    names = {"DE": "Germany (DE)", "FR": "France (FR)"}
    cut = str(charts.world_map({"DE": 4}, shapes, names, "installs", "map", cut=20))
    assert shaded(cut)["FR"] == (0, "France (FR): not among the top 20")
    assert "Only the top 20 countries are shaded." in cut
    whole = str(charts.world_map({"DE": 4}, shapes, names, "installs", "map"))
    assert shaded(whole)["FR"] == (0, "France (FR): no installs") and "Only the top" not in whole
