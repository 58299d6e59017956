"""The Properties tab's and the version comparison's tables, as inline SVG and HTML.

Like `charts`, every value goes through `Markup.format` (escaped), bars are SVG
rectangles coloured by the stylesheet's classes, and no element has a `style`
attribute (the Content-Security-Policy allows none). Kept apart from `charts` so
the generic charts stay generic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup

from footfall.server.edge.charts import EMPTY, _cell, _join, _magnitude


def values_table(rows: Sequence[Sequence[Any]], link: Callable[[str], str | None], label: str) -> Markup:
    """Value, events (with a bar), installs, share; a value whose `link` is not None is a link
    (the dashboard's "add this value as a filter")."""
    if not rows:
        return EMPTY
    peak = max((_magnitude(r[1]) for r in rows), default=0) or 1
    body = []
    for value, events, installs, share in rows:
        href = link(str(value))
        name = (
            Markup('<a href="{}" class="add-filter" title="Only events with this value">{}</a>').format(href, value)
            if href
            else Markup("{}").format(value)
        )
        body.append(
            Markup(
                '<tr><td>{}</td><td class="num"><svg class="bar" viewBox="0 0 100 1" preserveAspectRatio="none"'
                ' aria-hidden="true"><rect width="{:.1f}" height="1"/></svg>{}</td><td class="num">{}</td>'
                '<td class="num">{}</td></tr>'
            ).format(name, _magnitude(events) / peak * 100, _cell(events), _cell(installs), _cell(share))
        )
    head = Markup(
        '<thead><tr><th scope="col">value</th><th scope="col">events</th><th scope="col">installs</th>'
        '<th scope="col">share</th></tr></thead>'
    )
    return Markup('<table class="values" aria-label="{}">{}<tbody>{}</tbody></table>').format(label, head, _join(body))


def paired_table(rows: Sequence[Sequence[Any]], a: str, b: str, label: str) -> Markup:
    """The comparison: per dimension and value, A's and B's shares as a pair of bars, and B minus A."""
    if not rows:
        return EMPTY
    peak = max((max(float(r[3]), float(r[5])) for r in rows), default=0) or 1
    body = []
    for dimension, value, count_a, share_a, count_b, share_b, difference in rows:
        change = "up" if difference > 0 else "down" if difference < 0 else "muted"
        body.append(
            Markup(
                '<tr data-dimension="{dimension}"><td>{dimension}</td><td>{value}</td>'
                '<td class="pair"><svg class="pair" viewBox="0 0 100 2" preserveAspectRatio="none" role="img"'
                ' aria-label="{a}: {share_a}, {b}: {share_b}"><rect class="a" width="{width_a:.1f}" height="0.9"/>'
                '<rect class="b" y="1" width="{width_b:.1f}" height="0.9"/></svg></td>'
                '<td class="num" title="{count_a:,}">{share_a}</td><td class="num" title="{count_b:,}">{share_b}</td>'
                '<td class="num {change}">{difference:+.1%}</td></tr>'
            ).format(
                dimension=dimension,
                value=value,
                a=a,
                b=b,
                width_a=float(share_a) / peak * 100,
                width_b=float(share_b) / peak * 100,
                count_a=count_a,
                count_b=count_b,
                share_a=f"{float(share_a):.1%}",
                share_b=f"{float(share_b):.1%}",
                change=change,
                difference=float(difference),
            )
        )
    head = Markup(
        '<thead><tr><th scope="col">of</th><th scope="col">value</th><th scope="col">'
        '<span class="key c0">{}</span> <span class="key c1">{}</span></th><th scope="col">{}</th>'
        '<th scope="col">{}</th><th scope="col">difference</th></tr></thead>'
    ).format(a, b, a, b)
    return Markup('<table class="compare" aria-label="{}">{}<tbody>{}</tbody></table>').format(label, head, _join(body))
