"""Red-team regressions for issue 8's dashboard polish: app cards, the world map and the per-OS shares.

Country and OS values are data: a client sends the OS, and a country may come from a
forwarded header or a database. None of it may become markup, and none of it may make a
page grow without bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import httpx

from footfall.server.stores.base import EventRecord
from tests.conftest import GOLDEN_APP, InThreadServer
from tests.security.test_web import ADMIN, HOSTILE, admin_server, assert_inert, log_in

__all__ = ["admin_server"]  # the fixture, imported to be used here

MAX_WHERE_BYTES = 150_000  # the Where tab, map included, however many countries were sent
MAX_PLATFORMS_BYTES = 60_000  # the Platforms tab, however many OS names were sent
MAX_CARD_BYTES = 3_000  # one app card on the home page


def event(when: dt.datetime, install: str, os: str = "linux", country: str = "DE") -> EventRecord:
    return EventRecord(
        when, when, GOLDEN_APP, "1.0", "command", install, install, os, "6.1", "x86_64", "cpython", "3.12", "", "",
        country, '{"command": "build"}', "native",
    )  # fmt: skip


def recent() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)


def test_hostile_countries_and_systems_stay_text_in_the_map_the_shares_and_the_cards(
    admin_server: InThreadServer,
) -> None:
    now = recent()
    records = [
        event(now, "i1", os=HOSTILE, country=HOSTILE),
        event(now, "i2", os=HOSTILE, country="<b>"),
        event(now - dt.timedelta(days=8), "i3", os="linux", country="DE"),
    ]
    admin_server.store.write(records).result(timeout=30)
    with httpx.Client(base_url=admin_server.url, timeout=60) as browser:
        log_in(browser, ADMIN)
        where = browser.get(f"/apps/{GOLDEN_APP}?tab=where&days=30").text
        assert_inert(where, "the Where tab")
        assert "<b>" not in where
        assert '<svg class="chart worldmap"' in where
        assert re.search(r'data-country="DE"><title>Germany \(DE\): 1 installs</title>', where)
        assert "installs not on the map" in where, "the hostile countries are counted, not drawn"
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in where, "shown, as text, in the table"
        platforms = browser.get(f"/apps/{GOLDEN_APP}?tab=platforms&days=30").text
        assert_inert(platforms, "the Platforms tab")
        share = re.search(r'<svg class="sharebar".*?</svg>', platforms, re.S)
        assert share and "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=alert(2) x=&#39;: 67%" in share.group(0)
        home = browser.get("/").text
        assert_inert(home, "the home page")


def test_thousands_of_countries_and_systems_keep_the_pages_small(admin_server: InThreadServer) -> None:
    now = recent()
    base = event(now, "x")
    records = [
        dataclasses.replace(base, install=f"i{n}", os=f"os-{n}-" + "x" * 40, country=f"{chr(65 + n % 26)}{n}")
        for n in range(3000)
    ]
    admin_server.store.write(records).result(timeout=120)
    with httpx.Client(base_url=admin_server.url, timeout=60) as browser:
        log_in(browser, ADMIN)
        where = browser.get(f"/apps/{GOLDEN_APP}?tab=where&days=30")
        assert where.status_code == 200 and len(where.content) < MAX_WHERE_BYTES, len(where.content)
        platforms = browser.get(f"/apps/{GOLDEN_APP}?tab=platforms&days=30")
        assert platforms.status_code == 200 and len(platforms.content) < MAX_PLATFORMS_BYTES, len(platforms.content)
        assert platforms.text.count('<rect x="') <= 6, "five slices and one for the rest"
        assert "Only the top 20 countries are shaded." in where.text
        assert ": no installs</title>" not in where.text, "a country outside the top 20 may have installs"
        home = browser.get("/")
        cards = re.findall(r'<a href="/apps/[^"]*" data-app=".*?</a>', home.text, re.S)
        assert len(cards) == 1 and len(cards[0]) < MAX_CARD_BYTES, len(cards[0])
