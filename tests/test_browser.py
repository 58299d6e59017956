"""The dashboard in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, footfall_command, start_server

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("browser")
    data = root / "data"
    subprocess.run(footfall_command("demo", "--data", str(data), "--scale", "0.05", "--days", "40"),
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    subprocess.run(footfall_command("user", "add", "owner@example.org", "--role", "owner", "--app", "mdlint",
                                    "--password-stdin", "--data", str(data)),
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=60)  # fmt: skip
    server = start_server(data, root / "server.log")
    yield server
    server.stop()


def log_in(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/apps/mdlint")
    assert page.url.startswith(server.url + "/login"), "an unauthenticated visit leads to the login"
    page.fill("#email", "owner@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")


def test_log_in_see_every_panel_filter_export_and_log_out(
    browser: Any, demo_server: LiveServer, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    for path in ("/", "/apps/mdlint?tab=when"):
        page.goto(demo_server.url + path)
        assert "/login" in page.url
    log_in(page, demo_server)
    assert page.locator("[data-app]").all_inner_texts()[0].startswith("mdlint"), "the owner sees their app"
    page.click("[data-app=mdlint]")
    page.wait_for_selector("section[data-report=overview]")

    events = page.locator("[data-measure=events] b").inner_text()
    assert int(events.replace(",", "")) > 0
    header = page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
    assert header == "rgb(29, 36, 48)", "the self-hosted stylesheet applies under the CSP"
    from footfall.server.edge.dashboard import TABS

    for tab, reports in TABS.items():
        page.click(f"nav.tabs >> text={tab.title()}")
        page.wait_for_url(re.compile(rf".*tab={tab}.*"))
        for report in reports:
            panel = page.locator(f"section[data-report={report}]")
            assert panel.is_visible(), (tab, report)
            if report in ("ga", "dimensions"):
                continue  # the demo apps send no GA hits
            assert panel.locator("svg, tbody tr, .figure").count() > 0, f"{report} has no data"
    page.screenshot(path=str(tmp_path / "tab.png"))

    page.click("nav.tabs >> text=Versions")
    suggested = page.locator("datalist#versions option").first.get_attribute("value")
    page.fill("input[name=version]", suggested)
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(rf".*version={re.escape(suggested)}.*"))
    assert page.locator("section[data-report=versions] tbody tr").count() >= 1
    page.fill("input[name=version]", "")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*version=(&|$).*"))  # an empty version: all of them

    page.click("nav.tabs >> text=Overview")
    page.select_option("select[name=days]", "7")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*days=7.*"))
    first_day = page.locator("main > p .muted").inner_text().split(" to ")[0]
    page.click("nav.tabs >> text=Where")
    page.select_option("select[name=ci]", "exclude")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*ci=exclude.*"))
    environments = page.locator("section[data-report=environments] tbody").inner_text()
    assert "local" in environments and "ci:" not in environments
    assert page.locator("main > p .muted").inner_text().split(" to ")[0] == first_day, "the range is kept"

    with page.expect_download() as download:
        page.click("section[data-report=countries] >> text=Export CSV")
    csv_path = tmp_path / "countries.csv"
    download.value.save_as(csv_path)
    assert csv_path.read_text().splitlines()[0] == "country,installs,events"

    page.click("header button:has-text('Log out')")
    page.wait_for_url(re.compile(r".*/login"))
    page.goto(demo_server.url + "/apps/mdlint")
    assert "/login" in page.url
    violations = [text for text in console if "Content Security Policy" in text]
    assert not violations, f"the dashboard broke its own CSP: {violations[:3]}"
    context.close()


def test_the_dashboard_fits_a_phone(browser: Any, demo_server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    log_in(page, demo_server)
    page.goto(demo_server.url + "/apps/mdlint")
    page.wait_for_selector("section[data-report=timeseries] svg")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px on a phone"
    context.close()


def test_properties_pick_a_value_to_filter_and_compare_versions(browser: Any, demo_server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    log_in(page, demo_server)
    page.goto(demo_server.url + "/apps/mdlint?days=40")
    page.click("nav.tabs >> text=Properties")
    page.wait_for_selector("form.pickers select[name=event]")
    assert page.locator("select[name=property] option").count() > 0, "the property picker is filled"

    # Another event: the property resets to that event's first, a number, with quantiles and a histogram.
    page.select_option("select[name=event]", "lint")
    page.click("form.pickers button[type=submit]")
    page.wait_for_url(re.compile(r".*event=lint.*"))
    assert page.locator("select[name=property]").input_value() == "files"
    panel = page.locator("section[data-report=properties]")
    assert panel.locator("[data-measure=p50] b").inner_text() != ""
    assert panel.locator("table[aria-label^=Histogram] tbody tr").count() >= 2

    page.select_option("select[name=property]", "format")
    page.click("form.pickers button[type=submit]")
    page.wait_for_url(re.compile(r".*property=format.*"))
    before = int(panel.locator("[data-with-property]").get_attribute("data-with-property") or 0)
    first = panel.locator("table.values tbody tr").first
    value = first.locator("a.add-filter").inner_text()
    value_events = int(first.locator("td").nth(1).inner_text().replace(",", ""))
    assert 0 < value_events < before, "the value is one of several"

    first.locator("a.add-filter").click()
    page.wait_for_url(re.compile(r".*where=lint\.format%3D.*"))
    chip = page.locator("li.chip")
    assert chip.count() == 1 and f"lint.format={value}" in chip.inner_text()
    after = int(panel.locator("[data-with-property]").get_attribute("data-with-property") or 0)
    assert after == value_events, "the numbers are those of the chosen value only"
    page.click("nav.tabs >> text=How")
    page.wait_for_url(re.compile(r".*tab=how.*"))
    assert page.locator("li.chip").count() == 1, "the tabs keep the filter"
    page.click("li.chip a")
    page.wait_for_url(lambda url: "where=" not in url)
    assert page.locator("li.chip").count() == 0, "the chip removes its filter"

    page.click("nav.tabs >> text=Versions")
    options = page.locator("select[name=a] option").all_inner_texts()
    assert len(options) >= 2
    page.select_option("select[name=a]", options[-1])
    page.select_option("select[name=b]", options[0])
    page.click("form.pickers button[type=submit]")
    page.wait_for_url(re.compile(r".*tab=versions.*a=.*"))
    compared = page.locator("[data-compare]").get_attribute("data-compare")
    assert compared == f"{options[-1]} {options[0]}"
    assert page.locator("table.compare tr[data-dimension=command]").count() >= 1
    assert page.locator("table.compare svg.pair rect").count() >= 2
    violations = [text for text in console if "Content Security Policy" in text]
    assert not violations, f"the new views broke the CSP: {violations[:3]}"
    context.close()


def test_an_owner_sets_the_time_zone_in_the_dashboard_and_its_days_and_hours_move(
    browser: Any, demo_server: LiveServer
) -> None:
    def set_zone(zone: str) -> None:
        done = subprocess.run(
            footfall_command("app", "timezone", "mdlint", zone, "--data", str(demo_server.data)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    def busiest_cell(page: Any) -> str:
        page.goto(demo_server.url + "/apps/mdlint?tab=when&days=40")
        heatmap = page.locator("svg.heatmap")
        titles = heatmap.locator("rect title").evaluate_all("titles => titles.map(t => t.textContent)")
        counts = [int(re.search(r": ([\d,]+) events", t).group(1).replace(",", "")) for t in titles]  # type: ignore[union-attr]
        assert heatmap.get_attribute("aria-label").endswith(page_zone[0])
        return titles[counts.index(max(counts))]

    def set_zone_in_dashboard(page: Any, zone: str) -> None:
        page.goto(demo_server.url + "/apps/mdlint")
        page.fill("form.zone input[name=timezone]", zone)
        page.click("form.zone button[type=submit]")
        page.wait_for_url(demo_server.url + "/apps/mdlint")
        assert f"({zone})" in page.locator("main p .muted").first.inner_text(), "the range names the app's zone"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, demo_server)
    page_zone = ["UTC"]
    in_utc = busiest_cell(page)
    try:
        page.goto(demo_server.url + "/apps/mdlint")
        page.fill("form.zone input[name=timezone]", "Mars/Olympus_Mons")
        page.click("form.zone button[type=submit]")
        assert "unknown time zone 'Mars/Olympus_Mons'" in page.locator("main").inner_text()
        set_zone_in_dashboard(page, "Asia/Tokyo")  # nine hours ahead of UTC, no daylight saving
        page_zone[0] = "Asia/Tokyo"
        in_tokyo = busiest_cell(page)
    finally:
        set_zone("UTC")
    assert "UTC" in in_utc and "Asia/Tokyo" in in_tokyo
    hour_utc = int(re.search(r" (\d\d):00 ", in_utc).group(1))  # type: ignore[union-attr]
    hour_tokyo = int(re.search(r" (\d\d):00 ", in_tokyo).group(1))  # type: ignore[union-attr]
    assert hour_tokyo == (hour_utc + 9) % 24, (in_utc, in_tokyo)
    assert in_utc.split(": ")[1] == in_tokyo.split(": ")[1], "the same busiest hour, the same count"
    context.close()
