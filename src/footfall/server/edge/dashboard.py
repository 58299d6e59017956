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

from footfall.server.edge import charts, property_charts, worldmap
from footfall.server.query.filters import (
    CI_CHOICES,
    CONTAINERS,
    MAX_FILTER_VALUE_CHARS,
    MAX_PROPERTY_FILTERS,
    Filters,
    PropertyFilter,
    known_timezones,
)
from footfall.server.query.filters import today as local_today
from footfall.server.query.public import DIMENSION_TITLES
from footfall.server.query.reports import TOP_ROWS, Report

TABS: dict[str, tuple[str, ...]] = {
    "overview": ("overview", "timeseries", "events", "countries"),
    "when": ("timeseries", "heatmap"),
    "how": ("commands", "options", "outcomes", "errors", "errors_by_version", "durations", "ga", "dimensions"),
    "properties": ("properties",),
    "versions": ("compare", "versions", "adoption"),
    "platforms": ("os", "platforms", "runtimes"),
    "where": ("countries", "environments"),
    "retention": ("retention",),
}
DAY_PRESETS = (7, 30, 90, 365)
MAX_TABLE_ROWS = 100  # per panel; the CSV export has every row
MAX_VERSION_CHOICES = 200  # suggested in the version filter; any other version can be typed
STATIC_TYPES = {".css": "text/css; charset=utf-8"}
CARD_DAYS = 30  # the home page's sparkline: events per day over this many days, today included
CHANGE_DAYS = 7  # the card's change: the last this many full days against as many before
MAP_TABS = ("where",)  # the tabs whose countries panel draws the world map (the overview stays light)


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


def number(value: float) -> str:
    """A measured number for a figure: whole ones with thousands separators, others to two places."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


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
    env.filters["number"] = number
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
    """The home page: one card per app, as `app_card` builds them."""
    return render("apps.html", title="Apps", apps=apps, who=who, csrf=csrf, admin=admin)


def app_card(app: str, timeseries: Report, filters: Filters, installs: int) -> dict[str, Any]:
    """An app's card: events and installs in the range, a sparkline of events per day, and the weekly change.

    `timeseries` is the "timeseries" report for `filters` (daily rows). Today is still under
    way, so the sparkline draws it dashed and the change compares only full days: the last
    `CHANGE_DAYS` before today against the `CHANGE_DAYS` before those.
    """
    days = [row[0] for row in timeseries.rows]
    per_day = [int(row[1]) for row in timeseries.rows]
    partial = bool(days) and days[-1] >= local_today(filters.timezone)
    full = per_day[:-1] if partial else per_day
    current, previous = sum(full[-CHANGE_DAYS:]), sum(full[-2 * CHANGE_DAYS : -CHANGE_DAYS])
    if previous:
        percent = round((current - previous) / previous * 100)  # a change under half a percent reads +0%
        text = ("+" if percent >= 0 else "\u2212") + f"{abs(percent)}%"  # a real minus sign, as Plausible's
        trend = "up" if percent > 0 else "down" if percent < 0 else "flat"
    else:
        text, trend = ("new", "up") if current else ("no events", "flat")
    label = f"{app}: events per day, {days[0]:%b %d} to {days[-1]:%b %d}" if days else f"{app}: no days"
    return {
        "name": app,
        "events": sum(per_day),
        "installs": installs,
        "days": len(days),
        "sparkline": charts.sparkline(per_day, label, partial_last=partial),
        "change": text,
        "trend": trend,
        "change_title": f"{current:,} events in the last {CHANGE_DAYS} full days, against {previous:,} in the {CHANGE_DAYS} before",
    }


def audit_page(entries: list[Any], who: str, csrf: str) -> str:
    return render("audit.html", title="Audit log", entries=entries, who=who, csrf=csrf, admin=True)


def account_page(tokens: list[Any], who: str, csrf: str, admin: bool) -> str:
    """The API tokens `who` may revoke: their own, or every account's for an admin."""
    return render(
        "account.html", title="API tokens", tokens=tokens, all_accounts=admin, who=who, csrf=csrf, admin=admin
    )


@dataclasses.dataclass(frozen=True)
class TabState:
    """What a tab chose besides the filters (the Properties tab's event and property, the
    Versions tab's pair), with the choices offered; kept in every link and form of the tab."""

    pairs: tuple[tuple[str, str], ...] = ()  # query parameters, e.g. (("event", "export"), ...)
    pickers: tuple[dict[str, Any], ...] = ()  # the Properties tab: each event and its properties
    picker_source: str = ""  # "schema" or "data"
    event: str = ""
    property: str = ""
    versions: tuple[str, ...] = ()  # the Versions tab's version pickers
    a: str = ""
    b: str = ""


def _link(base: str, filters: Filters, tab: str, state: TabState) -> str:
    return f"{base}?{urllib.parse.urlencode([*filters.as_query(), ('tab', tab), *state.pairs])}"


def chips(base: str, filters: Filters, tab: str, state: TabState) -> list[tuple[str, str]]:
    """The filters in force as (label, link without it): the dashboard's removable chips."""
    found: list[tuple[str, str]] = []
    for name, value, without in (
        ("version", filters.version, dataclasses.replace(filters, version=None)),
        ("country", filters.country, dataclasses.replace(filters, country=None)),
        ("container", filters.container, dataclasses.replace(filters, container=None)),
    ):
        if value:
            found.append((f"{name}: {value}", _link(base, without, tab, state)))
    if filters.ci != "include":
        found.append((f"ci: {filters.ci}", _link(base, dataclasses.replace(filters, ci="include"), tab, state)))
    for item in filters.properties:
        rest = tuple(other for other in filters.properties if other != item)
        found.append((str(item), _link(base, dataclasses.replace(filters, properties=rest), tab, state)))
    return found


def _value_link(base: str, filters: Filters, state: TabState, lists: bool) -> Any:
    """A value of the Properties table as a link that adds `event.property=value` to the filters;
    None where such a filter could not hold (a list property, the "(other)" row, a long value)."""

    def link(value: str) -> str | None:
        if lists or value == "(other)" or len(value) > MAX_FILTER_VALUE_CHARS or "." in state.event:
            return None  # (a filter names event.property: an event with a dot in it cannot be named)
        added = PropertyFilter(state.event, state.property, value)
        if added in filters.properties or len(filters.properties) >= MAX_PROPERTY_FILTERS:
            return None
        return _link(base, dataclasses.replace(filters, properties=(*filters.properties, added)), "properties", state)

    return link


def _panel(
    report: Report, tab: str = "", base: str = "", filters: Filters | None = None, state: TabState | None = None
) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "name": report.name,
        "title": report.title,
        "figures": None,
        "chart": "",
        "latest": None,
        "hidden_rows": 0,
        "numeric": None,
        "histogram": "",
    }
    name = report.name
    if name == "properties" and filters is not None and state is not None:
        rows = report.rows[:MAX_TABLE_ROWS]
        link = _value_link(base, filters, state, bool(report.meta.get("lists")))
        panel["chart"] = property_charts.values_table(rows, link, f"Values of {report.title}")
        panel["meta"] = report.meta
        numeric = report.meta.get("numeric")
        if numeric:
            panel["numeric"] = numeric
            panel["histogram"] = charts.bar_table(
                ["bucket", "events"],
                [[bucket["bucket"], bucket["events"]] for bucket in numeric["histogram"]],
                1,
                f"Histogram of {report.title}, in powers of ten",
            )
    elif name == "compare":
        a, b = report.meta["a"], report.meta["b"]
        panel["chart"] = property_charts.paired_table(report.rows, a, b, f"Versions {a} and {b} side by side")
        panel["meta"] = report.meta
    elif name == "overview":
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
        zone = filters.timezone if filters is not None else "UTC"
        panel["chart"] = charts.heatmap(report.rows, f"Events by weekday and hour, {zone}", zone)
    elif name == "retention":
        panel["chart"] = charts.cohort_table(
            report.rows, "Share of each weekly cohort active in later weeks", partial=report.meta.get("partial", ())
        )
    elif name == "countries":
        _countries_panel(panel, report, with_map=tab in MAP_TABS)
    elif name == "os":
        rows = report.rows[:MAX_TABLE_ROWS]
        panel["hidden_rows"] = len(report.rows) - len(rows)
        shares = [(str(row[0]), float(row[3])) for row in report.rows]
        table = charts.bar_table(report.columns, rows, report.columns.index("share"), report.title)
        panel["chart"] = charts.share_bar(shares, "Share of installs per operating system") + table
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
        # The error reports draw their errors (per command) and their rate (per version: did a release do worse?).
        measures = {"errors": ("errors",), "errors_by_version": ("rate",)}.get(
            name, ("installs", "events", "runs", "uses")
        )
        numeric = next((i for i, c in enumerate(report.columns) if c in measures), 1)
        rows = report.rows[:MAX_TABLE_ROWS]
        panel["hidden_rows"] = len(report.rows) - len(rows)
        panel["chart"] = charts.bar_table(report.columns, rows, numeric, report.title)
        if name == "versions" and report.meta.get("latest"):
            panel["latest"] = report.meta["latest"]
            panel["latest_share"] = report.meta.get("latest_share")
            panel["upgrade_days"] = report.meta.get("median_upgrade_days")
    return panel


def _countries_panel(panel: dict[str, Any], report: Report, with_map: bool) -> None:
    """Countries by name ("Germany (DE)"), and on `MAP_TABS` a world map shaded by installs."""
    code_at, installs_at = report.columns.index("country"), report.columns.index("installs")
    rows = [
        [worldmap.country_label(str(v)) if i == code_at else v for i, v in enumerate(row)]
        for row in report.rows[:MAX_TABLE_ROWS]
    ]
    panel["hidden_rows"] = len(report.rows) - len(rows)
    table = charts.bar_table(report.columns, rows, installs_at, report.title)
    if not with_map or not report.rows:
        panel["chart"] = table
        return
    installs: dict[str, int] = {}
    for row in report.rows:
        code = str(row[code_at]).upper()
        installs[code] = installs.get(code, 0) + int(row[installs_at] or 0)
    shapes = worldmap.country_shapes()
    names = {code: worldmap.country_label(code) for code in shapes}
    cut = TOP_ROWS if len(report.rows) >= TOP_ROWS else None  # the report lists the top countries only
    world = charts.world_map(installs, shapes, names, "installs", "Installs by country", cut)
    panel["chart"] = world + table


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
    state: TabState | None = None,
) -> str:
    """One app's tab. `versions` are suggestions for the version filter, at most `MAX_VERSION_CHOICES` shown;
    `state` is what the tab chose besides the filters (kept in its links and forms)."""
    base = f"/apps/{_urlquote(app)}"
    state = state or TabState()
    tab_links = [(t, _link(base, filters, t, TabState())) for t in TABS]
    return render(
        "app.html",
        title=app,
        app=app,
        tab=tab,
        tab_links=tab_links,
        filters=filters,
        query=urllib.parse.urlencode([*filters.as_query(), *state.pairs]),
        filter_pairs=filters.as_query(),
        state=state,
        chips=chips(base, filters, tab, state),
        preset=filters.days if filters.days in DAY_PRESETS else "",
        day_presets=DAY_PRESETS,
        ci_choices=CI_CHOICES,
        containers=CONTAINERS,
        versions=versions[:MAX_VERSION_CHOICES],
        apps=apps,
        panels=[_panel(r, tab, base, filters, state) for r in reports],
        who=who,
        csrf=csrf,
        owner=owner,
        public=public,
        admin=admin,
        zones=sorted(known_timezones()) if owner else (),  # the time zone form's suggestions
    )


def _public_label(dimension: str, value: Any) -> Any:
    """A value as the public page shows it: countries by name ("Germany (DE)"), the rest as they are."""
    return worldmap.country_label(str(value)) if dimension == "countries" else value


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
                        [[_public_label(name, r["value"]), r["installs"], r["events"]] for r in rows],
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
