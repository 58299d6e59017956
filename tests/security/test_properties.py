"""Red-team regressions for the Properties tab, property filters, errors and compare.

Property values, names and filter values come from clients (or from a URL someone else
crafted). They must stay text in the dashboard (chips, pickers, tables, links), stay out
of the SQL, stay inside the reader's own apps, and the pickers must stay bounded however
many names a client sends. Real servers on loopback, real DuckDB, httpx as the client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import urllib.parse
from typing import Any

import httpx
import pytest

from footfall.server.stores.base import EventRecord
from tests.conftest import GOLDEN_APP, InThreadServer

PASSWORD = "a long enough password"
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def stored(name: str, props: dict[str, Any], app: str = GOLDEN_APP, install: str = "a") -> EventRecord:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=1)
    key = hashlib.sha256(install.encode()).hexdigest()
    return EventRecord(
        now, now, app, "1.0", name, key, key, "linux", "6", "x86_64", "cpython", "3.12", "", "", "", json.dumps(props),
        "native",
    )  # fmt: skip


def bearer(server: InThreadServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def log_in(client: httpx.Client, server: InThreadServer) -> None:
    client.get(f"/login?code={server.app.state.context.accounts.create_login_code()}")


def test_hostile_values_and_filters_stay_text_in_the_dashboard(app_server: InThreadServer) -> None:
    app_server.store.write([stored("export", {"format": HOSTILE}), stored("export", {"format": "csv"})]).result(30)
    where = f"export.format={HOSTILE}"
    with httpx.Client(base_url=app_server.url) as client:
        log_in(client, app_server)
        page = client.get(
            f"/apps/{GOLDEN_APP}",
            params={"tab": "properties", "event": "export", "property": "format", "where": where},
        )
    assert page.status_code == 200
    assert "<script>" not in page.text and "<img" not in page.text, "a value became markup"
    assert "&lt;script&gt;" in page.text, "the value is shown, as text"
    assert "onerror=alert" not in page.text.replace("onerror=alert(2)&gt;", ""), "an attribute escaped its quotes"
    chips = re.findall(r'<li class="chip">(.*?)</li>', page.text)
    assert len(chips) == 1 and "&lt;script&gt;" in chips[0]
    # The chip's link removes exactly that filter: no where= left in it.
    link = re.search(r'href="([^"]+)"', chips[0]).group(1)  # type: ignore[union-attr]
    assert "where" not in urllib.parse.parse_qs(urllib.parse.urlsplit(link.replace("&amp;", "&")).query)


@pytest.mark.parametrize(
    "params",
    [
        {"event": "export' OR '1'='1", "property": "format"},
        {"event": "export", "property": "format') FROM events; --"},
        {"event": "export", "property": 'a"].b'},
        {"a": "1.0'; DROP TABLE events; --", "b": "1.0"},
    ],
)
def test_names_and_versions_never_reach_sql(app_server: InThreadServer, params: dict[str, str]) -> None:
    app_server.store.write([stored("export", {"format": "csv"})]).result(30)
    path = "compare" if "a" in params else "properties"
    response = httpx.get(f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/{path}", params=params, headers=bearer(app_server))
    assert response.status_code == 400 and response.json()["error"]["code"] == "usage"
    with httpx.Client(base_url=app_server.url) as client:
        log_in(client, app_server)
        page = client.get(
            f"/apps/{GOLDEN_APP}", params={"tab": "versions" if "a" in params else "properties", **params}
        )
    # Refused, or (a property not among a listed event's) replaced by that event's first property.
    assert page.status_code in (200, 400) and "query failed" not in page.text
    after = httpx.get(f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/reports/events", headers=bearer(app_server))
    assert after.json()["rows"][0]["events"] >= 1, "the events are still there"


def test_a_dotted_or_quoted_property_name_is_one_name(app_server: InThreadServer) -> None:
    """A JSON path is built from a name only quoted: "a.b" is the key a.b, never a's member b."""
    app_server.store.write([stored("ev", {"a.b": "flat", "a": {"b": "nested"}})]).result(30)
    response = httpx.get(
        f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/properties",
        params={"event": "ev", "property": "a.b"},
        headers=bearer(app_server),
    )
    assert [row["value"] for row in response.json()["rows"]] == ["flat"]


def test_a_reader_of_one_app_gets_nothing_of_another(app_server: InThreadServer) -> None:
    app_server.store.add_app("secret-app")
    app_server.store.write([stored("export", {"format": "private"}, app="secret-app")]).result(30)
    accounts = app_server.app.state.context.accounts
    accounts.add_user("viewer@example.org", PASSWORD, "viewer", GOLDEN_APP)
    token = {"Authorization": f"Bearer {accounts.create_token('viewer@example.org')}"}
    for path, params in (
        ("properties", {"event": "export", "property": "format"}),
        ("properties/names", {}),
        ("compare", {"a": "1.0", "b": "1.0"}),
        ("reports/errors", {}),
        ("reports/properties", {"event": "export", "property": "format"}),
    ):
        response = httpx.get(f"{app_server.url}/api/v1/apps/secret-app/{path}", params=params, headers=token)
        assert response.status_code == 403 and "private" not in response.text, path


def test_the_pickers_stay_bounded(app_server: InThreadServer) -> None:
    """A client sending thousands of event and property names cannot make the pickers (or the page) huge."""
    from footfall.server.query.properties import MAX_PICKER_EVENTS, MAX_PICKER_PROPERTIES

    many = [stored(f"event_{i}", {f"p{j}": 1 for j in range(80)}) for i in range(300)]
    app_server.store.write(many).result(60)
    names = httpx.get(f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/properties/names", headers=bearer(app_server)).json()
    assert len(names["events"]) == MAX_PICKER_EVENTS
    assert max(len(e["properties"]) for e in names["events"]) == MAX_PICKER_PROPERTIES


def test_a_hostile_property_name_is_shown_but_never_picked(app_server: InThreadServer) -> None:
    """A key no report can take (markup, spaces) is not offered, so the tab still opens on a real pick."""
    app_server.store.write([stored("export", {HOSTILE: 1, "format": "csv"}), stored(HOSTILE, {"a": 1})]).result(30)
    names = httpx.get(f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/properties/names", headers=bearer(app_server)).json()
    assert names["events"] == [{"name": "export", "properties": ["format"]}]
    with httpx.Client(base_url=app_server.url) as client:
        log_in(client, app_server)
        page = client.get(f"/apps/{GOLDEN_APP}", params={"tab": "properties"})
    assert page.status_code == 200 and 'data-report="properties"' in page.text


def test_a_value_named_other_does_not_merge_with_the_rest(app_server: InThreadServer) -> None:
    """The rest is summed apart from any value of that name: a client sending "(other)" cannot
    fold its count into the rest (or the rest into its own)."""
    from footfall.server.query.properties import OTHER, TOP_VALUES

    records = [stored("export", {"format": OTHER}, install=f"o{i}") for i in range(50)]
    records += [stored("export", {"format": f"f{i:02d}"}, install=f"f{i}") for i in range(TOP_VALUES + 5)]
    app_server.store.write(records).result(30)
    rows = httpx.get(
        f"{app_server.url}/api/v1/apps/{GOLDEN_APP}/properties",
        params={"event": "export", "property": "format"},
        headers=bearer(app_server),
    ).json()["rows"]
    assert rows[0] == {"value": OTHER, "events": 50, "installs": 50, "share": pytest.approx(50 / 75, abs=1e-4)}
    assert rows[-1]["value"] == OTHER and rows[-1]["events"] == 6, "the rest: the 6 values past the top 19 others"
    assert len(rows) == TOP_VALUES + 1
