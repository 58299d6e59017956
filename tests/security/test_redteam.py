"""Regressions from the independent red-team pass on issue 11's fixes.

Black-box where possible: real servers on loopback (`app_server`, `app_server_factory`,
`start_server`), keys, apps and sharing set up through the admin API, the audit log read
with the CLI. Nothing is imported from `footfall.server`; to see what was stored, two tests
read the fixture's `store` and one looks at the data directory's files.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GOLDEN_APP, InThreadServer, footfall_command, start_server, with_fresh_times

MEASUREMENT_ID = "G-REDTEAM1"
API_SECRET = "redteam-secret"
LONE_SURROGATE = "\ud800"


def admin(server: InThreadServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def with_ga4_key(server: InThreadServer) -> InThreadServer:
    body = {"name": GOLDEN_APP, "ga4": [{"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET}]}
    response = httpx.post(server.url + "/api/v1/apps", headers=admin(server), json=body)
    assert response.status_code in (200, 201), response.text
    return server


def ga4_body(**fields: Any) -> bytes:
    body: dict[str, Any] = {"client_id": "1234567890.1764300000", "events": [{"name": "search", "params": {"n": 1}}]}
    body.update(fields)
    return json.dumps(body, ensure_ascii=True).encode()  # ASCII escapes carry the lone surrogate


# -- GA4 debug answers 200 whatever it is sent --------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        ga4_body(events=[{"name": "search", "params": {LONE_SURROGATE: 1}}]),
        ga4_body(user_properties={LONE_SURROGATE: {"value": "x"}}),
        # Python's JSON reader takes these; JSON cannot carry them back out.
        b'{"client_id": "1.2", "events": [{"name": "search", "params": {"v": NaN}}]}',
        b'{"client_id": "1.2", "events": [{"name": "search", "params": {"engagement_time_msec": 1e400}}]}',
        b'{"client_id": "1.2", "user_properties": {"plan": {"value": -Infinity}}, "events": [{"name": "search"}]}',
    ],
    ids=["param-key", "user-property-key", "param-nan", "engagement-time-overflow", "user-property-infinity"],
)
def test_ga4_debug_answers_200_to_what_its_echo_cannot_encode(app_server: InThreadServer, body: bytes) -> None:
    """Seen: a 500 and a traceback in the log: the debug echo holds the key (a lone surrogate)
    or the number (NaN, Infinity) and cannot be encoded."""
    server = with_ga4_key(app_server)
    query = {"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET}
    response = httpx.post(server.url + "/debug/mp/collect", params=query, content=body, timeout=30)
    assert response.status_code == 200, response.text
    assert "validationMessages" in response.json()
    collect = httpx.post(server.url + "/mp/collect", params=query, content=body, timeout=30)
    assert collect.status_code in (200, 204), collect.text


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_ga4_never_stores_non_finite_numbers(app_server: InThreadServer) -> None:
    """Seen: `NaN`, `Infinity` and `1e400` in GA4 parameters and user properties are stored, and
    the events' `props` then read `{"v":NaN,"w":Infinity}`: not JSON, for every consumer of
    the store or its exports. Native batches refuse them ("must be a finite number")."""
    server = with_ga4_key(app_server)
    query = {"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET}
    bodies = [
        b'{"client_id": "1.2", "events": [{"name": "search", "params": {"v": NaN, "w": Infinity, "n": 1}}]}',
        b'{"client_id": "1.3", "events": [{"name": "command", "params": {"duration_ms": 1e400}}]}',
        b'{"client_id": "1.4", "user_properties": {"plan": {"value": -Infinity}}, "events": [{"name": "search"}]}',
    ]
    for body in bodies:
        response = httpx.post(server.url + "/mp/collect", params=query, content=body)
        assert response.status_code in (200, 204), response.text
    rows = server.store.query("SELECT props FROM events").rows
    assert rows, "the events themselves are kept"
    for (props,) in rows:
        strict_json(props)


# -- removing an app removes its public releases ------------------------------------------


def share(server: InThreadServer, app: str) -> None:
    # A bearer request carries no ambient credential, so the form's CSRF field may be empty.
    response = httpx.post(f"{server.url}/apps/{app}/public", headers=admin(server), data={"public": "1", "csrf": ""})
    assert response.status_code == 303, response.text


def test_removing_an_app_removes_its_published_releases(app_server: InThreadServer) -> None:
    """Seen: `DELETE /api/v1/apps/{app}` (and `footfall app remove`) left DATA/public/{app}/*.json.

    Re-creating an app of that name and sharing it served the deleted app's release again
    (measured on the demo: 3,101 installs and 30,487 events of an app whose data was gone).
    """
    server = app_server
    share(server, GOLDEN_APP)
    before = httpx.get(f"{server.url}/public/{GOLDEN_APP}.json")
    assert before.status_code == 200, before.text
    removed = httpx.delete(f"{server.url}/api/v1/apps/{GOLDEN_APP}", headers=admin(server))
    assert removed.status_code == 200, removed.text
    leftovers = [p for p in server.data.rglob("*") if p.is_file() and GOLDEN_APP in str(p.relative_to(server.data))]
    assert leftovers == [], "the removed app's releases are still on disk"


# -- the distinct-value cap forgets a removed app -----------------------------------------


def versions_stored(server: InThreadServer) -> set[str]:
    report = httpx.get(f"{server.url}/api/v1/apps/{GOLDEN_APP}/reports/versions", headers=admin(server))
    assert report.status_code == 200, report.text
    return {row["version"] for row in report.json()["rows"]}


def test_a_recreated_app_does_not_inherit_the_removed_apps_distinct_values(app_server_factory: Any) -> None:
    """Seen: the cap's in-memory value sets outlive `DELETE /api/v1/apps/{app}`, so every new
    version of a re-created app of that name is stored as "other" until the server restarts."""
    server: InThreadServer = app_server_factory(max_distinct_values=2)
    for n, version in enumerate(["1.0.0", "1.0.1", "1.0.2"]):
        batch = with_fresh_times(
            {
                "app": GOLDEN_APP,
                "context": {"install": f"{n:x}" * 32, "app_version": version},
                "events": [{"name": "start", "time": None}],
            }
        )
        assert httpx.post(server.url + "/v1/batch", json=batch).status_code == 202
    assert "other" in versions_stored(server)  # the cap works
    assert httpx.delete(f"{server.url}/api/v1/apps/{GOLDEN_APP}", headers=admin(server)).status_code == 200
    assert httpx.post(server.url + "/api/v1/apps", headers=admin(server), json={"name": GOLDEN_APP}).status_code == 201
    fresh = with_fresh_times(
        {
            "app": GOLDEN_APP,
            "context": {"install": "f" * 32, "app_version": "2.0.0"},
            "events": [{"name": "start", "time": None}],
        }
    )
    assert httpx.post(server.url + "/v1/batch", json=fresh).status_code == 202
    assert versions_stored(server) == {"2.0.0"}


# -- what an anonymous login form writes into the audit log -------------------------------


def failed_login(server: InThreadServer, email: str) -> None:
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/login")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        answer = client.post("/login", data={"csrf": found.group(1), "email": email, "password": "wrong password"})
        assert answer.status_code == 401, answer.text


def test_a_password_typed_into_the_email_field_is_not_kept_in_the_audit_log(app_server: InThreadServer) -> None:
    """Seen: every failed login stores the email field verbatim as the audit entry's actor, for
    any text an anonymous client sends (no account needed, not even an address). People type
    their password into the wrong field; admins then read it on /admin/audit and in `footfall audit`.
    """
    typed_password = "Tr0ub4dor&3-correct-horse"
    failed_login(app_server, typed_password)
    shown = subprocess.run(
        footfall_command("audit", "--data", str(app_server.data), "--json"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "login_failed" in shown.stdout  # the failure itself is worth recording
    assert typed_password.lower() not in shown.stdout.lower()
    page = httpx.get(app_server.url + "/admin/audit", headers=admin(app_server))
    assert page.status_code == 200
    assert typed_password.lower() not in html.unescape(page.text).lower()


# -- safety-net evasions the normalising check does not undo ------------------------------


@pytest.mark.parametrize(
    "disguised",
    [
        "alice&#64;example.com",  # an HTML character reference, as text copied from a web page carries it
        "alice&#x40;example.com",
        "alice&commat;example.com",
        "alice%252540example.com",  # percent-encoded three times: two rounds are decoded
    ],
)
def test_an_email_or_path_in_disguise_is_not_stored(app_server: InThreadServer, disguised: str) -> None:
    """Seen stored verbatim in every GA v1 field (`av`, `an`, `el`, `ec`, `ea`, `cd1`, ...) and in
    native property values, although the fullwidth at sign, `%40` and `%2540` are caught."""
    batch = with_fresh_times(
        {
            "app": GOLDEN_APP,
            "context": {"install": "c" * 32, "app_version": disguised},
            "events": [{"name": "start", "time": None, "props": {"path": disguised, "n": 1}}],
        }
    )
    response = httpx.post(app_server.url + "/v1/batch", json=batch)
    assert response.status_code in (202, 400), response.text
    rows = app_server.store.query("SELECT app_version, props FROM events").rows
    assert all(disguised not in f"{version} {props}" for version, props in rows), rows


# -- sharing an app that does not exist ----------------------------------------------------


def test_an_app_that_does_not_exist_cannot_be_shared_in_advance(app_server: InThreadServer) -> None:
    """Seen: `POST /apps/{app}/public` for an unknown name answers 303 and stores the flag, so an
    app created later under that name (or re-created after removal) is public from birth,
    before any owner chose to share it."""
    server = app_server
    shared = httpx.post(f"{server.url}/apps/later-app/public", headers=admin(server), data={"public": "1", "csrf": ""})
    assert shared.status_code == 404, shared.text
    created = httpx.post(server.url + "/api/v1/apps", headers=admin(server), json={"name": "later-app"})
    assert created.status_code == 201, created.text
    assert httpx.get(server.url + "/public/later-app.json").status_code == 404


# -- what anonymous clients learn from /readyz ---------------------------------------------


def test_readyz_does_not_tell_the_internet_where_the_data_lives(tmp_path: Path) -> None:
    """Seen: with anything in quarantine, `/readyz` (unauthenticated, meant for load balancers)
    answers "N spooled events are in quarantine in /full/path/to/DATA/spool/quarantine"."""
    data = tmp_path / "data"
    folder = data / "log"
    folder.mkdir(parents=True, mode=0o700)
    damaged = folder / "00000000000000000001-00-0000test.seg"
    damaged.write_text("this line is not an event\n")
    damaged.chmod(0o600)
    server = start_server(data, tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            answer = httpx.get(server.url + "/readyz")
            if answer.json().get("warnings") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.json()["warnings"], "the damaged line was quarantined and reported"
        assert str(tmp_path) not in answer.text
    finally:
        server.stop()
