"""Server-rendered HTML for the dashboard: no JavaScript, no CDN, charts as inline SVG."""

from __future__ import annotations

from html import escape
from typing import Any

CHART_WIDTH = 720
CHART_HEIGHT = 160

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Footfall</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }}
header {{ background: #1d2430; color: #fff; padding: .8rem 1.5rem; display: flex;
          justify-content: space-between; align-items: center; }}
header button {{ color: #fff; background: none; border: 0; font: inherit;
                 cursor: pointer; }}
main {{ max-width: 960px; margin: 0 auto; padding: 1rem 1.5rem; }}
section.app {{ background: #fff; border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0;
               box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
.figures {{ display: flex; gap: 2rem; flex-wrap: wrap; }}
.figure b {{ display: block; font-size: 1.6rem; }}
svg {{ width: 100%; height: auto; }}
svg rect {{ fill: #3b82f6; }}
table {{ border-collapse: collapse; }} td {{ padding: .15rem 1rem .15rem 0; }}
form.login {{ background: #fff; padding: 1.5rem; border-radius: 8px; max-width: 420px; }}
input {{ font: inherit; padding: .4rem; width: 100%; box-sizing: border-box; margin: .5rem 0; }}
.error {{ color: #b91c1c; }}
</style></head>
<body><header><strong>Footfall</strong>{nav}</header><main>{body}</main></body></html>"""

LOGOUT = '<form method="post" action="/logout"><button type="submit">Log out</button></form>'


def render_page(title: str, body: str, logged_in: bool) -> str:
    return PAGE.format(title=escape(title), nav=LOGOUT if logged_in else "", body=body)


def render_login(error: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""<h1>Log in</h1>
<form class="login" method="post" action="/login">{message}
<label for="token">Admin token (printed by <code>footfall serve</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button></form>"""
    return render_page("Log in", body, logged_in=False)


def bar_chart(per_day: list[dict[str, Any]]) -> str:
    peak = max((d["events"] for d in per_day), default=0) or 1
    width = CHART_WIDTH / max(len(per_day), 1)
    bars = []
    for index, day in enumerate(per_day):
        height = day["events"] / peak * (CHART_HEIGHT - 20)
        bars.append(
            f'<rect x="{index * width:.1f}" y="{CHART_HEIGHT - height:.1f}" '
            f'width="{max(width - 1, 1):.1f}" height="{height:.1f}">'
            f"<title>{escape(day['day'])}: {day['events']} events</title></rect>"
        )
    return (
        f'<svg viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="Events per day, peak {peak}">{"".join(bars)}</svg>'
    )


def render_overview(summaries: list[dict[str, Any]]) -> str:
    if not summaries:
        body = "<h1>No apps yet</h1><p>Register one with <code>footfall app add NAME</code>.</p>"
        return render_page("Overview", body, logged_in=True)
    sections = []
    for s in summaries:
        top = "".join(
            f"<tr><td>{escape(row['name'])}</td><td>{row['events']:,}</td></tr>"
            for row in s["top_events"]
        )
        sections.append(
            f"""<section class="app" data-app="{escape(s["app"])}">
<h2>{escape(s["app"])}</h2>
<p>{escape(s["start"])} to {escape(s["end"])} (UTC)</p>
<div class="figures">
<div class="figure"><b data-figure="events">{s["events"]:,}</b>events</div>
<div class="figure"><b data-figure="installs">{s["installs"]:,}</b>installs</div>
<div class="figure"><b data-figure="runs">{s["runs"]:,}</b>runs</div></div>
<h3>Events per day</h3>{bar_chart(s["per_day"])}
<h3>Top events</h3><table>{top}</table></section>"""
        )
    return render_page("Overview", "<h1>Last 30 days</h1>" + "".join(sections), logged_in=True)
