"""Access control, sessions, CSRF, the report API and public pages, on a real server."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import httpx
import pytest

from tests.conftest import GOLDEN_APP, InThreadServer, load_golden, with_fresh_times

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(app_server: InThreadServer) -> InThreadServer:
    app_server.store.add_app("other-app")
    batch = with_fresh_times(load_golden("batch-command.json"))
    assert httpx.post(app_server.url + "/v1/batch", json=batch).status_code == 202
    accounts = app_server.app.state.context.accounts
    accounts.add_user("viewer@example.org", PASSWORD, "viewer", GOLDEN_APP)
    accounts.add_user("owner@example.org", PASSWORD, "owner", GOLDEN_APP)
    return app_server


def accounts(server: InThreadServer) -> Any:
    return server.app.state.context.accounts


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"csrf": csrf, "email": email, "password": password})


def session_csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_the_api_needs_credentials(server: InThreadServer) -> None:
    for path in ("/api/v1/apps", f"/api/v1/apps/{GOLDEN_APP}/summary", f"/api/v1/apps/{GOLDEN_APP}/reports/overview"):
        response = httpx.get(server.url + path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert httpx.get(server.url + path, headers=bearer("ff_guess")).status_code == 401


def test_a_viewer_of_one_app_cannot_read_another(server: InThreadServer) -> None:
    token = accounts(server).create_token("viewer@example.org")
    apps = httpx.get(server.url + "/api/v1/apps", headers=bearer(token)).json()["apps"]
    assert [a["name"] for a in apps] == [GOLDEN_APP]
    mine = httpx.get(f"{server.url}/api/v1/apps/{GOLDEN_APP}/summary?days=7", headers=bearer(token))
    assert mine.status_code == 200 and mine.json()["events"] == 2
    for path in ("/api/v1/apps/other-app/summary", "/api/v1/apps/other-app/reports/overview"):
        refused = httpx.get(server.url + path, headers=bearer(token))
        assert refused.status_code == 403 and "events" not in refused.text
    assert httpx.post(server.url + "/api/v1/apps", json={"name": "x"}, headers=bearer(token)).status_code == 403
    with httpx.Client(base_url=server.url) as browser:
        assert login(browser, "viewer@example.org").status_code == 303
        assert browser.get("/apps/other-app").status_code == 404
        assert 'data-app="other-app"' not in browser.get("/").text


def test_passwords_and_tokens_are_stored_hashed(server: InThreadServer) -> None:
    token = accounts(server).create_token("owner@example.org")
    database = (server.data / "accounts.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in server.data.glob("accounts.sqlite-*")
    )
    assert PASSWORD.encode() not in database and token.encode() not in database
    with sqlite3.connect(server.data / "accounts.sqlite") as db:
        (stored,) = db.execute("SELECT password FROM users WHERE email = 'owner@example.org'").fetchone()
    assert stored.startswith("scrypt$16384$8$1$")


def test_login_session_dashboard_and_logout(server: InThreadServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        assert browser.get("/").headers["location"] == "/login"
        assert browser.get(f"/apps/{GOLDEN_APP}").status_code == 303
        wrong = login(browser, "owner@example.org", "not the password")
        assert wrong.status_code == 401 and "do not match" in wrong.text
        response = login(browser, "owner@example.org")
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        picker = browser.get("/")
        assert f'data-app="{GOLDEN_APP}"' in picker.text
        page = browser.get(f"/apps/{GOLDEN_APP}?days=7")
        assert page.status_code == 200
        for report in ("overview", "timeseries", "events", "countries"):
            assert f'data-report="{report}"' in page.text
        assert "<svg" in page.text and "cdn" not in page.text.lower() and "<script" not in page.text
        assert browser.post("/logout", data={"csrf": "forged"}).status_code == 403
        assert browser.post("/logout", data={"csrf": session_csrf(page.text)}).status_code == 303
        assert browser.get("/").headers["location"] == "/login"
    log = accounts(server).audit_log()
    assert {"login", "login_failed", "logout", "role_change"} <= {action for _, _, action, _, _ in log}


def test_login_needs_the_form_csrf_token(server: InThreadServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        browser.get("/login")
        forged = browser.post("/login", data={"csrf": "forged", "email": "owner@example.org", "password": PASSWORD})
        assert forged.status_code == 403 and "footfall_session" not in forged.headers.get("set-cookie", "")
        missing = browser.post("/login", data={"email": "owner@example.org", "password": PASSWORD})
        assert missing.status_code == 403


def test_logins_are_rate_limited(app_server_factory: Any) -> None:
    server: InThreadServer = app_server_factory(logins_per_minute=3)
    accounts(server).add_user("owner@example.org", PASSWORD, "owner", GOLDEN_APP)
    with httpx.Client(base_url=server.url) as browser:
        statuses = [login(browser, "owner@example.org", "wrong password").status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429


def test_the_operators_login_link(server: InThreadServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        assert browser.get("/login?code=wrong").status_code == 401
        assert browser.get(f"/login?code={accounts(server).create_login_code()}").status_code == 303
        names = re.findall(r'data-app="([^"]+)"', browser.get("/").text)
        assert names == [GOLDEN_APP, "other-app"], "the local admin sees every app"


def test_reports_as_json_and_csv(server: InThreadServer) -> None:
    headers = bearer(server.token)
    url = f"{server.url}/api/v1/apps/{GOLDEN_APP}/reports"
    overview = httpx.get(f"{url}/overview?days=7", headers=headers).json()
    assert overview["columns"] == ["measure", "value", "previous", "change"]
    assert {"measure": "events", "value": 2, "previous": 0, "change": None} in overview["rows"]
    csv = httpx.get(f"{url}/commands.csv?days=7&ci=only", headers=headers)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["command,runs,installs", "build,1,1"]
    assert httpx.get(f"{url}/commands?days=7&ci=exclude", headers=headers).json()["rows"] == []
    assert httpx.get(f"{url}/nope", headers=headers).status_code == 404
    bad = httpx.get(f"{url}/overview?country=Germany", headers=headers)
    assert bad.status_code == 400 and "two-letter" in bad.json()["error"]["message"]
    assert ("export", GOLDEN_APP) in {(a, app) for _, _, a, app, _ in accounts(server).audit_log()}


def test_only_an_owner_makes_an_app_public(server: InThreadServer) -> None:
    assert httpx.get(f"{server.url}/public/{GOLDEN_APP}.json").status_code == 404
    with httpx.Client(base_url=server.url) as viewer:
        login(viewer, "viewer@example.org")
        page = viewer.get(f"/apps/{GOLDEN_APP}")
        assert "Make public" not in page.text
        refused = viewer.post(f"/apps/{GOLDEN_APP}/public", data={"csrf": session_csrf(page.text), "public": "1"})
        assert refused.status_code == 403
    with httpx.Client(base_url=server.url) as owner:
        login(owner, "owner@example.org")
        page = owner.get(f"/apps/{GOLDEN_APP}")
        assert owner.post(f"/apps/{GOLDEN_APP}/public", data={"csrf": "forged", "public": "1"}).status_code == 403
        assert (
            owner.post(f"/apps/{GOLDEN_APP}/public", data={"csrf": session_csrf(page.text), "public": "1"}).status_code
            == 303
        )
    public = httpx.get(f"{server.url}/public/{GOLDEN_APP}.json").json()
    assert [w["days"] for w in public["windows"]] == [30, 90, 365]
    assert all(w["installs"] == 0 and not any(w["items"].values()) for w in public["windows"]), "one install shows"
    assert httpx.get(f"{server.url}/public/{GOLDEN_APP}").status_code == 200
    with httpx.Client(base_url=server.url) as owner:
        login(owner, "owner@example.org")
        page = owner.get(f"/apps/{GOLDEN_APP}")
        owner.post(f"/apps/{GOLDEN_APP}/public", data={"csrf": session_csrf(page.text), "public": "0"})
    assert httpx.get(f"{server.url}/public/{GOLDEN_APP}.json").status_code == 404, "a stored snapshot stays private"


def test_only_an_owner_sets_the_time_zone_and_a_bad_one_is_a_clear_400(server: InThreadServer) -> None:
    with httpx.Client(base_url=server.url) as viewer:
        login(viewer, "viewer@example.org")
        page = viewer.get(f"/apps/{GOLDEN_APP}")
        assert f'action="/apps/{GOLDEN_APP}/timezone"' not in page.text
        refused = viewer.post(
            f"/apps/{GOLDEN_APP}/timezone", data={"csrf": session_csrf(page.text), "timezone": "Asia/Tokyo"}
        )
        assert refused.status_code == 403
    assert server.store.timezone(GOLDEN_APP) == "UTC"
    with httpx.Client(base_url=server.url) as owner:
        login(owner, "owner@example.org")
        page = owner.get(f"/apps/{GOLDEN_APP}")
        assert "(UTC)" in page.text and 'name="timezone"' in page.text
        forged = owner.post(f"/apps/{GOLDEN_APP}/timezone", data={"csrf": "forged", "timezone": "Asia/Tokyo"})
        assert forged.status_code == 403
        csrf = session_csrf(page.text)
        bad = owner.post(f"/apps/{GOLDEN_APP}/timezone", data={"csrf": csrf, "timezone": "<b>Mars</b>"})
        assert bad.status_code == 400 and "unknown time zone" in bad.text and "<b>Mars" not in bad.text
        done = owner.post(f"/apps/{GOLDEN_APP}/timezone", data={"csrf": csrf, "timezone": "Asia/Tokyo"})
        assert done.status_code == 303
        assert "(Asia/Tokyo)" in owner.get(f"/apps/{GOLDEN_APP}").text
    try:
        assert server.store.timezone(GOLDEN_APP) == "Asia/Tokyo"
        assert ("timezone_set", GOLDEN_APP) in {(a, app) for _, _, a, app, _ in accounts(server).audit_log()}
    finally:
        server.store.set_timezone(GOLDEN_APP, "UTC")


def test_the_versions_tab_of_an_app_without_install_ids(server: InThreadServer) -> None:
    batch = with_fresh_times(load_golden("batch-minimal.json"))  # no-id mode: no installs to share
    server.store.add_app("counts-only")
    batch["app"] = "counts-only"
    batch["context"]["app_version"] = "1.0"
    assert httpx.post(server.url + "/v1/batch", json=batch).status_code == 202
    with httpx.Client(base_url=server.url) as browser:
        browser.get(f"/login?code={accounts(server).create_login_code()}")
        page = browser.get("/apps/counts-only?tab=versions")
    assert page.status_code == 200 and 'data-report="versions"' in page.text
