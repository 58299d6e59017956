"""Issue 8's dashboard polish in a real headless Chromium (Debian's): app cards, the world map, per-OS shares.

Each figure on the page is checked against the same report read from the API, so the test
proves the page shows the numbers, not only that it draws something.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from footfall.server.edge.charts import SPARK_HEIGHT
from tests.conftest import LiveServer, footfall_command, start_server

ADMIN = "admin@example.org"
PASSWORD = "a long enough password"
MAX_HOME_BYTES = 60_000  # three apps; a card is about 2 KB
MAX_MAP_BYTES = 150_000  # the world map's inline SVG
MAX_WHERE_BYTES = 200_000  # the whole Where tab, map included


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("dashboard")
    data = root / "data"
    subprocess.run(footfall_command("demo", "--data", str(data), "--scale", "0.05", "--days", "40"),
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    subprocess.run(footfall_command("user", "add", ADMIN, "--role", "admin", "--password-stdin", "--data", str(data)),
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=60)  # fmt: skip
    live = start_server(data, root / "server.log")
    yield live
    live.stop()


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    browser_page = context.new_page()
    console: list[str] = []
    browser_page.on("console", lambda message: console.append(message.text))
    browser_page.goto(server.url + "/login")
    browser_page.fill("#email", ADMIN)
    browser_page.fill("#password", PASSWORD)
    browser_page.click("button[type=submit]")
    browser_page.wait_for_url(server.url + "/")
    yield browser_page
    violations = [text for text in console if "Content Security Policy" in text]
    assert not violations, f"the dashboard broke its own CSP: {violations[:3]}"
    context.close()


def api_report(server: LiveServer, app: str, name: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/api/v1/apps/{app}/reports/{name}",
        params=params,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def points(text: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in text.split())]


def expected_change(per_day: list[int]) -> str:
    """The card's change from its definition: the 7 full days before today against the 7 before those."""
    full = per_day[:-1]  # the range ends today, which is not over
    current, previous = sum(full[-7:]), sum(full[-14:-7])
    if not previous:
        return "new" if current else "no events"
    percent = round((current - previous) / previous * 100)
    return ("+" if percent >= 0 else "\u2212") + f"{abs(percent)}%"


def test_each_app_card_shows_a_sparkline_of_its_days_and_the_weekly_change(page: Any, server: LiveServer) -> None:
    response = page.goto(server.url + "/")
    assert len(response.body()) < MAX_HOME_BYTES, f"the home page is {len(response.body()):,} bytes"
    cards = page.locator("[data-app]")
    names = [cards.nth(i).get_attribute("data-app") for i in range(cards.count())]
    assert len(names) == 3, names
    for name in names:
        card = page.locator(f"[data-app='{name}']")
        series = api_report(server, name, "timeseries", days="30")
        per_day = [row["events"] for row in series["rows"]]
        assert series["rows"][-1]["period"] == dt.datetime.now(dt.timezone.utc).date().isoformat()
        assert card.locator("svg.spark").is_visible()
        assert card.locator("svg.spark title").text_content().startswith(f"{name}: events per day")
        whole = points(card.locator("polyline.whole").get_attribute("points"))
        partial = points(card.locator("polyline.partial").get_attribute("points"))
        assert len(whole) == 29 and partial[0] == whole[-1] and len(partial) == 2, "today is drawn apart"
        heights = [y for _, y in whole] + [partial[1][1]]
        peak = max(per_day)
        for i, a in enumerate(per_day):
            for j, b in enumerate(per_day):
                # More events, higher (smaller y); points carry one decimal of the 30-unit height,
                # so days closer than that may share a height, never invert.
                if a > b and (a - b) / peak * (SPARK_HEIGHT - 2) >= 0.1:
                    assert heights[i] < heights[j], (name, i, j, a, b)
                elif a > b:
                    assert heights[i] <= heights[j], (name, i, j, a, b)
        assert heights[per_day.index(max(per_day))] == 1
        assert card.locator(".change").inner_text() == expected_change(per_day)
        assert card.locator(".muted").inner_text().startswith(f"{sum(per_day):,} events")


def test_the_where_tab_draws_a_world_map_titled_by_country_name(page: Any, server: LiveServer) -> None:
    response = page.goto(server.url + "/apps/mdlint?tab=where&days=30")
    size = len(response.body())
    world = page.locator("section[data-report=countries] svg.worldmap")
    assert world.is_visible()
    map_bytes = len(world.evaluate("node => node.outerHTML"))
    assert map_bytes < MAX_MAP_BYTES and size < MAX_WHERE_BYTES, (map_bytes, size)

    rows = api_report(server, "mdlint", "countries", days="30")["rows"]
    known = [r for r in rows if r["country"] != "unknown"]
    assert len(known) >= 3, rows
    top = max(known, key=lambda r: r["installs"])
    from footfall.server.edge.worldmap import country_name

    shape = world.locator(f"path[data-country={top['country']}]")
    assert shape.get_attribute("class") == "q5", "the country with the most installs is the darkest"
    title = shape.locator("title").text_content()
    assert title == f"{country_name(top['country'])} ({top['country']}): {top['installs']:,} installs"
    for row in known:
        drawn = world.locator(f"path[data-country={row['country']}]")
        if drawn.count():
            assert drawn.get_attribute("class") != "q0", row
    shades = {
        r["country"]: int(world.locator(f"path[data-country={r['country']}]").get_attribute("class")[1:])
        for r in known
        if world.locator(f"path[data-country={r['country']}]").count()
    }
    by_installs = sorted(shades, key=lambda code: next(r["installs"] for r in known if r["country"] == code))
    assert [shades[c] for c in by_installs] == sorted(shades.values()), "more installs, a darker shade"
    assert world.locator("path.q0").count() > 100, "countries with none are drawn, unshaded"

    first_cell = page.locator("section[data-report=countries] tbody tr td").first.inner_text()
    assert re.fullmatch(r"[A-Z][^()]+ \([A-Z]{2}\)|unknown", first_cell), first_cell
    legend = page.locator("section[data-report=countries] figcaption .swatch")
    assert legend.count() >= 2 and legend.last.inner_text().endswith(f"{top['installs']:,}")
    page.goto(server.url + "/apps/mdlint?tab=overview")
    assert page.locator("section[data-report=countries] svg.worldmap").count() == 0, "the overview stays light"
    assert re.search(r"\([A-Z]{2}\)", page.locator("section[data-report=countries] tbody").inner_text())


def test_the_platforms_tab_shows_per_os_installs_and_shares(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/apps/mdlint?tab=platforms&days=30")
    sections = page.locator("section[data-report]")
    order = [sections.nth(i).get_attribute("data-report") for i in range(sections.count())]
    assert order.index("os") < order.index("platforms"), "per-OS totals above the OS-version table"
    report = api_report(server, "mdlint", "os", days="30")
    assert report["rows"], report
    table = page.locator("section[data-report=os] tbody tr")
    assert table.count() == len(report["rows"])
    head = page.locator("section[data-report=os] thead").inner_text().split()
    assert head == ["os", "installs", "events", "share"]
    peak = max(r["share"] for r in report["rows"])
    for i, row in enumerate(report["rows"]):
        cells = table.nth(i).locator("td").all_inner_texts()
        assert cells == [row["os"], f"{row['installs']:,}", f"{row['events']:,}", f"{row['share']:.0%}"]
        bar = float(table.nth(i).locator("svg.bar rect").get_attribute("width"))
        assert bar == pytest.approx(row["share"] / peak * 100, abs=0.1), "the bar is the share"
    assert sum(r["installs"] for r in report["rows"]) >= report["installs"] > 0
    slices = page.locator("section[data-report=os] svg.sharebar rect")
    assert slices.count() == min(len(report["rows"]), 6)
    first = slices.first
    assert float(first.get_attribute("width")) == pytest.approx(report["rows"][0]["share"] * 100, abs=0.01)
    assert first.locator("title").text_content() == f"{report['rows'][0]['os']}: {report['rows'][0]['share']:.0%}"
    above = page.locator("section[data-report=os]").bounding_box()
    below = page.locator("section[data-report=platforms]").bounding_box()
    assert above["y"] + above["height"] <= below["y"], "the per-OS panel sits above the OS-version table"
