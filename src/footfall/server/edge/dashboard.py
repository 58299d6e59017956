"""The dashboard's pages, rendered on the server from the Jinja2 templates in `templates/`.

Every figure comes from a `Report` of the query layer; this module only lays them out.
Autoescape is on for every template, so a value is text unless it is `Markup`; only
the charts (which `charts` builds with `Markup.format`, escaping each value) are.
The pages load one stylesheet from /static and no script, under the
Content-Security-Policy of `headers`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.parse
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from footfall.server.edge import charts
from footfall.server.query.filters import CI_CHOICES, CONTAINERS, Filters
from footfall.server.query.public import DIMENSION_TITLES
from footfall.server.query.reports import Report

TABS: dict[str, tuple[str, ...]] = {
    "overview": ("overview", "timeseries", "events", "countries"),
    "when": ("timeseries", "heatmap"),
    "how": ("commands", "options", "outcomes", "durations", "ga", "dimensions"),
    "versions": ("versions", "adoption"),
    "platforms": ("platforms", "runtimes"),
    "where": ("countries", "environments"),
    "retention": ("retention",),
}
DAY_PRESETS = (7, 30, 90, 365)
MAX_TABLE_ROWS = 100  # per panel; the CSV export has every row
MAX_VERSION_CHOICES = 200  # suggested in the version filter; any other version can be typed
STATIC_TYPES = {".css": "text/css; charset=utf-8"}


@dataclasses.dataclass(frozen=True)
class StaticAsset:
    body: bytes
    media_type: str
    digest: str  # in the URL, so a new release is never served from a stale cache


@cache
def static_assets() -> dict[str, StaticAsset]:
    """The dashboard's own CSS, shipped as package data and served from /static."""
    assets = {}
    for entry in resources.files("footfall.server.edge").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in STATIC_TYPES:
            body = entry.read_bytes()
            assets[entry.name] = StaticAsset(body, STATIC_TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])
    return assets


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_assets()[name].digest}"


def _urlquote(value: Any) -> str:
    return urllib.parse.quote(str(value), safe="")


@cache
def environment() -> jinja2.Environment:
    """Built once: templates are compiled on first use and kept."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("footfall.server.edge", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlquote"] = _urlquote
    env.globals["static_url"] = static_url
    return env


def render(template: str, **context: Any) -> str:
    context.setdefault("who", "")
    context.setdefault("csrf", "")
    context.setdefault("admin", False)
    return environment().get_template(template).render(**context)


def message_page(
    title: str, message: str, who: str = "", csrf: str = "", alert: bool = False, link: str = "", link_text: str = ""
) -> str:
    """A page that says one thing: every part is text, escaped by the template."""
    return render(
        "message.html",
        title=title,
        heading=title,
        message=message,
        who=who,
        csrf=csrf,
        alert=alert,
        link=link,
        link_text=link_text,
    )


def login_page(csrf: str, error: str = "", email: str = "") -> str:
    return render("login.html", title="Log in", form_csrf=csrf, error=error, email=email)


def app_picker(apps: list[dict[str, Any]], who: str, csrf: str, admin: bool = False) -> str:
    return render("apps.html", title="Apps", apps=apps, who=who, csrf=csrf, admin=admin)


def audit_page(entries: list[Any], who: str, csrf: str) -> str:
    return render("audit.html", title="Audit log", entries=entries, who=who, csrf=csrf, admin=True)


def account_page(tokens: list[Any], who: str, csrf: str, admin: bool) -> str:
    """The API tokens `who` may revoke: their own, or every account's for an admin."""
    return render(
        "account.html", title="API tokens", tokens=tokens, all_accounts=admin, who=who, csrf=csrf, admin=admin
    )


def _panel(report: Report) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "name": report.name,
        "title": report.title,
        "figures": None,
        "chart": "",
        "latest": None,
        "hidden_rows": 0,
    }
    name = report.name
    if name == "overview":
        panel["figures"] = [
            {"measure": measure, "value": value, "previous": previous, "change": change}
            for measure, value, previous, change in report.rows
        ]
    elif name == "timeseries":
        periods = [r[0] for r in report.rows]
        series = {
            "events": [r[1] for r in report.rows],
            "runs": [r[2] for r in report.rows],
            "installs": [r[3] for r in report.rows],
        }
        panel["chart"] = charts.line_chart(
            periods, series, f"{report.title}: events, runs and installs", partial=report.meta.get("partial", ())
        )
    elif name == "heatmap":
        panel["chart"] = charts.heatmap(report.rows, "Events by weekday and hour, UTC")
    elif name == "retention":
        panel["chart"] = charts.cohort_table(
            report.rows, "Share of each weekly cohort active in later weeks", partial=report.meta.get("partial", ())
        )
    elif name == "adoption":
        days = sorted({r[0] for r in report.rows})
        totals: dict[str, int] = {}
        for _, version, installs in report.rows:
            totals[version] = totals.get(version, 0) + installs
        top = sorted(totals, key=totals.__getitem__, reverse=True)[:5]
        by = {(r[0], r[1]): r[2] for r in report.rows}
        series = {v: [by.get((d, v), 0) for d in days] for v in top}
        panel["chart"] = (
            charts.line_chart(days, series, "Active installs per version per day") if days else charts.EMPTY
        )
    else:
        numeric = next((i for i, c in enumerate(report.columns) if c in ("installs", "events", "runs", "uses")), 1)
        rows = report.rows[:MAX_TABLE_ROWS]
        panel["hidden_rows"] = len(report.rows) - len(rows)
        panel["chart"] = charts.bar_table(report.columns, rows, numeric, report.title)
        if name == "versions" and report.meta.get("latest"):
            panel["latest"] = report.meta["latest"]
            panel["latest_share"] = report.meta.get("latest_share")
            panel["upgrade_days"] = report.meta.get("median_upgrade_days")
    return panel


def app_page(
    app: str,
    tab: str,
    filters: Filters,
    reports: list[Report],
    versions: list[str],
    apps: list[str],
    who: str,
    csrf: str,
    owner: bool,
    public: bool,
    admin: bool = False,
) -> str:
    """One app's tab. `versions` are suggestions for the version filter, at most `MAX_VERSION_CHOICES` shown."""
    base = f"/apps/{_urlquote(app)}"
    tab_links = [(t, f"{base}?{urllib.parse.urlencode({**filters.as_params(), 'tab': t})}") for t in TABS]
    return render(
        "app.html",
        title=app,
        app=app,
        tab=tab,
        tab_links=tab_links,
        filters=filters,
        query=urllib.parse.urlencode(filters.as_params()),
        preset=filters.days if filters.days in DAY_PRESETS else "",
        day_presets=DAY_PRESETS,
        ci_choices=CI_CHOICES,
        containers=CONTAINERS,
        versions=versions[:MAX_VERSION_CHOICES],
        apps=apps,
        panels=[_panel(r) for r in reports],
        who=who,
        csrf=csrf,
        owner=owner,
        public=public,
        admin=admin,
    )


def public_page(data: dict[str, Any]) -> str:
    """A stored public release (see `footfall.server.query.public`) as one static page."""
    windows = [
        {
            **window,
            "days": int(window["days"]),
            "tables": [
                {
                    "title": DIMENSION_TITLES.get(name, name.title()),
                    "chart": charts.bar_table(
                        ["value", "installs", "events"],
                        [[r["value"], r["installs"], r["events"]] for r in rows],
                        1,
                        f"{name}, last {window['days']} days",
                    )
                    if rows
                    else "",
                }
                for name, rows in window["items"].items()
            ],
        }
        for window in data["windows"]
    ]
    return render("public.html", title=f"{data['app']} usage", data=data, windows=windows)
