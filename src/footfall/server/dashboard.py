"""The dashboard's pages, rendered on the server: HTML, CSS and the SVG charts of `charts`.

Every figure comes from a `Report` of the query layer; this module only lays them out.
"""

from __future__ import annotations

import urllib.parse
from html import escape
from typing import Any

from footfall.server import charts
from footfall.server.filters import CI_CHOICES, CONTAINERS, Filters
from footfall.server.reports import Report

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

STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6472; --line: #e3e6eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: var(--ink); background: #f6f7f9; }
a { color: var(--accent); }
header { background: var(--ink); color: #fff; padding: .6rem 1.25rem; display: flex; gap: 1rem;
         align-items: center; flex-wrap: wrap; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .who { margin-left: auto; display: flex; gap: .75rem; align-items: center; }
header button { color: #fff; background: none; border: 1px solid #fff6; border-radius: 4px; padding: .2rem .6rem;
                font: inherit; cursor: pointer; }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
nav.tabs { display: flex; gap: .25rem; flex-wrap: wrap; margin: .5rem 0 1rem; }
nav.tabs a { padding: .35rem .8rem; border-radius: 999px; text-decoration: none; background: #fff;
             border: 1px solid var(--line); color: var(--ink); }
nav.tabs a[aria-current="page"] { background: var(--accent); border-color: var(--accent); color: #fff; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; background: #fff; padding: .75rem;
               border-radius: 8px; border: 1px solid var(--line); }
form.filters label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
input, select, button { font: inherit; padding: .3rem .45rem; border: 1px solid #c9ced6; border-radius: 4px; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr)); gap: 1rem;
        margin-top: 1rem; }
section.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1rem;
                overflow-x: auto; }
section.panel h2 { font-size: 1.05rem; margin: 0 0 .6rem; display: flex; justify-content: space-between; gap: 1rem; }
section.panel h2 a { font-size: .8rem; font-weight: normal; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .75rem; }
.figure { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .7rem; }
.figure b { display: block; font-size: 1.5rem; }
.up { color: #15803d; } .down { color: #b91c1c; } .muted, .empty { color: var(--muted); }
svg.chart { width: 100%; height: auto; display: block; }
svg .grid { stroke: var(--line); } svg .axis { font-size: 11px; fill: var(--muted); }
figcaption .key { display: inline-flex; align-items: center; gap: .3rem; margin-right: 1rem; font-size: .85rem; }
figcaption .key::before { content: ""; width: .8rem; height: .2rem; background: var(--c); }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.num { text-align: right; position: relative; }
td .bar { position: absolute; left: 0; top: 20%; height: 60%; background: #2563eb22; border-radius: 2px; }
td.cohort { background: rgba(37, 99, 235, calc(var(--s) * .8)); }
.apps { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 1rem; }
.apps a { display: block; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem;
          text-decoration: none; color: var(--ink); }
form.login { background: #fff; padding: 1.5rem; border-radius: 8px; max-width: 420px; margin: 2rem auto;
             border: 1px solid var(--line); }
form.login input { width: 100%; margin: .3rem 0 .8rem; }
.error { color: #b91c1c; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
@media (max-width: 600px) { main { padding: .75rem; } .figure b { font-size: 1.2rem; } }
"""


def page(title: str, body: str, who: str = "", csrf: str = "") -> str:
    account = ""
    if who:
        account = (
            f'<span class="who"><span>{escape(who)}</span><form method="post" action="/logout">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}"><button type="submit">Log out</button>'
            "</form></span>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)} · Footfall</title>'
        f'<style>{STYLE}</style></head><body><header><a href="/">Footfall</a>{account}</header>'
        f"<main>{body}</main></body></html>"
    )


def login_page(csrf: str, error: str = "", email: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""<form class="login" method="post" action="/login"><h1>Log in</h1>{message}
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" value="{escape(email)}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button class="primary" type="submit">Log in</button>
<p class="muted">Operators can also use the link that <code>footfall serve</code> prints.</p></form>"""
    return page("Log in", body)


def app_picker(apps: list[dict[str, Any]], who: str, csrf: str) -> str:
    if not apps:
        body = (
            "<h1>No apps to show</h1><p>Nothing is shared with this account yet. An operator registers apps with"
            " <code>footfall app add NAME</code> and gives access with <code>footfall user add</code>.</p>"
        )
    else:
        cards = "".join(
            f'<a href="/apps/{urllib.parse.quote(a["name"])}" data-app="{escape(a["name"])}"><b>{escape(a["name"])}</b>'
            f'<div class="muted">{a["events"]:,} events, {a["installs"]:,} installs in 30 days</div></a>'
            for a in apps
        )
        body = f'<h1>Apps</h1><div class="apps">{cards}</div>'
    return page("Apps", body, who, csrf)


def _filters_form(app: str, tab: str, filters: Filters, versions: list[str]) -> str:
    def options(choices: Any, chosen: Any, blank: str = "", unit: str = "") -> str:
        items = [f'<option value="">{escape(blank)}</option>'] if blank else []
        for value in choices:
            selected = " selected" if str(value) == str(chosen) else ""
            items.append(f'<option value="{escape(str(value))}"{selected}>{escape(str(value))}{unit}</option>')
        return "".join(items)

    days = filters.days if filters.days in DAY_PRESETS else ""
    return f"""<form class="filters" method="get" action="/apps/{urllib.parse.quote(app)}" aria-label="Filters">
<input type="hidden" name="tab" value="{escape(tab)}">
<label>Range<select name="days">{options(DAY_PRESETS, days, "custom", " days")}</select></label>
<label>From<input type="date" name="start" value="{filters.start.isoformat() if not days else ""}"></label>
<label>To<input type="date" name="end" value="{filters.end.isoformat() if not days else ""}"></label>
<label>Version<select name="version">{options(versions, filters.version or "", "all")}</select></label>
<label>Country<input name="country" size="4" maxlength="2" placeholder="all" value="{escape(filters.country or "")}"></label>
<label>CI<select name="ci">{options(CI_CHOICES, filters.ci)}</select></label>
<label>Container<select name="container">{options(CONTAINERS, filters.container or "", "any")}</select></label>
<button class="primary" type="submit">Apply</button></form>"""


def _overview_figures(report: Report) -> str:
    figures = []
    for measure, value, previous, change in report.rows:
        if change is None:
            trend = '<span class="muted">no earlier data</span>'
        else:
            arrow, css = ("▲", "up") if change >= 0 else ("▼", "down")
            trend = f'<span class="{css}">{arrow} {abs(change):.0%}</span> <span class="muted">vs {previous:,}</span>'
        figures.append(
            f'<div class="figure" data-measure="{escape(measure)}"><span class="muted">{escape(measure)}'
            f"</span><b>{value:,}</b>{trend}</div>"
        )
    return f'<div class="figures">{"".join(figures)}</div>'


def _panel_body(report: Report) -> str:
    name = report.name
    if name == "overview":
        return _overview_figures(report)
    if name == "timeseries":
        periods = [r[0] for r in report.rows]
        series = {
            "events": [r[1] for r in report.rows],
            "runs": [r[2] for r in report.rows],
            "installs": [r[3] for r in report.rows],
        }
        return charts.line_chart(periods, series, f"{report.title}: events, runs and installs")
    if name == "heatmap":
        return charts.heatmap(report.rows, "Events by weekday and hour, UTC")
    if name == "retention":
        return charts.cohort_table(report.rows, "Share of each weekly cohort active in later weeks")
    if name == "adoption":
        days = sorted({r[0] for r in report.rows})
        totals: dict[str, int] = {}
        for _, version, installs in report.rows:
            totals[version] = totals.get(version, 0) + installs
        top = sorted(totals, key=totals.__getitem__, reverse=True)[:5]
        by = {(r[0], r[1]): r[2] for r in report.rows}
        series = {v: [by.get((d, v), 0) for d in days] for v in top}
        return (
            charts.line_chart(days, series, "Active installs per version per day")
            if days
            else '<p class="empty">No data in this range.</p>'
        )
    numeric = next((i for i, c in enumerate(report.columns) if c in ("installs", "events", "runs", "uses")), 1)
    table = charts.bar_table(report.columns, report.rows, numeric, report.title)
    if name == "versions" and report.meta.get("latest"):
        share = report.meta.get("latest_share")
        upgrade = report.meta.get("median_upgrade_days")
        facts = (
            f'<p data-latest="{escape(report.meta["latest"])}">Latest: <b>{escape(report.meta["latest"])}</b>'
            + (f" on {share:.0%} of active installs." if share is not None else ".")
            + (f" Installs upgrade after a median of {upgrade:.1f} days." if upgrade is not None else "")
            + "</p>"
        )
        return facts + table
    return table


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
) -> str:
    query = urllib.parse.urlencode(filters.as_params())
    current = ' aria-current="page"'
    tabs = "".join(
        f'<a href="/apps/{urllib.parse.quote(app)}?{urllib.parse.urlencode({**filters.as_params(), "tab": t})}"'
        f"{current if t == tab else ''}>{t.title()}</a>"
        for t in TABS
    )
    panels = "".join(
        f'<section class="panel" data-report="{r.name}"><h2>{escape(r.title)}'
        f'<a href="/api/v1/apps/{urllib.parse.quote(app)}/reports/{r.name}.csv?{query}" download>Export CSV</a></h2>'
        f"{_panel_body(r)}</section>"
        for r in reports
    )
    switcher = "".join(
        f'<option value="/apps/{urllib.parse.quote(a)}"{" selected" if a == app else ""}>{escape(a)}</option>'
        for a in apps
    )
    sharing = ""
    if owner:
        verb = "Make private" if public else "Make public"
        state = f'<a href="/public/{urllib.parse.quote(app)}">public page</a>' if public else "private"
        sharing = (
            f'<form method="post" action="/apps/{urllib.parse.quote(app)}/public" class="sharing">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<input type="hidden" name="public" value="{"0" if public else "1"}">'
            f'<span class="muted">Aggregates are {state}.</span> <button type="submit">{verb}</button></form>'
        )
    body = (
        f'<h1><label class="sr-only" for="app-picker">App</label>{escape(app)}</h1>'
        f'<p><select id="app-picker" aria-label="Switch app" onchange="location=this.value">{switcher}</select> '
        f'<span class="muted">{filters.start.isoformat()} to {filters.end.isoformat()} (UTC)</span></p>'
        f'{sharing}<nav class="tabs" aria-label="Reports">{tabs}</nav>'
        f'{_filters_form(app, tab, filters, versions)}<div class="grid">{panels}</div>'
    )
    return page(app, body, who, csrf)


def public_page(data: dict[str, Any]) -> str:
    """A stored public release (see `footfall.server.public`) as one static page; every value escaped."""
    privacy = data["privacy"]
    values = privacy["max_values_per_install"]
    sections = []
    for window in data["windows"]:
        noise = window["noise"]
        tables = "".join(
            f"<h3>{escape(name.title())}</h3>"
            + (
                charts.bar_table(
                    ["value", "installs", "events"],
                    [[r["value"], r["installs"], r["events"]] for r in rows],
                    1,
                    f"{name}, last {window['days']} days",
                )
                if rows
                else f'<p class="empty">No value reached {noise["threshold_installs"]:,} installs.</p>'
            )
            for name, rows in window["items"].items()
        )
        sections.append(
            f'<section class="panel" data-window="{int(window["days"])}"><h2>Last {int(window["days"])} days'
            f' <span class="muted">{escape(window["start"])} to {escape(window["end"])}</span></h2>'
            f"<p>About {window['installs']:,} installs and {window['events']:,} events"
            f' <span class="muted">(the sums of the {escape(privacy["totals_from"])} rows)</span>.</p>'
            f'<p class="muted">A row appears from about {noise["threshold_installs"]:,} installs. In 95% of'
            f" cases an install count is within ±{noise['installs_error_95']:,} and an event count within"
            f" ±{noise['events_error_95']:,} of the true figure.</p>{tables}</section>"
        )
    note = (
        f'<p class="privacy">Released {escape(data["release"])} (UTC), covering complete days through'
        f" {escape(data['through'])}; it changes once a day. The numbers carry random noise: this release is"
        f" differentially private for every install with <b>ε = {privacy['epsilon']:.4g}</b> and"
        f" <b>δ = {privacy['delta']:.2g}</b>. Each install counts towards at most {values:,}"
        f" value{'s' if values != 1 else ''} per table, and adds at most"
        f" {privacy['max_events_per_install_day']:,} events a day and"
        f" {privacy['max_events_per_install_window']:,} in a window to any count; events sent without an"
        " install id are left out.</p>"
    )
    return page(
        f"{data['app']} usage",
        f'<h1>{escape(data["app"])}: public usage</h1>{note}<div class="grid">{"".join(sections)}</div>',
    )
