"""Red-team regressions for the web surface: CSRF, headers, escaping, exports, terminal output."""

from __future__ import annotations

import json
import re

import httpx
import pytest

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
