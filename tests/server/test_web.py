"""The API and dashboard behind the admin token, on a real server."""

from __future__ import annotations

import json

import httpx

from tests.conftest import GOLDEN_APP, InThreadServer, load_golden, with_fresh_times


def bearer(server: InThreadServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def test_api_needs_credentials(app_server: InThreadServer) -> None:
    for path in ("/api/v1/apps", f"/api/v1/apps/{GOLDEN_APP}/summary"):
        response = httpx.get(app_server.url + path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        wrong = httpx.get(app_server.url + path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_apps_api_adds_idempotently(app_server: InThreadServer) -> None:
    url = app_server.url + "/api/v1/apps"
    assert httpx.post(url, json={"name": "new-tool"}, headers=bearer(app_server)).status_code == 201
    assert httpx.post(url, json={"name": "new-tool"}, headers=bearer(app_server)).status_code == 200
    bad = httpx.post(url, json={"name": "Bad Name"}, headers=bearer(app_server))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "usage"
    names = [a["name"] for a in httpx.get(url, headers=bearer(app_server)).json()["apps"]]
    assert names == [GOLDEN_APP, "new-tool"]


def test_summary_api_reports_events_and_installs(app_server: InThreadServer) -> None:
    batch = with_fresh_times(load_golden("batch-command.json"))
    assert httpx.post(app_server.url + "/v1/batch", json=batch).status_code == 202
    response = httpx.get(
        app_server.url + f"/api/v1/apps/{GOLDEN_APP}/summary?days=7", headers=bearer(app_server)
    )
    assert response.status_code == 200
    summary = response.json()
    assert (summary["events"], summary["installs"], summary["runs"]) == (2, 1, 1)
    missing = httpx.get(app_server.url + "/api/v1/apps/nope/summary", headers=bearer(app_server))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_app"
    bad_days = httpx.get(
        app_server.url + f"/api/v1/apps/{GOLDEN_APP}/summary?days=-3", headers=bearer(app_server)
    )
    assert bad_days.status_code == 400


def test_dashboard_redirects_to_login_then_shows_apps(app_server: InThreadServer) -> None:
    with httpx.Client(base_url=app_server.url) as browser:
        first = browser.get("/")
        assert first.status_code == 303 and first.headers["location"] == "/login"
        wrong = browser.post("/login", data={"token": "guess"})
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert browser.get("/").status_code == 303
        batch = with_fresh_times(load_golden("batch-command.json"))
        browser.post("/v1/batch", content=json.dumps(batch))
        login = browser.post("/login", data={"token": app_server.token})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = browser.get("/")
        assert page.status_code == 200
        assert f'data-app="{GOLDEN_APP}"' in page.text
        assert '<b data-figure="events">2</b>' in page.text
        assert "<svg" in page.text and "cdn" not in page.text.lower()
        assert browser.post("/logout").status_code == 303
        assert browser.get("/").status_code == 303


def test_login_link_with_token_sets_a_session(app_server: InThreadServer) -> None:
    with httpx.Client(base_url=app_server.url) as browser:
        response = browser.get(f"/login?token={app_server.token}")
        assert response.status_code == 303
        assert browser.get("/").status_code == 200
        assert browser.get("/api/v1/apps").status_code == 200


def test_a_forged_session_cookie_is_refused(app_server: InThreadServer) -> None:
    forged = {"footfall_session": "99999999999.deadbeef"}
    assert httpx.get(app_server.url + "/", cookies=forged).status_code == 303
    assert httpx.get(app_server.url + "/api/v1/apps", cookies=forged).status_code == 401
