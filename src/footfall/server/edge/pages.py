"""The dashboard's routes (login, app picker, report pages) and the public pages.

Forms are protected against CSRF: a logged-in form carries the session's token; the
login form carries a token that must match a cookie set with it. Logins are
rate-limited per client address, and failures back off per client and account
(`accounts.LoginThrottle`): a browser that logged in before keeps a known-device
cookie, so an attacker's failures cannot lock its owner out. The operator logs in
through a one-time link (`/login?code=...`), never with the admin token. Logins,
logouts, exports and sharing changes go to the audit log.
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from footfall.server.auth.accounts import DEVICE_TTL, Principal, TokenInfo
from footfall.server.edge import dashboard
from footfall.server.edge.context import SESSION_COOKIE, ServerContext
from footfall.server.errors import NotFound, UsageError
from footfall.server.query.filters import Filters
from footfall.server.query.properties import choose_property, default_pair, property_names, run_argument_report
from footfall.server.query.public import PublicPolicy, daily_snapshot, snapshot_folder
from footfall.server.query.reports import app_versions, run_report

LOGIN_CSRF_COOKIE = "footfall_login_csrf"
DEVICE_COOKIE = "footfall_device"
MAX_EMAIL_CHARS = 320  # the longest valid address; longer input is cut before it is logged
SESSION_TTL_S = 7 * 24 * 3600
AUDIT_PAGE_ENTRIES = 500  # the newest, on one page


def page_routes(ctx: ServerContext) -> list[Route]:
    async def form(request: Request) -> dict[str, str]:
        body = await ctx.read_body(request, 8192)
        return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}

    def secure(request: Request) -> bool:
        # Behind a TLS proxy the app sees http; --public-url https://... says what the browser sees.
        return request.url.scheme == "https" or ctx.settings.public_url.startswith("https://")

    def start_session(request: Request, email: str, device: str = "") -> Response:
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            ctx.accounts.create_session(email),
            max_age=SESSION_TTL_S,
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )
        if device:
            response.set_cookie(
                DEVICE_COOKIE,
                device,
                max_age=int(DEVICE_TTL.total_seconds()),
                httponly=True,
                samesite="strict",
                secure=secure(request),
            )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        ctx.accounts.audit(email, "login")
        return response

    def login_form(request: Request, error: str = "", email: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = HTMLResponse(dashboard.login_page(token, error, email), status_code=status)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure(request))
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            code = request.query_params.get("code")
            if code is None:
                return login_form(request)
            principal = await run_in_threadpool(ctx.accounts.use_login_code, code)
            if principal is None:
                return login_form(request, "That login link is used, expired or wrong.", status=401)
            return await run_in_threadpool(start_session, request, principal.email)
        fields = await form(request)
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie.encode(), fields.get("csrf", "").encode()):
            return login_form(request, "The form expired; please try again.", status=403)
        email = fields.get("email", "").strip().lower()[:MAX_EMAIL_CHARS]
        client = ctx.logins.key_for_address(ctx.client_ip(request)).hex()
        device = request.cookies.get(DEVICE_COOKIE, "")
        # A browser that logged in to this account before has its own bucket, so that others
        # behind the same address (a shared NAT, a hostile neighbour) cannot use up its attempts.
        known = await run_in_threadpool(ctx.accounts.is_known_device, device, email)
        if ctx.logins.take("device:" + device if known else client):
            return login_form(request, "Too many attempts; wait a minute and try again.", email, status=429)
        attempt = await run_in_threadpool(ctx.accounts.login, email, fields.get("password", ""), client, device)
        if attempt.retry_after > 0:
            wait_s = max(1, round(attempt.retry_after))
            response = login_form(request, f"Too many failed attempts; try again in {wait_s} s.", email, status=429)
            response.headers["Retry-After"] = str(wait_s)
            return response
        if attempt.principal is None:
            await run_in_threadpool(ctx.accounts.audit_failed_login, email)
            return login_form(request, "That email and password do not match.", email, status=401)
        return await run_in_threadpool(start_session, request, attempt.principal.email, attempt.device)

    def posted_by(principal: Principal, fields: Mapping[str, str]) -> bool:
        """The form carries this session's CSRF token (a page of ours posted it)."""
        return hmac.compare_digest(principal.csrf.encode(), fields.get("csrf", "").encode())

    def form_expired() -> Response:
        return HTMLResponse(dashboard.message_page("Refused", "That form expired."), status_code=403)

    async def owner_form(request: Request, refusal: str) -> tuple[Principal, str, dict[str, str]] | Response:
        """(the principal, the app, the form) of a change only the app's owner may post; else the refusal page."""
        principal = ctx.require(request)
        app = request.path_params["app"]
        fields = await form(request)
        if not posted_by(principal, fields):
            return form_expired()
        if not principal.can_own(app):
            return HTMLResponse(dashboard.message_page("Refused", refusal), status_code=403)
        return principal, app, fields

    def no_such_app(app: str) -> Response:
        return HTMLResponse(dashboard.message_page("Not found", f"There is no app named {app}."), status_code=404)

    async def logout(request: Request) -> Response:
        principal = ctx.principal(request)
        fields = await form(request)
        if principal is not None:
            if not posted_by(principal, fields):
                return form_expired()
            await run_in_threadpool(ctx.accounts.end_session, principal)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def visible_apps(principal: Principal) -> list[str]:
        names = [a["name"] for a in ctx.operations.list_apps()]
        return [n for n in names if principal.can_read(n)]

    async def picker(request: Request) -> Response:
        principal = ctx.principal(request)
        if principal is None:
            return RedirectResponse("/login", status_code=303)

        def build() -> list[dict[str, Any]]:
            # Per app the apps a user can see: one query for the daily events, three for the totals.
            cards = []
            for name in visible_apps(principal):
                filters = ctx.operations.filters(name, {"days": str(dashboard.CARD_DAYS)})
                timeseries = ctx.operations.run_report(name, "timeseries", filters)
                installs = ctx.operations.summary(name, dashboard.CARD_DAYS)["installs"]
                cards.append(dashboard.app_card(name, timeseries, filters, installs))
            return cards

        cards = await run_in_threadpool(build)
        return HTMLResponse(dashboard.app_picker(cards, principal.email, principal.csrf, principal.admin))

    async def app_page(request: Request) -> Response:
        principal = ctx.principal(request)
        if principal is None:
            return RedirectResponse("/login?" + urllib.parse.urlencode({"next": request.url.path}), status_code=303)
        app = request.path_params["app"]
        if not ctx.store.has_app(app) or not principal.can_read(app):
            message = "There is no such app, or this account has no role on it."
            html = dashboard.message_page("Not found", message, principal.email, principal.csrf)
            return HTMLResponse(html, status_code=404)
        tab = request.query_params.get("tab", "overview")
        tab = tab if tab in dashboard.TABS else "overview"
        try:
            filters = ctx.operations.filters(app, request.query_params)
        except UsageError as exc:
            html = dashboard.message_page(
                app, exc.message, principal.email, principal.csrf, alert=True, link="?", link_text="Reset the filters"
            )
            return HTMLResponse(html, status_code=400)

        def build() -> tuple[list[Any], list[str], list[str], bool, dashboard.TabState]:
            versions = app_versions(ctx.store, app, limit=dashboard.MAX_VERSION_CHOICES)
            reports, state = tab_reports(app, tab, filters, request.query_params, versions)
            return (reports, versions, visible_apps(principal), ctx.accounts.is_public(app), state)

        try:
            reports, versions, apps, public, state = await run_in_threadpool(build)
        except UsageError as exc:  # a bad event, property or version pick
            html = dashboard.message_page(
                app, exc.message, principal.email, principal.csrf, alert=True, link="?", link_text="Start over"
            )
            return HTMLResponse(html, status_code=400)
        html = dashboard.app_page(
            app,
            tab,
            filters,
            reports,
            versions,
            apps,
            principal.email,
            principal.csrf,
            principal.can_own(app),
            public,
            principal.admin,
            state,
        )
        return HTMLResponse(html)

    def tab_reports(
        app: str, tab: str, filters: Filters, params: Any, versions: list[str]
    ) -> tuple[list[Any], dashboard.TabState]:
        """The tab's reports; the Properties tab's pick (event, property) and the Versions tab's (a, b)
        come from the query, or default to the first event and property, and the two newest versions."""
        reports = []
        state = dashboard.TabState()
        for name in dashboard.TABS[tab]:
            if name == "properties":
                names = property_names(ctx.store, app, filters)
                event, prop = choose_property(names["events"], params.get("event"), params.get("property"))
                state = dashboard.TabState(
                    pairs=(("event", event), ("property", prop)) if event and prop else (),
                    pickers=tuple(names["events"]),
                    picker_source=names["source"],
                    event=event,
                    property=prop,
                )
                if event and prop:
                    reports.append(
                        run_argument_report(ctx.store, name, app, filters, {"event": event, "property": prop})
                    )
            elif name == "compare":
                chosen = (params.get("a") or "", params.get("b") or "")
                pair = chosen if all(chosen) else default_pair(versions)
                state = dashboard.TabState(versions=tuple(versions))
                if pair is not None:
                    a, b = pair
                    state = dashboard.TabState(pairs=(("a", a), ("b", b)), versions=tuple(versions), a=a, b=b)
                    reports.append(run_argument_report(ctx.store, name, app, filters, {"a": a, "b": b}))
            else:
                reports.append(run_report(ctx.store, name, app, filters))
        return reports, state

    async def sharing(request: Request) -> Response:
        posted = await owner_form(request, "Only an owner can share an app.")
        if isinstance(posted, Response):
            return posted
        principal, app, fields = posted
        try:
            await run_in_threadpool(ctx.operations.set_public, app, fields.get("public") == "1", principal.email)
        except NotFound:
            # No flag for an app that does not exist yet: it would make the app public from birth.
            return no_such_app(app)
        return RedirectResponse(f"/apps/{urllib.parse.quote(app)}", status_code=303)

    async def timezone(request: Request) -> Response:
        posted = await owner_form(request, "Only an owner can set an app's time zone.")
        if isinstance(posted, Response):
            return posted
        principal, app, fields = posted
        try:
            zone = fields.get("timezone", "").strip()
            await run_in_threadpool(ctx.operations.set_timezone, app, zone, principal.email)
        except NotFound:
            return no_such_app(app)
        except UsageError as exc:
            back = f"/apps/{urllib.parse.quote(app)}"
            html = dashboard.message_page(
                "Unknown time zone", str(exc), principal.email, principal.csrf, link=back, link_text="Back to the app"
            )
            return HTMLResponse(html, status_code=400)
        return RedirectResponse(f"/apps/{urllib.parse.quote(app)}", status_code=303)

    def principal_or_login(request: Request) -> Principal | Response:
        principal = ctx.principal(request)
        if principal is None:
            return RedirectResponse("/login?" + urllib.parse.urlencode({"next": request.url.path}), status_code=303)
        return principal

    async def audit(request: Request) -> Response:
        principal = principal_or_login(request)
        if isinstance(principal, Response):
            return principal
        if not principal.admin:
            html = dashboard.message_page(
                "Refused", "Only an administrator sees the audit log.", principal.email, principal.csrf
            )
            return HTMLResponse(html, status_code=403)
        entries = await run_in_threadpool(ctx.accounts.audit_log, AUDIT_PAGE_ENTRIES)
        return HTMLResponse(dashboard.audit_page(entries, principal.email, principal.csrf))

    def revocable_tokens(principal: Principal) -> list[TokenInfo]:
        return ctx.accounts.list_tokens(None if principal.admin else principal.email)

    async def account(request: Request) -> Response:
        principal = principal_or_login(request)
        if isinstance(principal, Response):
            return principal
        tokens = await run_in_threadpool(revocable_tokens, principal)
        return HTMLResponse(dashboard.account_page(tokens, principal.email, principal.csrf, principal.admin))

    async def revoke(request: Request) -> Response:
        principal = ctx.require(request)
        fields = await form(request)
        if not posted_by(principal, fields):
            return form_expired()
        token_id = request.path_params["token"]

        def revoke_own() -> bool:
            # Only a token this account may see: an id alone must not reach another account's token.
            if token_id not in {t.id for t in revocable_tokens(principal)}:
                return False
            return ctx.accounts.revoke_token(token_id, principal.email)

        if not await run_in_threadpool(revoke_own):
            html = dashboard.message_page("Not found", "There is no such token.", principal.email, principal.csrf)
            return HTMLResponse(html, status_code=404)
        return RedirectResponse("/account", status_code=303)

    async def public(request: Request) -> Response:
        name = request.path_params["app"]
        as_json = name.endswith(".json")
        app = name.removesuffix(".json")
        if not ctx.store.has_app(app) or not await run_in_threadpool(ctx.accounts.is_public, app):
            raise NotFound(f"{app!r} has no public page", code="not_public")
        # Today's stored snapshot, never live numbers: polling shows nothing new until tomorrow.
        data = await run_in_threadpool(
            daily_snapshot,
            ctx.store,
            app,
            PublicPolicy.from_settings(ctx.settings),
            snapshot_folder(ctx.settings.data),
        )
        return JSONResponse(data) if as_json else HTMLResponse(dashboard.public_page(data))

    async def static(request: Request) -> Response:
        asset = dashboard.static_assets().get(request.path_params["name"])
        if asset is None:
            raise NotFound("no such file")
        versioned = request.query_params.get("v") == asset.digest
        cache = "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
        return Response(asset.body, media_type=asset.media_type, headers={"Cache-Control": cache})

    return [
        Route("/static/{name}", static),
        Route("/", picker),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/apps/{app}", app_page),
        Route("/apps/{app}/public", sharing, methods=["POST"]),
        Route("/apps/{app}/timezone", timezone, methods=["POST"]),
        Route("/public/{app}", public),
        Route("/admin/audit", audit),
        Route("/account", account),
        Route("/account/tokens/{token}/revoke", revoke, methods=["POST"]),
    ]
